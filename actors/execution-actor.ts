import { Actor } from "../src/actor.ts";
import { findNamespace } from "../src/bindings.ts";
import { encode } from "../src/codec.ts";
import { type Duration, parseDuration } from "../src/duration.ts";
import { BatonError, invalidArgument, isBatonError } from "../src/errors.ts";
import {
  checkEventType,
  Engine,
  type EngineHost,
  type ExecutionTimers,
  type ForkSnapshot,
  HEARTBEAT_MS,
  ROW_COLUMNS,
} from "../src/execution/engine.ts";
import {
  EXECUTION_MIGRATIONS,
  EXECUTION_SCHEMA,
  type ExecutionRow,
  LIFECYCLE,
  type LifecycleEvent,
  type StepRow,
  type StoredStatus,
  TERMINAL,
} from "../src/execution/schema.ts";
import type {
  EventReceipt,
  ExecutionError,
  ExecutionInfo,
  ExecutionResult,
  ExecutionStatus,
  JournalEntry,
  StartOptions,
  Value,
} from "../src/execution/types.ts";
import type { StateMachine } from "../src/fsm.ts";
import {
  type CancelledEvent,
  type CompletedEvent,
  type FailedEvent,
  type InitialStateEvent,
  jsonIfSmall,
  MAX_LIVE_OUTPUT_BYTES,
  MAX_LIVE_RESULT_BYTES,
  OMITTED,
  type ProgressEvent,
} from "../src/live.ts";
import { runMigrations } from "../src/migrations.ts";
import { type AnyWorkflow, type ChildResult, WorkflowRegistry } from "../src/workflow.ts";
import { type ExecutionIndex, INDEX_SHARD, type IndexUpdate } from "./execution-index.ts";

const MAX_ID = 256;

/** Counts over the journal that status() reports, and its latest step. */
interface JournalStats {
  steps: number;
  done: number | null;
  attempts: number | null;
  busy: number | null;
  waiting: number | null;
  sleeping: number | null;
  current: string | null;
  [column: string]: string | number | ArrayBuffer | null;
}
const JOURNAL_STATS = `SELECT COUNT(*) AS steps, SUM(status = 'completed') AS done,
  SUM(attempts) AS attempts, SUM(status IN ('running', 'backoff')) AS busy,
  SUM(status = 'waiting') AS waiting, SUM(status = 'sleeping') AS sleeping,
  (SELECT name FROM _baton_steps ORDER BY seq DESC LIMIT 1) AS current
FROM _baton_steps`;
/** Tag of live-progress WebSockets. */
const LIVE_TAG = "live";
const DEFAULT_RETENTION = "7 days";
/** How long `cancel()` waits for compensations before answering (they go on after). */
const CANCEL_WAIT_MS = 10_000;

/**
 * The Execution actor: one instance per execution id runs one workflow, journaling every step in
 * its own SQLite so the execution survives eviction and restarts without repeating finished work.
 * Retries, sleeps, event timeouts, the heartbeat that revives a lost run, and retention are timers
 * on its alarm.
 *
 * Subclass it in your Worker, list the workflows it runs, and bind the subclass under
 * `new_sqlite_classes`. Call it through the typed client {@link executions}.
 *
 * @example
 * ```ts
 * import { ExecutionActor, workflow } from "baton";
 *
 * export const greet = workflow("greet", async (input: { name: string }, step) =>
 *   step.do("hello", () => `Hello, ${input.name}`),
 * );
 *
 * export class Executions extends ExecutionActor<Env> {
 *   readonly workflows = [greet];
 * }
 * ```
 */
export abstract class ExecutionActor<Env = unknown> extends Actor<Env, ExecutionTimers> {
  /** The workflows this actor runs (several versions of one name may be listed). */
  abstract readonly workflows: readonly AnyWorkflow[];

  /**
   * The name of this actor's own binding in its env: child executions are started, and report
   * back, through it. Override it when the binding is not named `Executions`.
   */
  protected readonly childBinding: string = "Executions";

  /**
   * The binding of the {@link ExecutionIndex} this actor reports its executions to, for
   * listing. When the env has no such binding, executions are not indexed.
   */
  protected readonly indexBinding: string = "ExecutionIndex";

