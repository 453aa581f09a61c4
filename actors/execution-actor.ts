import { inputDigest } from "../src/execution/digest.ts";
import { Engine } from "../src/execution/engine.ts";
import { checkEventType } from "../src/execution/errors.ts";
import type { ForkSnapshot } from "../src/execution/fork.ts";
import { checkSnapshot, exportCheckpoint, exportJournal } from "../src/execution/fork.ts";
import { type HistoryPage, readHistory, waitForHistory } from "../src/execution/history.ts";
import type { EngineHost, ExecutionTimers } from "../src/execution/host.ts";
import { type InstanceStatusInfo, instanceStatus } from "../src/execution/instance-status.ts";
import {
  EXECUTION_MIGRATIONS,
  EXECUTION_SCHEMA,
  type ExecutionRow,
  type LifecycleEvent,
  ROW_COLUMNS,
  type StoredStatus,
  TERMINAL,
} from "../src/execution/schema.ts";
import type {
  EventReceipt,
  ExecutionDetails,
  ExecutionInfo,
  ExecutionResult,
  JournalEntry,
  StartOptions,
  Value,
} from "../src/execution/types.ts";
import { Actor } from "../src/foundation/actor.ts";
import { encode } from "../src/foundation/codec.ts";
import { type Duration, parseDuration } from "../src/foundation/duration.ts";
import { BatonError, checkId, invalidArgument } from "../src/foundation/errors.ts";
import type { StateMachine } from "../src/foundation/fsm.ts";
import {
  type TestAccess,
  type TestHooks,
  testAccess,
  testHooks,
} from "../src/foundation/test-hooks.ts";
import {
  type AnyWorkflow,
  type ChildResult,
  WorkflowRegistry,
  type WorkflowSource,
} from "../src/workflow/workflow.ts";
import {
  armDeadline,
  type CancelOptions,
  type ControlHost,
  cancelExecution,
  deleteExecution,
  type RestartOptions,
  restartExecution,
  timeOutExecution,
  waitForEnd,
} from "./execution/control.ts";
import { Changes, checkHistoryOptions } from "./execution/history.ts";
import { type ImportHost, startImported, startRecording } from "./execution/imported.ts";
import { IndexOutbox } from "./execution/index-outbox.ts";
import {
  checkExecutionId,
  created,
  DEFAULT_RETENTION,
  executionTimeoutMs,
  insertExecution,
  lifecycleDefinition,
  MAX_ID,
  notFound,
  notTracked,
  retentionMs,
  trackedOnly,
  validateInput,
  wasCreated,
} from "./execution/lifecycle.ts";
import { closeBack, LiveChannel } from "./execution/live.ts";
import {
  JOURNAL_STATS,
  type JournalStats,
  outcome,
  readJournal,
  toInfo,
} from "./execution/status.ts";
import {
  completeTracked,
  failTracked,
  reportProgress,
  startTracked,
  type TrackedHost,
} from "./execution/tracked.ts";