  readonly #engine: Engine;
  readonly #lifecycle: StateMachine<StoredStatus, LifecycleEvent>;
  #registry: WorkflowRegistry | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    runMigrations(this.sql, EXECUTION_SCHEMA, EXECUTION_MIGRATIONS);
    this.#lifecycle = this.machine<StoredStatus, LifecycleEvent>({
      name: "execution",
      initial: "pending",
      transitions: LIFECYCLE,
      // Every change of status reaches the index through the outbox, in the same transaction.
      onTransition: () => this.#recordChange(false),
      // The state is the execution row's own status column.
      store: {
        read: () =>
          this.sql.value<StoredStatus>("SELECT status FROM _baton_execution WHERE id = 1"),
        write: (to, at) => {
          this.sql.run(
            "UPDATE _baton_execution SET status = ?, updated_at = ? WHERE id = 1",
            to,
            at,
          );
        },
      },
    });
    const host: EngineHost = {
      sql: this.sql,
      values: this.values,
      timers: this.timers,
      storage: ctx.storage,
      lifecycle: this.#lifecycle,
      registry: () => this.#workflowRegistry(),
      env,
      childBinding: () => this.childBinding,
      now: () => this.now(),
      stepDone: (seq, step, output) => this.#stepDone(seq, step, output),
      ended: () => this.#ended(),
      flushIndex: () => this.#deliverIndex().catch(() => {}),
      recordChange: (deleted) => this.#recordChange(deleted),
    };
    this.#engine = new Engine(host);
    this.timers
      .on("wake", async ({ seq }) => {
        this.#engine.wake(seq);
        await this.#engine.ensureHeartbeat();
      })
      .on("lifecycle", () => this.#engine.onLifecycleTimer())
      .on("report", async () => {
        await this.#engine.reportToParent();
      })
      .on("cancel-child", (payload, timer) => this.#engine.cancelChild(payload, timer.attempts))
      .on("check-children", (payload) => this.#engine.checkChildren(payload))
      .on("permit", (payload) => this.#engine.returnPermit(payload))
      .on("index", () => this.#deliverIndex());
    // Keep-alive pings of live subscribers are answered without waking the actor.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
  }

  // ---- the index --------------------------------------------------------------------------------

  #indexNs(): DurableObjectNamespace<ExecutionIndex> | null {
    return findNamespace<ExecutionIndex>(this.env, this.indexBinding);
  }

  /**
   * Outbox entry for the index, written inside the transaction of the change (or of the purge):
   * the change and its index update cannot diverge. A retry timer goes with it; the delivery is
   * tried right after this synchronous block.
   */
  #recordChange(deleted: boolean): void {
    if (!this.#indexNs()) return;
    const id = this.sql.value<string>("SELECT execution_id FROM _baton_execution WHERE id = 1");
    if (id === undefined) return;
    this.sql.run(
      "INSERT INTO _baton_index_outbox (execution_id, deleted) VALUES (?, ?)",
      id,
      deleted ? 1 : 0,
    );
    // Retried (every 5 minutes at most) for as long as it takes: the index must catch up.
    this.timers.enqueue(
      "index",
      {},
      { after: HEARTBEAT_MS },
      { key: "index", maxAttempts: Number.MAX_SAFE_INTEGER },
    );
    queueMicrotask(() => void this.#deliverIndex().catch(() => {}));
  }

  #indexing: Promise<void> | null = null;

  /** Delivers the outbox (one delivery at a time; a change meanwhile is picked up by its loop). */
  #deliverIndex(): Promise<void> {
    this.#indexing ??= this.#sendIndex().finally(() => {
      this.#indexing = null;
    });
    return this.#indexing;
  }

  async #sendIndex(): Promise<void> {
    for (;;) {
      const ns = this.#indexNs();
      const top = this.sql.one<{ version: number; execution_id: string; deleted: number }>(
        "SELECT * FROM _baton_index_outbox ORDER BY version DESC LIMIT 1",
      );
      if (!ns || !top) return;
      // The latest state (or the deletion) stands for every change up to `top.version`.
      const row = top.deleted ? undefined : this.#engine.row();
      const update: IndexUpdate = {
        id: top.execution_id,
        version: top.version,
        execution: row
          ? {
              id: row.execution_id,
              workflow: row.workflow,
              status: row.status,
              mode: row.mode,
              createdAt: row.created_at,
              updatedAt: row.updated_at,
              endedAt: row.ended_at,
            }
          : null,
        source: this.ctx.id.toString(),
      };
      try {
        await ns.getByName(INDEX_SHARD).apply([update]);
      } catch (error) {
        if (!isBatonError(error, "INDEX_CONFLICT")) throw error;
        // A misconfiguration no retry can mend (another class has this id in the same index):
        // say so loudly and stop retrying; the index keeps the other class's row.
        console.error(`baton: execution "${top.execution_id}" is not indexed: ${error.message}`);
      }
      this.sql.run("DELETE FROM _baton_index_outbox WHERE version <= ?", top.version);
      const pending = () => this.sql.value<number>("SELECT COUNT(*) FROM _baton_index_outbox");
      if (pending() === 0) {
        await this.timers.cancel("index");
        // A change that came during that await goes now too, not at its retry timer.
        if (pending() === 0) return;
      }
    }
  }

  // ---- live progress ---------------------------------------------------------------------------

  /**
   * Live progress over a WebSocket: `initial_state` first, then a `progress` event per finished
   * step, then exactly one terminal event (`completed`, `failed` or `cancelled`), after which the
   * socket is closed. Sockets use the Hibernation API: an idle subscriber does not keep the
   * actor awake, and the socket survives the actor's eviction. Reach it from a Worker route with
   * {@link liveProgress} (or the gateway's live route); this is the actor's only `fetch` use.
   */
  override async fetch(request: Request): Promise<Response> {
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") {
      return Response.json(
        {
          code: "INVALID_ARGUMENT",
          message: "Live progress is a WebSocket: send the request with `Upgrade: websocket`.",
        },
        { status: 426 },
      );
    }
    const row = this.#engine.row();
    if (!row) {
      return Response.json(
        {
          code: "EXECUTION_NOT_FOUND",
          message: "No such execution: it was never started, or its retention ran out.",
        },
        { status: 404 },
      );
    }
    // Ended already: build its terminal event first, then (if it is still ended) accept, send
    // and close with no await in between, so nothing from a restart slips in.
    const ending = TERMINAL.has(row.status) ? await this.#terminalMessage(row) : null;
    const current = this.#engine.row() ?? row;
    const ended = ending !== null && TERMINAL.has(current.status) && current.run === row.run;
    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server, [LIVE_TAG]);
    const initial: InitialStateEvent = { type: "initial_state", state: this.#info(current) };
    server.send(JSON.stringify(initial));
    if (ended) {
      server.serializeAttachment({ ended: true });
      server.send(ending);
      server.close(1000, "The execution has ended.");
    }
    return new Response(null, { status: 101, webSocket: client });
  }

  /** Subscribers send nothing but pings (answered automatically); anything else is ignored. */
  override webSocketMessage(_ws: WebSocket, _message: string | ArrayBuffer): void {}

  override webSocketClose(ws: WebSocket, code: number, reason: string): void {
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, reason);
    } catch {
      // Already closed.
    }
  }

  override webSocketError(): void {}

  #stepDone(seq: number, step: string, output: () => unknown, index = seq): void {
    // Sockets that got (or are getting) a terminal event hear nothing more.
    const sockets = this.ctx
      .getWebSockets(LIVE_TAG)
      .filter((ws) => !(ws.deserializeAttachment() as { ended?: boolean } | null)?.ended);
    if (sockets.length === 0) return;
    const row = this.#engine.row();
    if (!row) return;
    const { json, omitted } = jsonIfSmall(output(), MAX_LIVE_OUTPUT_BYTES);
    const head = JSON.stringify({
      type: "progress",
      executionId: row.execution_id,
      step,
      stepIndex: index,
      totalSteps: row.total_steps,
      ...(omitted ? { outputOmitted: true } : {}),
      timestamp: this.now(),
    } satisfies ProgressEvent);
    broadcast(sockets, json === undefined ? head : `${head.slice(0, -1)},"output":${json}}`);
  }

  /** The terminal event goes to the sockets open now (a later one gets it from fetch()). */
  #ended(): void {
    const sockets = this.ctx
      .getWebSockets(LIVE_TAG)
      .filter((ws) => !(ws.deserializeAttachment() as { ended?: boolean } | null)?.ended);
    const row = this.#engine.row();
    if (sockets.length === 0 || !row) return;
    // Marked now, before the await below: a restart's progress never reaches them.
    for (const ws of sockets) ws.serializeAttachment({ ended: true });
    void this.#terminalMessage(row).then((message) => {
      broadcast(sockets, message);
      for (const ws of sockets) {
        try {
          ws.close(1000, "The execution has ended.");
        } catch {
          // Closed by the client meanwhile.
        }
      }
    });
  }

  async #terminalMessage(row: ExecutionRow): Promise<string> {
    const base = { executionId: row.execution_id, timestamp: row.ended_at ?? this.now() };
    if (row.status === "completed") {
      let result: unknown = OMITTED;
      try {
        result = await this.#engine.readOutput();
      } catch {
        // Unreadable: leave it out; result() reports the error.
      }
      const { json, omitted } = jsonIfSmall(result, MAX_LIVE_RESULT_BYTES);
      const head = JSON.stringify({
        type: "completed",
        ...base,
        ...(omitted ? { resultOmitted: true } : {}),
      } satisfies CompletedEvent);
      return json === undefined ? head : `${head.slice(0, -1)},"result":${json}}`;
    }
    if (row.status === "cancelled") {
      return JSON.stringify({ type: "cancelled", ...base } satisfies CancelledEvent);
    }
    const error = row.error ? parseError(row.error) : null;
    return JSON.stringify({
      type: "failed",
      ...base,
      error: error?.message ?? `The execution ${row.status}.`,
      code: error?.code ?? (row.status === "timed_out" ? "TIMED_OUT" : "FAILED"),
      step: error?.step ?? null,
    } satisfies FailedEvent);
  }

  // ---- workflow executions ---------------------------------------------------------------------

  /**
   * Starts `workflow` with `input` as execution `options.id` (this actor's name). Idempotent: a
   * second start with the same workflow and input returns the same execution; a different one
   * fails with `EXECUTION_CONFLICT`.
   *
   * @throws BatonError `UNKNOWN_WORKFLOW`, `INVALID_INPUT` (with `details.issues`),
   *   `EXECUTION_CONFLICT`, `INVALID_ARGUMENT`, `PAYLOAD_TOO_LARGE`, `SERIALIZATION_ERROR`.
   */
  async start(workflow: string, input: Value, options: StartOptions): Promise<ExecutionInfo> {
    return this.#info(await this.#start(workflow, input, options));
  }

  async #start(
    workflow: string,
    input: Value,
    options: StartOptions,
    parent?: { id: string; seq: number; binding: string },
  ): Promise<ExecutionRow> {
    if (typeof workflow !== "string" || workflow.length === 0) {
      invalidArgument("workflow", "must be a registered workflow name", workflow);
    }
    const id = this.#checkId(options);
    const wf = this.#workflowRegistry().get(workflow);
    if (!wf) {
      throw new BatonError(
        "UNKNOWN_WORKFLOW",
        `No workflow named "${workflow}" is registered on this Execution actor. Registered: ${this.#workflowRegistry().names().join(", ") || "(none)"}.`,
        { workflow },
      );
    }
    let value: unknown = input;
    if (wf.schema) {
      const result = await wf.schema["~standard"].validate(input);
      if (result.issues) {
        const issues = result.issues.map((issue) => ({
          message: issue.message,
          path: (issue.path ?? []).map((p) => String(typeof p === "object" ? p.key : p)),
        }));
        throw new BatonError(
          "INVALID_INPUT",
          `Input of workflow "${workflow}" is invalid: ${issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ")}.`,
          { workflow, issues },
        );
      }
      value = result.value;
    }
    // Compare what the workflow will see: the validated value, with object keys in a canonical order.
    const digest = await Engine.digest(workflow, value);
    const existing = this.#engine.row();
    if (existing) {
      if (
        existing.mode === "workflow" &&
        existing.workflow === workflow &&
        existing.input_digest === digest
      ) {
        this.#engine.kick();
        return existing;
      }
      throw new BatonError(
        "EXECUTION_CONFLICT",
        `Execution "${id}" already exists as ${existing.mode === "tracked" ? "a tracked execution" : `workflow "${existing.workflow}"`} with ${existing.workflow === workflow ? "a different input" : "another workflow"}. Use a new id, or the same workflow and input to get the existing execution.`,
        { id, workflow: existing.workflow },
      );
    }
    const retentionMs = parseDuration(
      options?.retention ?? wf.options.retention ?? DEFAULT_RETENTION,
    );
    const bytes = await encode(value);
    // Re-check after the await: a concurrent start of the same id may have won meanwhile.
    if (this.#engine.row()) return this.#start(workflow, input, options, parent);
    const now = this.now();
    this.sql.transaction(() => {
      this.sql.run(
        `INSERT INTO _baton_execution (id, execution_id, workflow, version, mode, status, input,
           input_digest, retention_ms, created_at, updated_at, parent_id, parent_seq, parent_binding)
         VALUES (1, ?, ?, ?, 'workflow', 'pending', ?, ?, ?, ?, ?, ?, ?, ?)`,
        id,
        wf.name,
        wf.version,
        this.#engine.storeBlob("input", bytes),
        digest,
        retentionMs,
        now,
        now,
        parent?.id ?? null,
        parent?.seq ?? null,
        parent?.binding ?? null,
      );
      this.#lifecycle.send("start");
    });
    await this.#engine.startHeartbeat();
    this.#engine.kick();
    return this.#requireRow();
  }

  /**
   * Starts `workflow` (as {@link ExecutionActor.start}) and waits for its result, in one call.
   *
   * @throws BatonError as `start`, and `RESULT_TIMEOUT` as `result`.
   */
  async execute(
    workflow: string,
    input: Value,
    options: StartOptions & { timeout?: Duration },
  ): Promise<ExecutionResult> {
    await this.#start(workflow, input, options);
    return this.result(options?.timeout === undefined ? {} : { timeout: options.timeout });
  }

  /**
   * Starts this execution as the child of another (called by the parent's `step.child`). As
   * `start`, plus: when it ends it reports its outcome to the parent, by a retried timer.
   */
  async startChild(
    workflow: string,
    input: Value,
    options: { id: string; parent: { id: string; seq: number; binding: string } },
  ): Promise<ExecutionInfo> {
    const parent = options?.parent;
    if (
      typeof parent?.id !== "string" ||
      !Number.isSafeInteger(parent.seq) ||
      typeof parent.binding !== "string"
    ) {
      invalidArgument("parent", "must be { id, seq, binding }", parent);
    }
    // A child is its parent's step: once it exists, that parent step gets it back whatever input
    // a replay computes now; anyone else is refused.
    const existing = this.#engine.row();
    if (existing) {
      if (
        existing.parent_id !== parent.id ||
        existing.parent_seq !== parent.seq ||
        existing.parent_binding !== parent.binding
      ) {
        throw new BatonError(
          "EXECUTION_CONFLICT",
          `Execution "${existing.execution_id}" already exists and is not the child of step ${parent.seq} of "${parent.id}".`,
          { id: existing.execution_id, parent: existing.parent_id },
        );
      }
      this.#engine.kick();
      return this.#info(existing);
    }
    return this.#info(await this.#start(workflow, input, { id: options.id }, parent));
  }

  /**
   * A child reports how it ended (at least once; applied once). Returns whether it was applied.
   */
  async childDone(seq: number, childId: string, result: ChildResult<Value>): Promise<boolean> {
    const r = result as { ok?: unknown; id?: unknown; error?: { message?: unknown } } | null;
    if (
      !Number.isSafeInteger(seq) ||
      typeof childId !== "string" ||
      typeof r !== "object" ||
      r === null ||
      r.id !== childId ||
      (r.ok !== true && (r.ok !== false || typeof r.error?.message !== "string"))
    ) {
      invalidArgument(
        "child report",
        "must be (seq, childId, { ok: true, id, value } | { ok: false, id, error })",
        { seq, childId },
      );
    }
    this.#requireRow();
    return this.#engine.childReport(seq, childId, result);
  }

  /**
   * The journal up to checkpoint `name`, for a fork (see {@link ExecutionsClient.fork}).
   *
   * @throws BatonError `CHECKPOINT_NOT_FOUND`, `EXECUTION_NOT_FOUND`.
   */
  async exportCheckpoint(name: string): Promise<ForkSnapshot> {
    if (typeof name !== "string" || name.length === 0 || name.length > 200) {
      invalidArgument("checkpoint", "must be a string of 1 to 200 characters", name);
    }
    this.#requireRow();
    return this.#engine.exportCheckpoint(name);
  }

  /**
   * Starts this (new) execution as a fork: it replays `snapshot` (a journal exported at a
   * checkpoint of another execution) without running those steps, then runs on with the newest
   * registered version of the workflow. Idempotent for the same snapshot.
   *
   * @throws BatonError `UNKNOWN_WORKFLOW`, `EXECUTION_CONFLICT`, `INVALID_ARGUMENT`.
   */
  async importFork(
    snapshot: ForkSnapshot,
    options: StartOptions & { from: string },
  ): Promise<ExecutionInfo> {
    if (typeof snapshot !== "object" || snapshot === null || !Array.isArray(snapshot.steps)) {
      invalidArgument("snapshot", "must come from exportCheckpoint()", snapshot);
    }
    const id = this.#checkId(options);
    const wf = this.#workflowRegistry().get(snapshot.workflow);
    if (!wf) {
      throw new BatonError(
        "UNKNOWN_WORKFLOW",
        `No workflow named "${snapshot.workflow}" is registered on this Execution actor.`,
        { workflow: snapshot.workflow },
      );
    }
    // Same source, same journal prefix: the same fork.
    const digest = `fork:${await Engine.digest(snapshot.workflow, {
      from: options?.from,
      version: snapshot.version,
      steps: snapshot.steps.map((step) => [step.seq, step.name, step.status, step.endedAt]),
    })}`;
    const existing = this.#engine.row();
    if (existing) {
      if (existing.input_digest === digest) return this.#info(existing);
      throw new BatonError("EXECUTION_CONFLICT", `Execution "${id}" already exists.`, { id });
    }
    const retentionMs = parseDuration(
      options?.retention ?? wf.options.retention ?? DEFAULT_RETENTION,
    );
    const input = new Uint8Array(snapshot.input);
    const now = this.now();
    await this.#engine.importJournal(snapshot, () => {
      this.sql.run(
        `INSERT INTO _baton_execution (id, execution_id, workflow, version, mode, status, input,
           input_digest, retention_ms, created_at, updated_at)
         VALUES (1, ?, ?, ?, 'workflow', 'pending', ?, ?, ?, ?, ?)`,
        id,
        wf.name,
        wf.version,
        this.#engine.storeBlob("input", input),
        digest,
        retentionMs,
        now,
        now,
      );
      this.#lifecycle.send("start");
    });
    await this.#engine.startHeartbeat();
    this.#engine.kick();
    return this.#info(this.#requireRow());
  }

  /**
   * The execution's state.
   *
   * @throws BatonError `EXECUTION_NOT_FOUND` if it never existed or its retention ran out.
   */
  status(): ExecutionInfo {
    // The hottest read (clients poll it): the row and the journal's counts in one statement.
    const snapshot = this.sql.one<ExecutionRow & JournalStats>(
      `SELECT ${ROW_COLUMNS}, stats.* FROM _baton_execution, (${JOURNAL_STATS}) AS stats WHERE id = 1`,
    );
    const row = snapshot ?? this.#requireRow();
    this.#engine.kick(row);
    return this.#info(row, snapshot);
  }

  /**
   * Waits until the execution finishes (or `timeout` passes) and returns its outcome.
   *
   * @throws BatonError `RESULT_TIMEOUT` if it is still unfinished after `timeout`.
   */
  async result(options: { timeout?: Duration } = {}): Promise<ExecutionResult> {
    this.#requireRow();
    const timeoutMs = options?.timeout === undefined ? undefined : parseDuration(options.timeout);
    this.#engine.kick();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut =
      timeoutMs === undefined
        ? new Promise<"timeout">(() => {})
        : new Promise<"timeout">((resolve) => {
            timer = setTimeout(() => resolve("timeout"), timeoutMs);
          });
    let row = this.#requireRow();
    try {
      // Loop: a restart may make a finished execution run again while we wait.
      while (!TERMINAL.has(row.status)) {
        const outcome = await Promise.race([this.#engine.whenTerminal(), timedOut]);
        row = this.#requireRow();
        if (outcome === "timeout" && !TERMINAL.has(row.status)) {
          throw new BatonError(
            "RESULT_TIMEOUT",
            `Execution is still ${this.#info(row).status} after ${timeoutMs} ms.`,
            { timeoutMs },
          );
        }
      }
    } finally {
      clearTimeout(timer);
    }
    if (row.status === "completed") {
      return {
        ok: true,
        status: "completed",
        value: (await this.#engine.readOutput()) as Value,
      };
    }
    return {
      ok: false,
      status: row.status as "failed" | "cancelled" | "timed_out",
      error: parseError(row.error),
    };
  }

  /**
   * The per-step audit trail, in call order: up to `limit` entries (default 1000, at most 1000)
   * from position `from` (default 0). Page through long journals with `from`.
   */
  async journal(options: { from?: number; limit?: number } = {}): Promise<JournalEntry[]> {
    const from = options?.from ?? 0;
    const limit = options?.limit ?? 1000;
    if (!Number.isSafeInteger(from) || from < 0)
      invalidArgument("from", "must be an integer >= 0", from);
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > 1000) {
      invalidArgument("limit", "must be an integer from 1 to 1000", limit);
    }
    this.#requireRow();
    const rows = this.sql.all<StepRow>(
      "SELECT * FROM _baton_steps WHERE seq >= ? ORDER BY seq LIMIT ?",
      from,
      limit,
    );
    const entries: JournalEntry[] = [];
    for (const row of rows) {
      const entry: JournalEntry = {
        seq: row.seq,
        name: row.name,
        kind: row.kind,
        status: row.status,
        attempts: row.attempts,
        startedAt: row.started_at,
        endedAt: row.ended_at,
        wakeAt: row.wake_at,
        eventType: row.event_type,
      };
      if (row.status === "completed" && row.output !== null) {
        entry.output = (await this.#engine.readStepOutput(row)) as Value;
      }
      if (row.error) entry.error = JSON.parse(row.error);
      entries.push(entry);
    }
    return entries;
  }

  /**
   * Sends an event. The oldest `waitForEvent` for its type resumes with it; with none waiting it
   * is buffered. With `dedupeKey`, a repeated delivery changes nothing.
   *
   * @throws BatonError `EXECUTION_FINISHED` if the execution has ended.
   */
  async sendEvent(
    type: string,
    payload?: Value,
    options: { dedupeKey?: string } = {},
  ): Promise<EventReceipt> {
    checkEventType(type);
    const dedupeKey = options?.dedupeKey;
    if (
      dedupeKey !== undefined &&
      (typeof dedupeKey !== "string" || dedupeKey.length === 0 || dedupeKey.length > MAX_ID)
    ) {
      invalidArgument("dedupeKey", `must be a string of 1 to ${MAX_ID} characters`, dedupeKey);
    }
    const row = this.#requireRow();
    if (row.mode !== "workflow") throw this.#trackedOnly("sendEvent");
    if (TERMINAL.has(row.status)) {
      throw new BatonError(
        "EXECUTION_FINISHED",
        `Execution "${row.execution_id}" is ${row.status}; it takes no more events.`,
        { status: row.status },
      );
    }
    const receipt = await this.#engine.sendEvent(type, payload, dedupeKey);
    if (receipt.delivered && !receipt.duplicate) await this.#engine.ensureHeartbeat();
    return receipt;
  }

  /** Pauses between steps: steps in flight finish, no new step starts until `resume()`. */
  async pause(): Promise<ExecutionInfo> {
    const row = this.#requireRow();
    if (row.mode !== "workflow") throw this.#trackedOnly("pause");
    if (row.status !== "paused") this.#lifecycle.send("pause");
    return this.#info(this.#requireRow());
  }

  /** Resumes a paused execution. */
  async resume(): Promise<ExecutionInfo> {
    const row = this.#requireRow();
    if (row.mode !== "workflow") throw this.#trackedOnly("resume");
    if (row.status !== "running") {
      this.#lifecycle.send("resume");
      await this.#engine.ensureHeartbeat();
    }
    this.#engine.openGate();
    this.#engine.kick();
    return this.#info(this.#requireRow());
  }

  /**
   * Cancels the execution: in-flight steps see their abort signal, no later step starts.
   * Idempotent: cancelling a finished execution returns it unchanged.
   */
  async cancel(): Promise<ExecutionInfo> {
    const row = this.#requireRow();
    if (TERMINAL.has(row.status)) return this.#info(row);
    const error: ExecutionError = {
      code: "CANCELLED",
      message: "The execution was cancelled.",
      name: "BatonError",
      step: this.#currentStep(),
      attempt: null,
    };
    this.#engine.killRun(new BatonError("CANCELLED", error.message));
    const now = this.now();
    this.sql.run(
      "UPDATE _baton_execution SET error = ?, ended_at = ?, cancel_requested = 1 WHERE id = 1",
      JSON.stringify(error),
      now,
    );
    if (row.mode === "tracked") {
      await this.#engine.finish(null, "cancel");
      return this.#info(this.#requireRow());
    }
    // A cancel-mode run replays to the first unfinished step, runs the compensations of the
    // completed steps (saga), then ends the execution as cancelled. finish() closes open steps
    // and cancels unfinished children.
    this.#engine.kick();
    await Promise.race([
      this.#engine.whenTerminal(),
      new Promise((resolve) => setTimeout(resolve, CANCEL_WAIT_MS)),
    ]);
    return this.#info(this.#requireRow());
  }

  /** Runs the workflow again from the start with the same input (a finished one, or a running one after cancelling its run). */
  async restart(): Promise<ExecutionInfo> {
    const row = this.#requireRow();
    if (row.mode !== "workflow") throw this.#trackedOnly("restart");
    if (!TERMINAL.has(row.status)) {
      await this.cancel();
      await this.#engine.whenTerminal(); // compensations may take longer than cancel() waits
    }
    this.#engine.killRun(new BatonError("CANCELLED", "The execution was restarted."));
    this.#engine.resetJournal();
    this.sql.run(
      `UPDATE _baton_execution SET output = NULL, error = NULL, ended_at = NULL, cancel_requested = 0,
       run = run + 1 WHERE id = 1`,
    );
    this.#lifecycle.send("restart");
    await this.#engine.ensureHeartbeat();
    this.#engine.kick();
    return this.#info(this.#requireRow());
  }

  // ---- tracked executions (run by outside code) --------------------------------------------------

  /**
   * Starts tracking an execution that outside code runs itself (the seed `ExecutionState` API).
   * Idempotent for the same name and total.
   */
  async track(
    name: string,
    options: { id: string; totalSteps?: number; retention?: Duration },
  ): Promise<ExecutionInfo> {
    if (typeof name !== "string" || name.length === 0 || name.length > MAX_ID) {
      invalidArgument("name", `must be a string of 1 to ${MAX_ID} characters`, name);
    }
    const id = this.#checkId(options);
    const total = options?.totalSteps;
    if (total !== undefined && (!Number.isSafeInteger(total) || total < 0)) {
      invalidArgument("totalSteps", "must be an integer >= 0", total);
    }
    const digest = `tracked:${total ?? ""}`;
    const existing = this.#engine.row();
    if (existing) {
      if (
        existing.mode === "tracked" &&
        existing.workflow === name &&
        existing.input_digest === digest
      ) {
        return this.#info(existing);
      }
      throw new BatonError("EXECUTION_CONFLICT", `Execution "${id}" already exists.`, { id });
    }
    const now = this.now();
    this.sql.transaction(() => {
      this.sql.run(
        `INSERT INTO _baton_execution (id, execution_id, workflow, version, mode, status, input_digest,
           total_steps, retention_ms, created_at, updated_at)
         VALUES (1, ?, ?, 1, 'tracked', 'pending', ?, ?, ?, ?, ?)`,
        id,
        name,
        digest,
        total ?? null,
        parseDuration(options?.retention ?? DEFAULT_RETENTION),
        now,
        now,
      );
      this.#lifecycle.send("start");
    });
    return this.#info(this.#requireRow());
  }

  /** Reports progress of a tracked execution: a step finished (with its index and output). */
  async progress(
    step: string,
    options: { index?: number; output?: Value } = {},
  ): Promise<ExecutionInfo> {
    if (typeof step !== "string" || step.length === 0 || step.length > 256) {
      invalidArgument("step", "must be a string of 1 to 256 characters", step);
    }
    const index = options?.index;
    if (index !== undefined && (!Number.isSafeInteger(index) || index < 0)) {
      invalidArgument("index", "must be an integer >= 0", index);
    }
    this.#requireTracked("progress");
    // Encode first; then check the state, pick the position and write with no await between,
    // so concurrent reports (and a concurrent complete or cancel) cannot interleave.
    const bytes = options?.output === undefined ? null : await encode(options.output);
    const row = this.#requireTracked("progress");
    if (row.status !== "running") {
      throw new BatonError(
        "INVALID_TRANSITION",
        `Execution is ${row.status}; progress can only be reported while it runs.`,
        { state: row.status, event: "progress", validEvents: [] },
      );
    }
    const seq = (this.sql.value<number>("SELECT MAX(seq) FROM _baton_steps") ?? -1) + 1;
    const now = this.now();
    this.sql.run(
      `INSERT INTO _baton_steps (seq, name, occurrence, kind, status, attempts, started_at, ended_at, output)
       VALUES (?, ?, ?, 'progress', 'completed', 1, ?, ?, ?)`,
      seq,
      step,
      index ?? seq,
      now,
      now,
      bytes === null ? null : this.#engine.storeBlob(`step:${seq}`, bytes),
    );
    this.sql.run("UPDATE _baton_execution SET updated_at = ? WHERE id = 1", now);
    this.#stepDone(seq, step, () => options?.output, index ?? seq);
    return this.#info(this.#requireRow());
  }

  /** Completes a tracked execution with its result. */
  async complete(result?: Value): Promise<ExecutionInfo> {
    this.#requireTracked("complete");
    const bytes = await encode(result);
    this.#guard("complete");
    this.sql.run(
      "UPDATE _baton_execution SET output = ?, ended_at = ? WHERE id = 1",
      this.#engine.storeBlob("output", bytes),
      this.now(),
    );
    await this.#engine.finish(null, "complete");
    return this.#info(this.#requireRow());
  }

  /** Fails a tracked execution with an error message (or `{ message, code }`). */
  async fail(error: string | { message: string; code?: string }): Promise<ExecutionInfo> {
    const message = typeof error === "string" ? error : error?.message;
    if (typeof message !== "string" || message.length === 0 || message.length > 10_000) {
      invalidArgument(
        "error",
        "must be a message of 1 to 10000 characters, or { message, code? }",
        error,
      );
    }
    const code =
      typeof error === "object" && typeof error.code === "string" ? error.code : "FAILED";
    this.#requireTracked("fail");
    this.#guard("fail");
    const info: ExecutionError = {
      code,
      message,
      name: "Error",
      step: this.#currentStep(),
      attempt: null,
    };
    this.sql.run(
      "UPDATE _baton_execution SET error = ?, ended_at = ? WHERE id = 1",
      JSON.stringify(info),
      this.now(),
    );
    await this.#engine.finish(null, "fail");
    return this.#info(this.#requireRow());
  }

  // ---- internals ---------------------------------------------------------------------------------

  /** Throws `INVALID_TRANSITION` (listing the valid events) unless `event` is valid now. */
  #guard(event: LifecycleEvent): void {
    if (!this.#lifecycle.can(event)) this.#lifecycle.send(event);
  }

  #workflowRegistry(): WorkflowRegistry {
    this.#registry ??= new WorkflowRegistry(this.workflows ?? []);
    return this.#registry;
  }

  #checkId(options: { id: string } | undefined): string {
    const id = options?.id;
    if (typeof id !== "string" || id.length === 0 || id.length > MAX_ID) {
      invalidArgument("id", `must be a string of 1 to ${MAX_ID} characters`, id);
    }
    const name = this.ctx.id.name;
    if (name !== undefined && name !== id) {
      invalidArgument(
        "id",
        `must be this actor's name ("${name}"); get the stub with getByName(id)`,
        id,
      );
    }
    return id;
  }

  #requireRow(): ExecutionRow {
    const row = this.#engine.row();
    if (!row) {
      throw new BatonError(
        "EXECUTION_NOT_FOUND",
        `No execution "${this.ctx.id.name ?? this.ctx.id.toString()}": it was never started, or its retention ran out.`,
        { id: this.ctx.id.name ?? null },
      );
    }
    return row;
  }

  #requireTracked(method: string): ExecutionRow {
    const row = this.#requireRow();
    if (row.mode !== "tracked") {
      throw new BatonError(
        "INVALID_TRANSITION",
        `${method}() reports on tracked executions; "${row.execution_id}" is run by workflow "${row.workflow}".`,
        { state: row.status, event: method, validEvents: [] },
      );
    }
    return row;
  }

  #trackedOnly(method: string): BatonError {
    return new BatonError(
      "INVALID_TRANSITION",
      `${method}() needs a workflow execution; this one is tracked (run by outside code).`,
      { event: method, validEvents: ["progress", "complete", "fail", "cancel"] },
    );
  }

  #currentStep(): string | null {
    return (
      this.sql.value<string>("SELECT name FROM _baton_steps ORDER BY seq DESC LIMIT 1") ?? null
    );
  }

  #info(row: ExecutionRow, known?: JournalStats): ExecutionInfo {
    // One pass over the journal for the counts and for what the open steps are doing.
    const stats = known ?? this.sql.one<JournalStats>(JOURNAL_STATS);
    let status: ExecutionStatus = row.status;
    // Running with every open step parked: say what it waits for.
    if (row.status === "running" && !stats?.busy) {
      if (stats?.waiting) status = "waiting";
      else if (stats?.sleeping) status = "sleeping";
    }
    return {
      id: row.execution_id,
      workflow: row.workflow,
      version: row.version,
      mode: row.mode,
      status,
      currentStep: stats?.current ?? null,
      stepCount: stats?.steps ?? 0,
      completedSteps: stats?.done ?? 0,
      totalSteps: row.total_steps,
      attempts: stats?.attempts ?? 0,
      run: row.run,
      createdAt: row.created_at,
      updatedAt: row.updated_at,
      endedAt: row.ended_at,
      error: row.error ? parseError(row.error) : null,
    };
  }
}

function parseError(text: string | null): ExecutionError {
  if (!text)
    return {
      code: "UNKNOWN",
      message: "no error recorded",
      name: "Error",
      step: null,
      attempt: null,
    };
  return JSON.parse(text) as ExecutionError;
}

/** Sends `message` to every socket; a socket closing meanwhile is skipped. */
function broadcast(sockets: WebSocket[], message: string): void {
  for (const ws of sockets) {
    try {
      ws.send(message);
    } catch {
      // Closed by the client meanwhile.
    }
  }
}