/**
 * The Execution actor: one instance per execution id runs one workflow, journaling every step in
 * its own SQLite so the execution survives eviction and restarts without repeating finished work.
 * Retries, sleeps, event timeouts, the heartbeat that revives a lost run, and retention are timers
 * on its alarm.
 *
 * Subclass it in your Worker, list the workflows it runs, and bind the subclass under
 * `new_sqlite_classes`. Call it through the typed client {@link executions}.
 *
 * This file is its RPC surface. The workflow engine is in `src/execution/`; beside this file,
 * `execution/` holds the actor's lifecycle helpers, its live-progress channel and its index
 * outbox.
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
  /**
   * The workflows this actor runs (several versions of one name may be listed): definitions from
   * {@link workflow}, and classes that extend {@link WorkflowEntrypoint}.
   */
  abstract readonly workflows: readonly (AnyWorkflow | WorkflowSource)[];

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

  /**
   * Most live-progress subscribers one execution takes at once, across every route and gateway
   * (each holds a WebSocket on this actor); more get 429 `LIMIT_EXCEEDED`.
   */
  protected readonly maxLiveSubscribers: number = 256;

  readonly #engine: Engine;
  readonly #lifecycle: StateMachine<StoredStatus, LifecycleEvent>;
  readonly #live: LiveChannel;
  readonly #outbox: IndexOutbox;
  /** Signals history readers that the execution may have moved. */
  readonly #changes = new Changes();
  #registry: WorkflowRegistry | undefined;
  /** The execution id this object was reached by (its name), when the runtime tells it. */
  readonly #name: string | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#name = ctx.id.name;
    this.#outbox = new IndexOutbox({
      sql: this.sql,
      timers: this.timers,
      env,
      indexBinding: () => this.indexBinding,
      source: ctx.id.toString(),
      row: () => this.#engine.row(),
    });
    this.#lifecycle = this.machine(
      lifecycleDefinition(this.sql, (t) => {
        this.#outbox.record(false);
        this.#changes.signal();
        this.#testHooks()?.transitions?.push({ execution: this.#name ?? "", ...t });
      }),
    );
    this.#live = new LiveChannel(ctx, {
      row: () => this.#engine.row(),
      readOutput: () => this.#engine.blobs.readOutput(),
      info: (row) => this.#info(row),
      now: () => this.now(),
      maxSubscribers: () => this.maxLiveSubscribers,
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
      schemaReady: () => this.schemaReady,
      stepDone: (seq, step, output) => {
        this.#changes.signal();
        this.#live.stepDone(seq, step, output);
      },
      ended: () => this.#live.ended(),
      flushIndex: () => this.#outbox.deliver().catch(() => {}),
      recordChange: (deleted) => this.#outbox.record(deleted),
      testHooks: () => this.#testHooks(),
      abort: (reason) => ctx.abort(reason),
      waitUntil: (promise) => ctx.waitUntil(promise),
    };
    this.#engine = new Engine(host);
    const children = this.#engine.children;
    this.timers
      .on("wake", async ({ seq }) => {
        this.#engine.wake(seq);
        await this.#engine.ensureHeartbeat();
      })
      .on("lifecycle", () => this.#engine.onLifecycleTimer())
      .on("deadline", ({ run }) => timeOutExecution(this.#control(), run))
      .on("report", async () => {
        await children.reportToParent();
      })
      .on("cancel-child", (payload, timer) => children.cancel(payload, timer.attempts))
      .on("check-children", (payload) => children.check(payload))
      .on("permit", (payload) => this.#engine.returnPermit(payload))
      .on("index", () => this.#outbox.deliver());
    // Keep-alive pings of live subscribers are answered without waking the actor.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
  }

  /** The Execution actor's tables, in their own schema scope. */
  protected override frameworkSchemas() {
    return [{ scope: EXECUTION_SCHEMA, migrations: EXECUTION_MIGRATIONS }];
  }

  /** Reading an id never started stores nothing: the tables come with the first start. */
  protected override deferSchema(): boolean {
    return true;
  }

  /** The clock: `baton/testing` may hold it for a test (never in production). */
  protected override now(): number {
    return this.#testHooks()?.clock ?? super.now();
  }

  #testHooks(): TestHooks | undefined {
    return testHooks(this.#name);
  }

  /**
   * @internal For `baton/testing` only (through `runInDurableObject`): keyed by a symbol, so no
   * RPC caller can reach it.
   */
  [testAccess](): TestAccess {
    return {
      probe: () => ({
        live: this.#engine.live,
        busy: this.#engine.busy,
        nextDue: this.schemaReady ? this.timers.nextDue() : null,
        now: this.now(),
      }),
      runDue: async () => {
        if (this.schemaReady) await this.timers.runDue();
      },
      importRecording: (snapshot: ForkSnapshot) => {
        this.ensureSchema();
        return startRecording(
          this.#imports(),
          this.#testHooks(),
          this.#workflowRegistry(),
          snapshot,
        );
      },
    };
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
    return this.#live.connect(request);
  }

  /** Subscribers send nothing but pings (answered automatically); anything else is ignored. */
  override webSocketMessage(_ws: WebSocket, _message: string | ArrayBuffer): void {}

  override webSocketClose(ws: WebSocket, code: number, reason: string): void {
    closeBack(ws, code, reason);
  }

  override webSocketError(): void {}

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
        `No workflow named "${workflow}" is registered on this Execution actor (${this.constructor.name}). Registered: ${this.#workflowRegistry().names().join(", ") || "(none)"}. Add it to the class's \`workflows\` list (and deploy), or check the name.`,
        { workflow },
      );
    }
    const timeoutMs = executionTimeoutMs(options?.timeout, wf.options.executionTimeout);
    const value = await validateInput(wf, input);
    // Compare what the workflow will see: the validated value, with object keys in a canonical order.
    const digest = await inputDigest(workflow, value);
    const existing = this.#engine.row();
    if (existing) {
      if (
        existing.mode === "workflow" &&
        existing.workflow === workflow &&
        existing.input_digest === digest &&
        options.exclusive !== true
      ) {
        this.#engine.kick();
        return existing;
      }
      if (options.exclusive === true) {
        throw new BatonError("EXECUTION_CONFLICT", `Execution "${id}" already exists.`, { id });
      }
      throw new BatonError(
        "EXECUTION_CONFLICT",
        `Execution "${id}" already exists as ${existing.mode === "tracked" ? "a tracked execution" : `workflow "${existing.workflow}"`} with ${existing.workflow === workflow ? "a different input" : "another workflow"}. Use a new id, or the same workflow and input to get the existing execution.`,
        { id, workflow: existing.workflow },
      );
    }
    const retention = retentionMs(options?.retention ?? wf.options.retention ?? DEFAULT_RETENTION);
    const bytes = await encode(value);
    // Re-check after the await: a concurrent start of the same id may have won meanwhile.
    if (this.#engine.row()) return this.#start(workflow, input, options, parent);
    this.ensureSchema();
    this.sql.transaction(() => {
      const [now, priorRuns] = [this.now(), this.#engine.priorRuns()];
      insertExecution(this.sql, {
        id,
        workflow: wf.name,
        version: wf.version,
        mode: "workflow",
        input: this.#engine.blobs.store("input", bytes),
        digest,
        retentionMs: retention,
        parent,
        now,
        priorRuns,
        timeoutMs,
      });
      if (timeoutMs !== null) armDeadline(this.timers, priorRuns + 1, now + timeoutMs);
      this.#lifecycle.send("start");
    });
    await this.#engine.startHeartbeat();
    this.#engine.kick();
    return created(this.#requireRow());
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
    const row = await this.#start(workflow, input, options);
    // A deadline this call set ends it: wait for that; else `timeout` bounds the wait.
    const timeout = !wasCreated(row) || row.deadline_at === null ? options?.timeout : undefined;
    return this.result(timeout === undefined ? {} : { timeout });
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
    return this.#engine.children.applyReport(seq, childId, result);
  }

  /**
   * The journal up to checkpoint `name`, for a fork (see {@link ExecutionsClient.fork}).
   *
   * @throws BatonError `CHECKPOINT_NOT_FOUND`, `EXECUTION_NOT_FOUND`.
   */
  async exportCheckpoint(name: string): Promise<ForkSnapshot> {
    checkId(name, "checkpoint", 200);
    this.#requireRow();
    return exportCheckpoint(this.#engine.replay, name);
  }

  /**
   * The journal as far as its steps have finished, outputs encoded: what `baton/testing` records
   * and replays against changed workflow code (a replay test).
   *
   * @throws BatonError `EXECUTION_NOT_FOUND`.
   */
  async exportJournal(): Promise<ForkSnapshot> {
    this.#requireRow();
    return exportJournal(this.#engine.replay);
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
    checkSnapshot(snapshot);
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
    const digest = `fork:${await inputDigest(snapshot.workflow, {
      from: options?.from,
      version: snapshot.version,
      steps: snapshot.steps.map((step) => [step.seq, step.name, step.status, step.endedAt]),
    })}`;
    const existing = this.#engine.row();
    if (existing) {
      if (existing.input_digest === digest) return this.#info(existing);
      throw new BatonError("EXECUTION_CONFLICT", `Execution "${id}" already exists.`, { id });
    }
    const retention = retentionMs(options?.retention ?? wf.options.retention ?? DEFAULT_RETENTION);
    const timeoutMs = executionTimeoutMs(options?.timeout, wf.options.executionTimeout);
    this.ensureSchema();
    const fork = { id, version: wf.version, digest, retention, timeoutMs };
    await startImported(this.#imports(), snapshot, fork);
    return this.#info(this.#requireRow());
  }

  /**
   * The execution's state.
   *
   * @throws BatonError `EXECUTION_NOT_FOUND` if it never existed or its retention ran out.
   */
  status(): ExecutionInfo {
    // The hottest read (clients poll it): the row and the journal's counts in one statement.
    const snapshot = this.schemaReady
      ? this.sql.one<ExecutionRow & JournalStats>(
          `SELECT ${ROW_COLUMNS}, stats.* FROM _baton_execution, (${JOURNAL_STATS}) AS stats WHERE id = 1`,
        )
      : undefined;
    const row = snapshot ?? this.#requireRow();
    this.#engine.kick(row);
    return this.#info(row, snapshot);
  }

  /**
   * Everything about the execution at once, for an operator's view (the dashboard): its state,
   * its input, its outcome once finished, and its parent if it is a child.
   *
   * @throws BatonError `EXECUTION_NOT_FOUND` if it never existed or its retention ran out.
   */
  async describe(): Promise<ExecutionDetails> {
    const row = this.#requireRow();
    const blobs = this.#engine.blobs;
    return {
      info: this.#info(row),
      input: (await blobs.readInput()) as Value,
      result: TERMINAL.has(row.status) ? await outcome(row, blobs) : null,
      parent:
        row.parent_id !== null && row.parent_seq !== null
          ? { id: row.parent_id, step: row.parent_seq }
          : null,
    };
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
    const row = await waitForEnd(this.#control(), timeoutMs, (r) => this.#info(r).status);
    return outcome(row, this.#engine.blobs);
  }

  /**
   * The per-step audit trail, in call order: up to `limit` entries (default 1000, at most 1000)
   * from position `from` (default 0), and no more step outputs than 8 MiB (a page of big
   * outputs ends early, after at least one entry). Page through long journals with `from` set
   * to the last entry's `seq` + 1.
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
    return readJournal(this.sql, this.#engine.blobs, from, limit);
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
    if (dedupeKey !== undefined) checkId(dedupeKey, "dedupeKey", MAX_ID);
    const row = this.#requireRow();
    if (row.mode !== "workflow") throw trackedOnly("sendEvent");
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
    if (row.mode !== "workflow") throw trackedOnly("pause");
    if (row.status !== "paused") this.#lifecycle.send("pause");
    return this.#info(this.#requireRow());
  }

  /** Resumes a paused execution. */
  async resume(): Promise<ExecutionInfo> {
    const row = this.#requireRow();
    if (row.mode !== "workflow") throw trackedOnly("resume");
    if (row.status !== "running") {
      this.#lifecycle.send("resume");
      await this.#engine.ensureHeartbeat();
    }
    this.#engine.openGate();
    this.#engine.kick();
    return this.#info(this.#requireRow());
  }

  /**
   * Cancels the execution: in-flight steps see their abort signal, no later step starts, and the
   * compensations of its completed steps run (saga) unless `compensate: false`. Idempotent:
   * cancelling a finished execution returns it unchanged.
   */
  async cancel(options: CancelOptions = {}): Promise<ExecutionInfo> {
    await cancelExecution(this.#control(), options);
    return this.#info(this.#requireRow());
  }

  /**
   * Runs the workflow again with the same input: from the start, or `from` a step (the steps
   * before it keep their outcomes and do not run again). A running execution is cancelled first.
   *
   * @throws BatonError `STEP_NOT_FOUND` when `from` names no step of the journal.
   */
  async restart(options: RestartOptions = {}): Promise<ExecutionInfo> {
    await restartExecution(this.#control(), options);
    return this.#info(this.#requireRow());
  }

  /**
   * Deletes the execution and everything stored of it now (a running one is cancelled first,
   * without compensations); its id can be started again.
   *
   * @throws BatonError `EXECUTION_NOT_FOUND`.
   */
  async delete(): Promise<void> {
    await deleteExecution(this.#control());
  }

  /**
   * The execution's history as events (Cloudflare Workflows' instance events): those at or
   * after `since` (ms) whose keys are not in `seen`, oldest first. With `wait` (at most 30 s), it
   * waits for a new event when there is none yet, unless the execution has ended.
   *
   * @throws BatonError `EXECUTION_NOT_FOUND`, `INVALID_ARGUMENT`.
   */
  async history(
    options: { since?: number; seen?: string[]; wait?: Duration } = {},
  ): Promise<HistoryPage> {
    const { since, seen, waitMs } = checkHistoryOptions(options);
    this.#requireRow();
    return waitForHistory(
      async () => readHistory(this.sql, this.#engine.blobs, this.#requireRow(), since, seen),
      () => this.#changes.next(),
      waitMs,
    );
  }

  /**
   * The execution's state in Cloudflare Workflows' terms (`InstanceStatus`): its status name,
   * its output once complete, its error once errored.
   *
   * @throws BatonError `EXECUTION_NOT_FOUND`.
   */
  async instanceStatus(): Promise<InstanceStatusInfo> {
    const row = this.#requireRow();
    this.#engine.kick(row);
    return instanceStatus(row, this.sql, this.#engine.blobs);
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
    return this.#info(startTracked(this.#tracked(), name, options));
  }

  /** Reports progress of a tracked execution: a step finished (with its index and output). */
  async progress(
    step: string,
    options: { index?: number; output?: Value } = {},
  ): Promise<ExecutionInfo> {
    await reportProgress(this.#tracked(), step, options);
    return this.#info(this.#requireRow());
  }

  /** Completes a tracked execution with its result. */
  async complete(result?: Value): Promise<ExecutionInfo> {
    await completeTracked(this.#tracked(), result);
    return this.#info(this.#requireRow());
  }

  /** Fails a tracked execution with an error message (or `{ message, code }`). */
  async fail(error: string | { message: string; code?: string }): Promise<ExecutionInfo> {
    await failTracked(this.#tracked(), error);
    return this.#info(this.#requireRow());
  }

  /**
   * Callers waiting in this actor for the execution to end (`result()`, `cancel()`), for
   * diagnostics: a wait that timed out or was given up is gone from it.
   */
  protected pendingResultWaits(): number {
    return this.#engine.pendingWaits;
  }

  // ---- internals ---------------------------------------------------------------------------------

  #tracked(): TrackedHost {
    return {
      ...this.#control(),
      checkId: (options) => this.#checkId(options),
      requireTracked: (method) => this.#requireTracked(method),
      ensureSchema: () => this.ensureSchema(),
      stepDone: (seq, step, output, index) => this.#live.stepDone(seq, step, output, index),
    };
  }

  #control(): ControlHost {
    return {
      sql: this.sql,
      timers: this.timers,
      engine: this.#engine,
      lifecycle: this.#lifecycle,
      now: () => this.now(),
      requireRow: () => this.#requireRow(),
      currentStep: () => this.#currentStep(),
      flushIndex: () => this.#outbox.deliver().catch(() => {}),
      cancelLifecycle: () => this.timers.cancel("lifecycle"),
    };
  }

  #imports(): ImportHost {
    return {
      id: this.#name,
      sql: this.sql,
      engine: this.#engine,
      lifecycle: this.#lifecycle,
      timers: this.timers,
      now: () => this.now(),
    };
  }

  #workflowRegistry(): WorkflowRegistry {
    this.#registry ??= new WorkflowRegistry(this.workflows ?? []);
    return this.#registry;
  }

  #checkId(options: { id: string } | undefined): string {
    return checkExecutionId(options?.id, this.ctx.id.name);
  }

  #requireRow(): ExecutionRow {
    const row = this.#engine.row();
    if (!row) throw notFound(this.ctx.id);
    return row;
  }

  #requireTracked(method: string): ExecutionRow {
    const row = this.#requireRow();
    if (row.mode !== "tracked") throw notTracked(row, method);
    return row;
  }

  #currentStep(): string | null {
    return (
      this.sql.value<string>("SELECT name FROM _baton_steps ORDER BY seq DESC LIMIT 1") ?? null
    );
  }

  #info(row: ExecutionRow, known?: JournalStats): ExecutionInfo {
    return toInfo(row, known ?? this.sql.one<JournalStats>(JOURNAL_STATS));
  }
}
