import { type Lease, type LockActor, MAX_LEASE_TTL } from "../../actors/lock-actor.ts";
import { findNamespace, requireNamespace, sha256Hex } from "../bindings.ts";
import { decode, decodeSync, encode, encodeText } from "../codec.ts";
import { parseDuration } from "../duration.ts";
import { BatonError, invalidArgument, isBatonError } from "../errors.ts";
import type { StateMachine } from "../fsm.ts";
import { OMITTED } from "../live.ts";
import { LocksClient } from "../locks.ts";
import type { Scheduler } from "../scheduler.ts";
import type { Sql } from "../sql.ts";
import type { ValueStore } from "../values.ts";
import {
  type AnyWorkflow,
  type ChildResult,
  isNonRetryable,
  type RetryPolicy,
  retryDelay,
  type Step,
  type StepAttempt,
  type StepError,
  type StepOptions,
  type WaitOptions,
  type WorkflowEvent,
  type WorkflowRegistry,
} from "../workflow.ts";
import {
  type EventRow,
  type ExecutionRow,
  type LifecycleEvent,
  type StepKind,
  type StepRow,
  type StoredStatus,
  TERMINAL,
} from "./schema.ts";
import type { ExecutionError, Value } from "./types.ts";

/** Timer kinds of the Execution actor. */
export type ExecutionTimers = {
  /** Wakes the step at `seq` (backoff over, sleep over, wait timed out). */
  wake: { seq: number };
  /**
   * One timer per execution (key "lifecycle"). While it runs: a heartbeat that brings an evicted
   * or aborted actor back and replays. Once it has ended: retention, deleting its state.
   */
  lifecycle: Record<string, never>;
  /** A finished child tells its parent (retried until the parent has it). */
  report: Record<string, never>;
  /** A failed or cancelled parent cancels an unfinished child (retried). */
  "cancel-child": { binding: string; childId: string };
  /**
   * A parent with unfinished children asks them how they are (every minute at first, then less
   * often, up to hourly): the safety net under their reports.
   */
  "check-children": { interval: number };
  /** Delivers the index outbox to the ExecutionIndex (tried at once; this is the retry). */
  index: Record<string, never>;
  /** Gives a finished execution's concurrency permit back (retried by the scheduler). */
  permit: { binding: string; lock: string; waiter: string; lease: Lease | null };
};

/** Defaults of a step's retry policy (Cloudflare Workflows' defaults, plus a cap). */
const DEFAULT_RETRIES = {
  limit: 5,
  delay: "10 seconds",
  backoff: "exponential",
  maxDelay: "1 hour",
} as const;
/** How often a running execution's heartbeat checks that its runner is alive. */
export const HEARTBEAT_MS = 30_000;
/** First and longest interval of a parent's check on its unfinished children. */
const CHILD_CHECK_MS = 60_000;
const MAX_CHILD_CHECK_MS = 3_600_000;
/** Outputs and inputs larger than this (encoded) are stored in the value store, not inline. */
const INLINE_MAX = 1_000_000;
/** Event payloads larger than this (encoded) are refused. */
const MAX_EVENT_BYTES = 1024 * 1024;
const MAX_STEP_NAME = 256;
/** Journal name prefix of a saga compensation step. */
const COMPENSATE_PREFIX = "$compensate:";
/** Journal name prefix of `step.checkpoint(name)`. */
const CHECKPOINT_PREFIX = "$checkpoint:";

/** Services the engine uses from its actor. */
export interface EngineHost {
  readonly sql: Sql;
  readonly values: ValueStore;
  readonly timers: Scheduler<ExecutionTimers>;
  readonly storage: DurableObjectStorage;
  readonly lifecycle: StateMachine<StoredStatus, LifecycleEvent>;
  readonly registry: () => WorkflowRegistry;
  readonly env: unknown;
  /** The binding name of this Execution actor's own namespace (for children and reports). */
  childBinding(): string;
  now(): number;
  /**
   * A step finished in this run (not a replay): live subscribers hear of it. `output` is read
   * only if someone listens; it returns {@link OMITTED} for an output that cannot be shown.
   */
  stepDone(seq: number, step: string, output: () => unknown): void;
  /** The execution reached a terminal state: live subscribers get the terminal event. */
  ended(): void;
  /** Delivers pending index updates now (resolves when done or failed; never rejects). */
  flushIndex(): Promise<void>;
  /** Writes an index outbox entry (the execution's state changed, or it was deleted). */
  recordChange(deleted: boolean): void;
}

/** Thrown into the workflow when a step has failed for good (it may catch it). */
export class StepFailedError extends Error {
  readonly code: string;
  readonly step: string;
  readonly attempt: number;
  constructor(step: string, attempt: number, error: StepError) {
    super(error.message);
    this.name = error.name;
    this.code = error.code ?? "STEP_FAILED";
    this.step = step;
    this.attempt = attempt;
  }
}

/** One pass of the workflow function over the journal. Dead runs never resume. */
class Run {
  dead = false;
  seq = 0;
  readonly occurrences = new Map<string, number>();
  readonly controllers = new Set<AbortController>();
  /** Highest journaled seq when the run started: steps above it are new (no lookup needed). */
  readonly journaled: number;
  /** The latest step started by this run. */
  current: string | null = null;
  /** Compensations of this run's completed steps (saga), with their journal positions. */
  readonly compensations: Array<{
    seq: number;
    name: string;
    output: unknown;
    fn: (output: unknown, attempt: StepAttempt) => unknown;
    policy: ResolvedPolicy;
  }> = [];
  /**
   * The run is failing or cancelling: no new step starts and no retry is attempted (steps in the
   * journal still replay), so the compensations see a settled set of completed steps.
   */
  stopping = false;
  /** Step bodies running and journaled outputs being read back, now. */
  busy = 0;
  readonly #idle: Array<() => void> = [];
  /** Child step calls of this run, awaited before it may complete (structured concurrency). */
  readonly children = new Set<Promise<unknown>>();
  /** Cancel mode: replay to the first unfinished step, then compensate and end. */
  readonly cancelling: boolean;
  /** Resolves when a cancel-mode replay reaches its first unfinished step. */
  readonly frontier: Promise<void>;
  reachFrontier: () => void = () => {};

  constructor(journaled: number, cancelling = false) {
    this.journaled = journaled;
    this.cancelling = cancelling;
    this.frontier = new Promise<void>((resolve) => {
      this.reachFrontier = resolve;
    });
  }

  kill(reason: unknown): void {
    this.dead = true;
    for (const controller of this.controllers) controller.abort(reason);
    this.controllers.clear();
  }

  /** Stops new steps and aborts the bodies in flight (they settle, then compensation runs). */
  stop(reason: unknown): void {
    this.stopping = true;
    for (const controller of this.controllers) controller.abort(reason);
  }

  /** Counts work that settles soon (a body, a read-back) until it has settled. */
  track<T>(work: Promise<T>): Promise<T> {
    this.busy++;
    return work.finally(this.#done);
  }

  readonly #done = (): void => {
    if (--this.busy === 0 && this.#idle.length > 0) {
      for (const resolve of this.#idle.splice(0)) resolve();
    }
  };

  /** Resolves when no body runs and no journaled output is being read back. */
  async quiesce(): Promise<void> {
    for (;;) {
      if (this.busy > 0) await new Promise<void>((resolve) => this.#idle.push(resolve));
      // A macrotask turn: replayed steps resolve and their callers go on to their next call.
      await new Promise<void>((resolve) => setTimeout(resolve, 0));
      if (this.busy === 0 || this.dead) return;
    }
  }
}

/** Every column of the execution row but its (possibly big) input and output. */
export const ROW_COLUMNS = `execution_id, workflow, version, mode, status, input_digest, error, total_steps,
  run, retention_ms, parent_id, parent_seq, parent_binding, cancel_requested, created_at, updated_at,
  ended_at`;

const never = <T>(): Promise<T> => new Promise<T>(() => {});
const noop = (): void => {};

/**
 * The replay engine of one execution. It runs the workflow function from the top; `step.*`
 * calls return journaled results for steps already done and run the rest, journaling each.
 * Waits (backoff, sleep, events) are alarm timers; a run that is evicted mid-way is replayed by
 * the next timer or heartbeat.
 */
export class Engine {
  readonly #host: EngineHost;
  #run: Run | null = null;
  /** Who waits on a step (several may: a child step is awaited by its call and by the run's end). */
  readonly #waiters = new Map<number, Set<() => void>>();
  #resultWaiters: Array<() => void> = [];
  #gate: { promise: Promise<void>; open: () => void } | null = null;
  /** startChild calls on their way (a cancel of that child waits for them). */
  readonly #starting = new Set<Promise<unknown>>();

  constructor(host: EngineHost) {
    this.#host = host;
  }

  // ---- reading state -------------------------------------------------------------------------

  /** The execution's row, without its input and output (read them with readInput/readOutput). */
  row(): ExecutionRow | undefined {
    return this.#host.sql.one<ExecutionRow>(
      `SELECT ${ROW_COLUMNS} FROM _baton_execution WHERE id = 1`,
    );
  }

  #stepRow(seq: number): StepRow | undefined {
    return this.#host.sql.one<StepRow>("SELECT * FROM _baton_steps WHERE seq = ?", seq);
  }

  /** Resolves when the execution is terminal. */
  whenTerminal(): Promise<void> {
    const row = this.row();
    if (!row || TERMINAL.has(row.status)) return Promise.resolve();
    return new Promise((resolve) => this.#resultWaiters.push(resolve));
  }

  // ---- driving the run -----------------------------------------------------------------------

  /**
   * Starts a run if the execution should be running and none is. A paused execution is replayed
   * too when a step was in flight (it finishes; the next step waits at the gate).
   */
  kick(row: ExecutionRow | undefined = this.row()): void {
    if (row?.mode !== "workflow" || this.#run || TERMINAL.has(row.status)) return;
    const cancelling = row.cancel_requested === 1;
    if (
      !cancelling &&
      row.status !== "running" &&
      !(row.status === "paused" && this.#inFlight() > 0)
    )
      return;
    const max = this.#host.sql.value<number>("SELECT MAX(seq) FROM _baton_steps") ?? -1;
    const run = new Run(max, cancelling);
    this.#run = run;
    this.#execute(run, row).catch((error: unknown) => {
      // #execute handles workflow errors; this is a bug or a storage failure. Surface it.
      console.error("baton: execution run failed unexpectedly", error);
    });
  }

  /** Steps whose body was running (in this instance or in one that died). */
  #inFlight(): number {
    return (
      this.#host.sql.value<number>("SELECT COUNT(*) FROM _baton_steps WHERE status = 'running'") ??
      0
    );
  }

  /** A timer for `seq` fired: wake its waiter, or replay if no run is waiting on it. */
  wake(seq: number): void {
    const waiters = this.#waiters.get(seq);
    if (waiters) {
      this.#waiters.delete(seq);
      for (const resolve of waiters) resolve();
    } else this.kick();
  }

  /**
   * The lifecycle timer fired. Running: revive a lost run, and keep beating while a step body may
   * be running (when every unfinished step is a sleep, a wait or a backoff, their own timers or
   * `sendEvent` wake the execution). Ended: delete its state once retention has passed.
   */
  async onLifecycleTimer(): Promise<void> {
    const row = this.row();
    if (!row) return;
    if (TERMINAL.has(row.status)) {
      const expires = (row.ended_at ?? row.updated_at) + row.retention_ms;
      if (this.#host.now() >= expires) this.purge();
      else await this.#setLifecycle(expires);
      return;
    }
    if (row.mode !== "workflow") return;
    if (row.status === "paused") {
      // Steps in flight when it was paused still finish: keep reviving them.
      if (this.#inFlight() === 0) return;
      this.kick();
      await this.ensureHeartbeat();
      return;
    }
    if (row.status !== "running") return;
    this.kick();
    const parked = this.#host.sql.one<{ open: number; busy: number }>(
      `SELECT COUNT(*) AS open, COALESCE(SUM(status = 'running'), 0) AS busy FROM _baton_steps
       WHERE status IN ('running', 'backoff', 'sleeping', 'waiting')`,
    );
    if (parked && parked.open > 0 && parked.busy === 0) return;
    await this.ensureHeartbeat();
  }

  /** Arms the heartbeat (the lifecycle timer, due in HEARTBEAT_MS) unless it is already armed. */
  async ensureHeartbeat(): Promise<void> {
    const at = this.#host.now() + HEARTBEAT_MS;
    const existing = this.#host.timers.get("lifecycle");
    // Already beating (not, say, a retention timer left from before a restart).
    if (existing?.state === "pending" && existing.dueAt <= at) return;
    await this.#setLifecycle(at);
  }

  /** Arms the heartbeat of a new execution (there is no lifecycle timer yet). */
  async startHeartbeat(): Promise<void> {
    const at = this.#host.now() + HEARTBEAT_MS;
    await this.#host.timers.schedule("lifecycle", {}, { at }, { key: "lifecycle" });
  }

  async #setLifecycle(at: number): Promise<void> {
    const moved = await this.#host.timers.reschedule("lifecycle", { at });
    if (!moved) await this.#host.timers.schedule("lifecycle", {}, { at }, { key: "lifecycle" });
  }

  /** Lets a paused run through its gate. */
  openGate(): void {
    this.#gate?.open();
    this.#gate = null;
  }

  /** Ends the live run: in-flight steps see their signals abort; nothing resumes it. */
  killRun(reason: unknown): void {
    this.#run?.kill(reason);
    this.#run = null;
    this.#waiters.clear();
    this.openGate();
  }

  /** Wakes everyone waiting for the result. */
  settle(): void {
    const waiters = this.#resultWaiters;
    this.#resultWaiters = [];
    for (const resolve of waiters) resolve();
  }

  async #execute(run: Run, row: ExecutionRow): Promise<void> {
    const wf = this.#host.registry().get(row.workflow, row.version);
    try {
      if (!wf) {
        throw new BatonError(
          "UNKNOWN_WORKFLOW",
          `Version ${row.version} of workflow "${row.workflow}" is not registered on this Execution actor; keep old versions registered until their executions finish.`,
          { workflow: row.workflow, version: row.version },
        );
      }
      const input = await this.readInput();
      if (run.dead) return;
      const step = this.#stepApi(run, wf, row);
      const start = () =>
        (wf.fn as (i: unknown, s: Step, c: unknown) => Promise<unknown>)(input, step, {
          executionId: row.execution_id,
          workflow: row.workflow,
          version: row.version,
          env: this.#host.env,
        });
      // The permit is a journaled step like any other: a cancel-mode run replays it too (and
      // stops there if the execution never got one).
      const permit = wf.options.concurrency ? this.#takePermit(wf, row, input, step) : undefined;
      if (run.cancelling) {
        // Replay up to the first step that is not finished (or to the end), then compensate.
        const stopped = permit
          ? await Promise.race([
              permit.then(
                () => false,
                () => true,
              ),
              run.frontier.then(() => true),
            ])
          : false;
        if (!stopped) await Promise.race([start().then(noop, noop), run.frontier]);
        if (run.dead) return;
        run.stop(new BatonError("CANCELLED", "The execution was cancelled."));
        await run.quiesce();
        if (run.dead) return;
        const compensation = await this.#compensate(run, row);
        if (run.dead) return;
        if (compensation) this.#setCompensation(compensation);
        await this.finish(run, "cancel");
        return;
      }
      await permit;
      const output = await start();
      if (run.dead) return;
      // Structured concurrency: the parent completes only after every child it started ended,
      // awaited or not: first the child calls of this run (one may not have journaled its child
      // yet), then any child step the journal still shows waiting.
      while (run.children.size > 0) {
        const calls = [...run.children];
        run.children.clear();
        await Promise.allSettled(calls);
        if (run.dead) return;
      }
      for (const open of this.#host.sql.all<{ seq: number }>(
        "SELECT seq FROM _baton_steps WHERE kind = 'child' AND status = 'waiting' ORDER BY seq",
      )) {
        await this.#awaitChild(run, open.seq);
      }
      if (run.dead) return;
      // A journal longer than this run's step calls means steps were removed from the code.
      const extra = this.#host.sql.one<{ seq: number; name: string }>(
        "SELECT seq, name FROM _baton_steps WHERE seq >= ? ORDER BY seq LIMIT 1",
        run.seq,
      );
      if (extra) {
        throw nondeterminism(
          `the journal has step "${extra.name}" at position ${extra.seq}, but the workflow returned after ${run.seq} step(s)`,
        );
      }
      await this.#complete(run, output);
    } catch (error) {
      if (run.dead) return;
      const failure = toExecutionError(error, run.current);
      // Saga: undo what the completed steps did (not after a NONDETERMINISM: replay is unsound).
      // First stop: steps running in parallel see their abort signal and settle.
      if (failure.code !== "NONDETERMINISM") {
        run.stop(new BatonError("CANCELLED", `The execution is failing: ${failure.message}`));
        await run.quiesce();
        if (run.dead) return;
        const compensation = await this.#compensate(run, row);
        if (run.dead) return;
        if (compensation) failure.compensation = compensation;
      }
      await this.#fail(run, failure);
    } finally {
      if (this.#run === run) this.#run = null;
    }
  }

  /**
   * Runs the compensations of the completed steps in reverse journal order (call order, not
   * completion order: parallel steps may complete in another order on a replay, and the
   * compensation steps must line up with the journal), each a journaled step (so it runs once
   * across replays). Returns the outcome, or undefined when there was none.
   */
  async #compensate(run: Run, exec: ExecutionRow): Promise<"completed" | "failed" | undefined> {
    if (run.compensations.length === 0) return undefined;
    let failed = false;
    for (const c of [...run.compensations].sort((a, b) => b.seq - a.seq)) {
      try {
        await this.#do(
          run,
          exec,
          `${COMPENSATE_PREFIX}${c.name}`,
          c.policy,
          undefined,
          (attempt) => c.fn(c.output, attempt),
          {
            compensating: true,
          },
        );
      } catch {
        if (run.dead) return never();
        failed = true;
      }
    }
    return failed ? "failed" : "completed";
  }

  #setCompensation(outcome: "completed" | "failed"): void {
    const row = this.row();
    const error = row?.error ? (JSON.parse(row.error) as ExecutionError) : undefined;
    if (!error) return;
    this.#host.sql.run(
      "UPDATE _baton_execution SET error = ? WHERE id = 1",
      JSON.stringify({ ...error, compensation: outcome }),
    );
  }

  async #complete(run: Run, output: unknown): Promise<void> {
    let bytes: Uint8Array;
    try {
      bytes = await encode(output);
    } catch (error) {
      return this.#fail(run, toExecutionError(error, null));
    }
    if (run.dead) return;
    const stored = this.storeBlob("output", bytes);
    this.#host.sql.run(
      "UPDATE _baton_execution SET output = ?, updated_at = ?, ended_at = ? WHERE id = 1",
      stored,
      this.#host.now(),
      this.#host.now(),
    );
    await this.finish(run, "complete");
  }

  async #fail(run: Run, error: ExecutionError): Promise<void> {
    if (run.dead) return;
    this.#host.sql.run(
      "UPDATE _baton_execution SET error = ?, updated_at = ?, ended_at = ? WHERE id = 1",
      JSON.stringify(error),
      this.#host.now(),
      this.#host.now(),
    );
    await this.finish(run, "fail");
  }

  /** Moves to a terminal state, stops timers and schedules retention. */
  async finish(run: Run | null, event: "complete" | "fail" | "cancel" | "time_out"): Promise<void> {
    run?.kill(new BatonError("CANCELLED", "The execution ended."));
    if (this.#run === run) this.#run = null;
    const now = this.#host.now();
    const openChildren = this.#host.sql.all<{ event_type: string }>(
      "SELECT event_type FROM _baton_steps WHERE kind = 'child' AND status = 'waiting'",
    );
    this.#host.sql.transaction(() => {
      this.#host.lifecycle.send(event);
      // Steps left open by code that did not await them (a lost race) end with the execution.
      this.#host.sql.run(
        `UPDATE _baton_steps SET status = 'cancelled', ended_at = ?, wake_at = NULL
         WHERE status IN ('running', 'backoff', 'sleeping', 'waiting')`,
        now,
      );
      this.#host.sql.run(
        "UPDATE _baton_execution SET updated_at = ?, ended_at = COALESCE(ended_at, ?) WHERE id = 1",
        now,
        now,
      );
    });
    const row = this.row();
    const runNumber = row?.run;
    this.#host.ended();
    // Durable follow-ups, queued before any await: cancel unfinished children, tell the parent.
    // The report is tried at once below; its timer is the retry, due a heartbeat from now, so it
    // falls in the alarm already armed (no alarm write on the way out).
    const followUps: Array<Promise<unknown>> = openChildren.map((child) =>
      this.#host.timers.schedule(
        "cancel-child",
        { binding: this.#host.childBinding(), childId: child.event_type },
        { after: 0 },
        { maxAttempts: 50 },
      ),
    );
    if (row?.parent_id)
      followUps.push(
        this.#host.timers.schedule(
          "report",
          {},
          { after: HEARTBEAT_MS },
          { key: "report", maxAttempts: 600 },
        ),
      );
    await Promise.all(followUps);
    await this.#host.timers.cancelKind("wake");
    // A restart may have come in during that await: then its heartbeat must stay.
    if (this.row()?.run !== runNumber) return;
    // The heartbeat becomes the retention timer.
    await this.#setLifecycle(now + (row?.retention_ms ?? 0));
    this.settle();
    if (row) await this.#returnPermit(row);
    // Cancelling children is due now: start it in this event rather than one alarm later (the
    // rows are committed, so the alarm still runs them if this is cut short).
    if (openChildren.length > 0) void this.#host.timers.runDue().catch(() => {});
    // Tell the parent and the index now, then (done for a long while) move the alarm to the
    // retention time rather than waking early. A child does not make its parent wait for that.
    const tail = async () => {
      await Promise.all([row?.parent_id ? this.#reportNow() : null, this.#host.flushIndex()]);
      await this.#host.timers.syncAlarm();
    };
    if (row?.parent_id) void tail().catch(() => {});
    else await tail();
  }

  /** Tells the parent now; once it has the outcome, the retry timer goes. */
  async #reportNow(): Promise<void> {
    try {
      if (await this.reportToParent()) await this.#host.timers.cancel("report");
    } catch {
      // The parent is unreachable for now: the "report" timer retries.
    }
  }

  // ---- concurrency limits ----------------------------------------------------------------------

  /** The workflow's concurrency semaphore for this execution: binding and lock name. */
  #permitLock(wf: AnyWorkflow, input: unknown): { binding: string; name: string } | undefined {
    const limit = wf.options.concurrency;
    if (!limit) return undefined;
    const key = limit.key ? (limit.key as (i: unknown) => string)(input) : "*";
    if (typeof key !== "string" || key.length === 0 || key.length > 128) {
      invalidArgument(
        `Concurrency key of workflow "${wf.name}"`,
        "must be a string of 1 to 128 characters",
        key,
      );
    }
    // The limit is part of the name: a deploy that changes it starts a new semaphore instead of
    // clashing with the old one's permits (PERMITS_MISMATCH).
    return { binding: limit.binding, name: `concurrency:${wf.name}:${limit.limit}:${key}` };
  }

  #locksClient(binding: string): LocksClient {
    return new LocksClient(
      requireNamespace<LockActor>(
        this.#host.env,
        binding,
        `Concurrency limits use binding "${binding}", but the Execution actor's env has no Durable Object namespace of that name. Bind a Lock actor under it.`,
      ),
    );
  }

  /** The permit's waiter id: per run, so a restart never picks up the previous run's permit. */
  static #permitWaiter(row: ExecutionRow): string {
    return `${row.execution_id}/$concurrency/run-${row.run}`;
  }

  /** Takes a permit (a journaled step, so a replay never takes a second one). */
  async #takePermit(wf: AnyWorkflow, row: ExecutionRow, input: unknown, step: Step): Promise<void> {
    const limit = wf.options.concurrency;
    const target = this.#permitLock(wf, input);
    if (!limit || !target) return;
    const client = this.#locksClient(target.binding);
    await step.do(
      "$concurrency",
      { retries: { limit: 1000, delay: "1 second", backoff: "constant" } },
      async () => {
        // Waits in line (re-attaching after a reset); after `wait` it retries and queues again.
        const got = await client.acquire(target.name, {
          owner: row.execution_id,
          ttl: limit.ttl ?? MAX_LEASE_TTL,
          wait: limit.wait ?? "1 hour",
          permits: limit.limit,
          waiterId: Engine.#permitWaiter(row),
        });
        if (!got.acquired) throw new Error("no permit yet");
        return got.lease;
      },
    );
  }

  /**
   * Gives back the permit of an execution that ended — held, granted meanwhile, or still queued
   * — through a durable timer, so a broken connection is retried rather than leaking the permit.
   */
  async #returnPermit(row: ExecutionRow): Promise<void> {
    const wf = this.#host.registry().get(row.workflow, row.version);
    if (!wf?.options.concurrency) return;
    const target = this.#permitLock(wf, await this.readInput());
    if (!target) return;
    const permit = this.#host.sql.one<StepRow>(
      "SELECT * FROM _baton_steps WHERE name = '$concurrency' AND status = 'completed' ORDER BY seq LIMIT 1",
    );
    const lease = permit ? ((await this.readStepOutput(permit)) as Lease) : null;
    await this.#host.timers.schedule(
      "permit",
      { binding: target.binding, lock: target.name, waiter: Engine.#permitWaiter(row), lease },
      { after: 0 },
    );
  }

  /** The `permit` timer: release the lease, or withdraw the queue entry (and a late grant). */
  async returnPermit(payload: ExecutionTimers["permit"]): Promise<void> {
    const client = this.#locksClient(payload.binding);
    if (payload.lease) {
      await client.release(payload.lock, payload.lease).catch((error: unknown) => {
        if (!isBatonError(error, "LEASE_EXPIRED") && !isBatonError(error, "NOT_HOLDER"))
          throw error;
      });
      return;
    }
    await client.abandon(payload.lock, payload.waiter);
  }

  // ---- the step API --------------------------------------------------------------------------

  #stepApi(run: Run, wf: AnyWorkflow, row: ExecutionRow): Step {
    const engine = this;
    const defaults = wf.options;
    return {
      async do<T>(
        name: string,
        optionsOrFn: StepOptions | ((a: StepAttempt) => T | Promise<T>),
        maybeFn?: (a: StepAttempt) => T | Promise<T>,
      ): Promise<T> {
        const fn = typeof optionsOrFn === "function" ? optionsOrFn : maybeFn;
        const options = typeof optionsOrFn === "function" ? {} : (optionsOrFn ?? {});
        checkStepName(name);
        if (typeof fn !== "function") invalidArgument(`step.do("${name}")`, "needs a function", fn);
        if (typeof options !== "object")
          invalidArgument(`step.do("${name}") options`, "must be an object", options);
        const policy = resolvePolicy({
          ...DEFAULT_RETRIES,
          ...defaults.retries,
          ...options.retries,
        });
        const timeout = options.timeout ?? defaults.stepTimeout;
        const timeoutMs = timeout === undefined ? undefined : parseDuration(timeout);
        if (options.compensate !== undefined && typeof options.compensate !== "function") {
          invalidArgument(
            `step.do("${name}") compensate`,
            "must be a function",
            options.compensate,
          );
        }
        const compensate = options.compensate
          ? {
              fn: options.compensate as (output: unknown, attempt: StepAttempt) => unknown,
              policy: resolvePolicy({
                limit: 3,
                delay: "1 second",
                backoff: "constant",
                ...options.compensationRetries,
              }),
            }
          : undefined;
        return engine.#do(run, row, name, policy, timeoutMs, fn, { compensate });
      },
      async sleep(name: string, duration) {
        checkStepName(name);
        const ms = parseDuration(duration);
        return engine.#sleep(run, name, (now) => now + ms);
      },
      async sleepUntil(name: string, until) {
        checkStepName(name);
        const at = until instanceof Date ? until.getTime() : until;
        if (typeof at !== "number" || !Number.isFinite(at)) {
          invalidArgument(`step.sleepUntil("${name}")`, "needs a valid Date or epoch ms", until);
        }
        return engine.#sleep(run, name, () => at);
      },
      async waitForEvent<T>(name: string, options: WaitOptions): Promise<WorkflowEvent<T>> {
        checkStepName(name);
        if (typeof options !== "object" || options === null) {
          invalidArgument(
            `step.waitForEvent("${name}") options`,
            "must be { type, timeout? }",
            options,
          );
        }
        checkEventType(options.type);
        const timeoutMs =
          options.timeout === undefined ? undefined : parseDuration(options.timeout);
        return engine.#wait<T>(run, name, options.type, timeoutMs);
      },
      async child(name, workflow, input) {
        checkStepName(name);
        const result = await engine.#child(run, row, name, workflowName(workflow), input);
        if (result.ok) return result.value as never;
        throw new StepFailedError(name, 1, {
          name: result.error.name,
          message: result.error.message,
          code: result.error.code,
        });
      },
      async children(name, runs) {
        checkStepName(name);
        if (!Array.isArray(runs))
          invalidArgument(
            `step.children("${name}")`,
            "needs an array of { workflow, input }",
            runs,
          );
        // Check every entry before starting any, so a bad entry starts nothing.
        const names = runs.map((r) => workflowName(r?.workflow));
        return Promise.all(
          runs.map((r, i) => engine.#child(run, row, `${name}#${i}`, names[i] as string, r?.input)),
        ) as never;
      },
      async checkpoint(this: Step, name: string) {
        checkStepName(name);
        await this.do(`${CHECKPOINT_PREFIX}${name}`, { retries: { limit: 0 } }, () => ({
          checkpoint: name,
        }));
      },
    };
  }

  /**
   * Claims the next position in call order and checks it against the journal. On a mismatch the
   * execution fails with NONDETERMINISM at once (the workflow cannot catch it) and the run ends.
   */
  #begin(
    run: Run,
    name: string,
    kind: StepKind,
    compensating = false,
  ): { seq: number; occurrence: number; row: StepRow | undefined } | null {
    const row = run.seq <= run.journaled ? this.#stepRow(run.seq) : undefined;
    // A step the workflow calls after it started failing or cancelling does not start; nor does
    // one whose place the journal gives to a compensation (the original run stopped it there).
    // Parked calls claim no position, so the compensations keep theirs.
    if (!compensating && (row?.name.startsWith(COMPENSATE_PREFIX) || (run.stopping && !row))) {
      return null;
    }
    const seq = run.seq++;
    const occurrence = run.occurrences.get(name) ?? 0;
    run.occurrences.set(name, occurrence + 1);
    run.current = name;
    if (row && (row.name !== name || row.kind !== kind)) {
      const error = nondeterminism(
        `step ${seq} is "${row.name}" (${row.kind}) in the journal but the code now calls "${name}" (${kind}): steps were renamed, reordered or removed`,
      );
      void this.#fail(run, toExecutionError(error, name));
      return null;
    }
    return { seq, occurrence, row };
  }

  /** Waits while the execution is paused; never returns for a dead run. */
  async #passGate(run: Run): Promise<void> {
    for (;;) {
      if (run.dead) return never();
      const status = this.#host.sql.value<string>(
        "SELECT status FROM _baton_execution WHERE id = 1",
      );
      if (status !== "paused") return;
      if (!this.#gate) {
        let open!: () => void;
        const promise = new Promise<void>((resolve) => {
          open = resolve;
        });
        this.#gate = { promise, open };
      }
      await this.#gate.promise;
    }
  }

  /** Resolves when `seq`'s timer fires and the actor clock has reached `at`. */
  async #until(run: Run, seq: number, at: number): Promise<void> {
    for (;;) {
      if (run.dead) return never();
      if (this.#host.now() >= at) return;
      // Register before any await, so a timer firing meanwhile finds the waiter.
      const woken = this.#sleepOn(seq);
      await this.#host.timers.schedule("wake", { seq }, { at }, { key: `wake:${seq}` });
      await woken;
    }
  }

  #sleepOn(seq: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const waiters = this.#waiters.get(seq) ?? new Set();
      waiters.add(resolve);
      this.#waiters.set(seq, waiters);
    });
  }

  async #do<T>(
    run: Run,
    exec: ExecutionRow,
    name: string,
    policy: ResolvedPolicy,
    timeoutMs: number | undefined,
    fn: (a: StepAttempt) => T | Promise<T>,
    extra: {
      compensate?:
        | { fn: (output: unknown, attempt: StepAttempt) => unknown; policy: ResolvedPolicy }
        | undefined;
      compensating?: boolean;
    } = {},
  ): Promise<T> {
    if (run.dead) return never();
    const begun = this.#begin(run, name, "do", extra.compensating);
    if (!begun) return never();
    const { seq, occurrence, row } = begun;
    const done = (value: T): T => {
      if (extra.compensate)
        run.compensations.push({ seq, name, output: value, ...extra.compensate });
      return value;
    };
    if (row?.status === "completed") {
      return this.#replayed(run, done((await run.track(this.readStepOutput(row))) as T));
    }
    if (row?.status === "failed") throw failedError(row);
    // Stopped by a failure or cancel elsewhere in the original run: it stays stopped on replay.
    if (row?.status === "cancelled" && !extra.compensating) return never();
    if (run.cancelling && !extra.compensating) return this.#frontier(run);
    // A step that was in flight when the execution was paused finishes; others wait. A cancel
    // overrides a pause: compensations run at once.
    if (row?.status !== "running" && !extra.compensating) await this.#passGate(run);
    const { sql } = this.#host;
    const idempotencyKey = `${exec.execution_id}/${name}/${occurrence}`;
    const maxAttempts = policy.limit + 1;
    let attempts = row?.attempts ?? 0;
    let previousError: StepError | undefined = row?.error ? JSON.parse(row.error) : undefined;
    if (row?.status === "backoff" && row.wake_at !== null) await this.#until(run, seq, row.wake_at);
    // Found running: the runner died mid-attempt. That attempt counts.
    let recovering = row?.status === "running";
    for (;;) {
      if (run.dead) return never();
      // Failing or cancelling: no new attempt (one cut short by a crash still runs again).
      if (run.stopping && !extra.compensating && !recovering) return never();
      if (recovering && attempts >= maxAttempts) {
        const error: StepError = {
          name: "BatonError",
          code: "STEP_INTERRUPTED",
          message: `Step "${name}" was interrupted ${attempts} time(s) (the actor was evicted, aborted or reset while it ran) and has no attempts left.`,
          nonRetryable: true,
        };
        this.#stepFailed(seq, attempts, error);
        throw new StepFailedError(name, attempts, error);
      }
      attempts++;
      const now = this.#host.now();
      if (row === undefined && attempts === 1) {
        sql.run(
          `INSERT INTO _baton_steps (seq, name, occurrence, kind, status, attempts, started_at)
           VALUES (?, ?, ?, 'do', 'running', 1, ?)`,
          seq,
          name,
          occurrence,
          now,
        );
      } else {
        sql.run(
          "UPDATE _baton_steps SET status = 'running', attempts = ?, wake_at = NULL WHERE seq = ?",
          attempts,
          seq,
        );
      }
      // After a crash, make the recovery attempt durable before the body runs, so a body that
      // kills the actor every time still uses up its attempts.
      if (recovering) {
        await this.#host.storage.sync();
        if (run.dead) return never();
      }
      recovering = false;
      const controller = new AbortController();
      run.controllers.add(controller);
      const outcome = await run.track(
        attempt(
          fn,
          {
            attempt: attempts,
            idempotencyKey,
            signal: controller.signal,
            ...(previousError ? { previousError } : {}),
          },
          timeoutMs,
          controller,
        ),
      );
      run.controllers.delete(controller);
      if (run.dead) return never();
      if (outcome.ok) {
        let bytes: Uint8Array;
        try {
          bytes = await encode(outcome.value);
        } catch (error) {
          const stepError = { ...toStepError(error), nonRetryable: true };
          this.#stepFailed(seq, attempts, stepError);
          throw new StepFailedError(name, attempts, stepError);
        }
        if (run.dead) return never();
        sql.run(
          "UPDATE _baton_steps SET status = 'completed', output = ?, ended_at = ?, wake_at = NULL WHERE seq = ?",
          this.storeBlob(`step:${seq}`, bytes),
          this.#host.now(),
          seq,
        );
        this.#host.stepDone(seq, name, () => outcome.value);
        return done(outcome.value);
      }
      const stepError = toStepError(outcome.error);
      if (run.stopping && !extra.compensating) {
        // Aborted because the execution is failing or cancelling: no retry, and not a failure
        // of its own. It is journaled as cancelled (and stays so on a replay).
        sql.run(
          "UPDATE _baton_steps SET status = 'cancelled', ended_at = ?, error = ? WHERE seq = ?",
          this.#host.now(),
          JSON.stringify(stepError),
          seq,
        );
        return never();
      }
      if (stepError.nonRetryable || attempts >= maxAttempts) {
        this.#stepFailed(seq, attempts, stepError);
        throw new StepFailedError(name, attempts, stepError);
      }
      const wakeAt = this.#host.now() + retryDelay(policy, attempts);
      sql.run(
        "UPDATE _baton_steps SET status = 'backoff', wake_at = ?, error = ? WHERE seq = ?",
        wakeAt,
        JSON.stringify(stepError),
        seq,
      );
      previousError = stepError;
      await this.#until(run, seq, wakeAt);
      // A pause holds further attempts too.
      await this.#passGate(run);
    }
  }

  /** A cancel-mode replay reached a step that is not finished: stop here (never resumes). */
  #frontier<T>(run: Run): Promise<T> {
    run.reachFrontier();
    return never<T>();
  }

  /** A journaled value for a live run; a dead run never resumes. */
  #replayed<T>(run: Run, value: T): Promise<T> | T {
    return run.dead ? never<T>() : value;
  }

  // ---- child executions ------------------------------------------------------------------------

  #childNamespace(): DurableObjectNamespace<ExecutionActorLike> {
    const binding = this.#host.childBinding();
    return requireNamespace<ExecutionActorLike>(
      this.#host.env,
      binding,
      `Child executions use binding "${binding}" (the Execution actor's \`childBinding\`), but its env has no namespace of that name.`,
    );
  }

  /** A child step call, tracked on the run (which completes only after it). */
  #child(
    run: Run,
    exec: ExecutionRow,
    name: string,
    workflow: string,
    input: unknown,
  ): Promise<ChildResult<unknown>> {
    const call = this.#childCall(run, exec, name, workflow, input);
    run.children.add(call);
    return call;
  }

  async #childCall(
    run: Run,
    exec: ExecutionRow,
    name: string,
    workflow: string,
    input: unknown,
  ): Promise<ChildResult<unknown>> {
    if (run.dead) return never();
    const begun = this.#begin(run, name, "child");
    if (!begun) return never();
    const { seq, occurrence, row } = begun;
    if (row?.status === "completed") {
      return this.#replayed(
        run,
        (await run.track(this.readStepOutput(row))) as ChildResult<unknown>,
      );
    }
    if (run.cancelling) return this.#frontier(run);
    // Deterministic, so a replay finds the same child (the journal keeps it); per run, so a
    // restart starts fresh ones.
    const childId = row?.event_type ?? (await childExecutionId(exec, name, occurrence));
    if (!row) {
      await this.#passGate(run);
      this.#host.sql.run(
        `INSERT INTO _baton_steps (seq, name, occurrence, kind, status, attempts, started_at, event_type)
         VALUES (?, ?, ?, 'child', 'waiting', 1, ?, ?)`,
        seq,
        name,
        occurrence,
        this.#host.now(),
        childId,
      );
    }
    // Make sure the child exists (idempotent, also after a replay). If it already ended, take its
    // result now rather than wait for a report.
    for (;;) {
      if (run.dead) return never();
      try {
        const stub = this.#childNamespace().getByName(childId);
        const starting = stub.startChild(workflow, input as Value, {
          id: childId,
          parent: { id: exec.execution_id, seq, binding: this.#host.childBinding() },
        });
        this.#starting.add(starting);
        const info = await starting.finally(() => this.#starting.delete(starting));
        if (TERMINAL.has(info.status as StoredStatus)) {
          await this.childReport(seq, childId, toChildResult(childId, await stub.result()));
        } else {
          await this.#host.timers.schedule(
            "check-children",
            { interval: CHILD_CHECK_MS },
            { after: CHILD_CHECK_MS },
            { key: "check-children" },
          );
        }
        break;
      } catch (error) {
        if (run.dead) return never();
        if (isBatonError(error)) {
          // The child cannot be started (unknown workflow, invalid input ...): it failed.
          const info = toStepError(error);
          await this.childReport(seq, childId, {
            ok: false,
            id: childId,
            error: {
              code: info.code ?? "CHILD_FAILED",
              message: info.message,
              name: info.name,
              step: null,
            },
          });
          break;
        }
        // A broken connection: try again shortly (a timer, so it survives eviction).
        await this.#until(run, seq, this.#host.now() + 1000);
      }
    }
    return this.#awaitChild(run, seq);
  }

  async #awaitChild(run: Run, seq: number): Promise<ChildResult<unknown>> {
    for (;;) {
      if (run.dead) return never();
      const current = this.#stepRow(seq);
      if (current?.status === "completed")
        return (await this.readStepOutput(current)) as ChildResult<unknown>;
      await this.#sleepOn(seq);
    }
  }

  /**
   * A child's outcome arrives (its report, or a pull after a replay): completes the child step
   * once; later copies change nothing. Returns whether it was applied.
   */
  async childReport(seq: number, childId: string, result: ChildResult<unknown>): Promise<boolean> {
    const bytes = await encode(result);
    let step = "";
    // Check, then write (the output may go to the value store): a late or repeated report
    // changes nothing, not even a stored blob.
    const applied = this.#host.sql.transaction(() => {
      const open = this.#host.sql.one<{ name: string }>(
        `SELECT name FROM _baton_steps
         WHERE seq = ? AND kind = 'child' AND status = 'waiting' AND event_type = ?`,
        seq,
        childId,
      );
      if (!open) return false;
      step = open.name;
      this.#host.sql.run(
        "UPDATE _baton_steps SET status = 'completed', output = ?, ended_at = ? WHERE seq = ?",
        this.storeBlob(`step:${seq}`, bytes),
        this.#host.now(),
        seq,
      );
      return true;
    });
    if (!applied) return false;
    this.#host.stepDone(seq, step, () => result);
    this.wake(seq);
    await this.ensureHeartbeat();
    return true;
  }

  /**
   * The `report` timer: tell the parent how this child ended (retried until it has it).
   * Returns whether the parent has it (or there is nothing to tell).
   */
  async reportToParent(): Promise<boolean> {
    const row = this.row();
    if (
      !row?.parent_id ||
      row.parent_seq === null ||
      !row.parent_binding ||
      !TERMINAL.has(row.status)
    )
      return true;
    const ns = findNamespace<ExecutionActorLike>(this.#host.env, row.parent_binding);
    if (!ns) return true;
    const result: ChildResult<unknown> =
      row.status === "completed"
        ? { ok: true, id: row.execution_id, value: await this.readOutput() }
        : { ok: false, id: row.execution_id, error: childError(row) };
    try {
      await ns
        .getByName(row.parent_id)
        .childDone(row.parent_seq, row.execution_id, result as never);
    } catch (error) {
      if (isBatonError(error, "EXECUTION_NOT_FOUND")) return true; // the parent is gone
      throw error;
    }
    return true;
  }

  /**
   * The `cancel-child` timer. A child not found may still have its start on the way: the starts
   * this instance sent are awaited first, and "not found" is retried twice before it counts.
   */
  async cancelChild(payload: ExecutionTimers["cancel-child"], attempt = 1): Promise<void> {
    const ns = findNamespace<ExecutionActorLike>(this.#host.env, payload.binding);
    if (!ns) return;
    await Promise.allSettled([...this.#starting]);
    await ns
      .getByName(payload.childId)
      .cancel()
      .catch((error: unknown) => {
        if (!isBatonError(error, "EXECUTION_NOT_FOUND")) throw error;
        if (attempt < 3) throw new Error(`child "${payload.childId}" not found yet`);
      });
  }

  /**
   * The `check-children` timer: the safety net under child reports. With no live run, a replay
   * asks every unfinished child again (and starts one whose start was lost); with one, the
   * children are asked here. Then it checks again later, less often, while any is unfinished.
   */
  async checkChildren(payload: ExecutionTimers["check-children"]): Promise<void> {
    const row = this.row();
    if (row?.mode !== "workflow" || TERMINAL.has(row.status)) return;
    const open = this.#host.sql.all<{ seq: number; event_type: string }>(
      "SELECT seq, event_type FROM _baton_steps WHERE kind = 'child' AND status = 'waiting' ORDER BY seq",
    );
    if (open.length === 0) return;
    if (!this.#run) this.kick();
    else {
      const ns = this.#childNamespace();
      for (const child of open) {
        const stub = ns.getByName(child.event_type);
        try {
          const info = await stub.status();
          if (TERMINAL.has(info.status as StoredStatus)) {
            const result = toChildResult(child.event_type, await stub.result());
            await this.childReport(child.seq, child.event_type, result);
          }
        } catch (error) {
          // Gone (its retention ran out before the parent heard): a failed child.
          if (!isBatonError(error, "EXECUTION_NOT_FOUND")) throw error;
          await this.childReport(child.seq, child.event_type, {
            ok: false,
            id: child.event_type,
            error: {
              code: "CHILD_LOST",
              message: `Child execution "${child.event_type}" no longer exists and its outcome never reached the parent.`,
              name: "BatonError",
              step: null,
            },
          });
        }
      }
    }
    const interval = Math.min(payload.interval * 2, MAX_CHILD_CHECK_MS);
    await this.#host.timers.schedule(
      "check-children",
      { interval },
      { after: interval },
      { key: "check-children" },
    );
  }

  #stepFailed(seq: number, attempts: number, error: StepError): void {
    this.#host.sql.run(
      "UPDATE _baton_steps SET status = 'failed', attempts = ?, error = ?, ended_at = ?, wake_at = NULL WHERE seq = ?",
      attempts,
      JSON.stringify(error),
      this.#host.now(),
      seq,
    );
  }

  async #sleep(run: Run, name: string, until: (now: number) => number): Promise<void> {
    if (run.dead) return never();
    const begun = this.#begin(run, name, "sleep");
    if (!begun) return never();
    const { seq, occurrence, row } = begun;
    if (row?.status === "completed") return;
    if (run.cancelling) return this.#frontier(run);
    await this.#passGate(run);
    let wakeAt = row?.wake_at ?? null;
    if (!row) {
      const now = this.#host.now();
      wakeAt = until(now);
      this.#host.sql.run(
        `INSERT INTO _baton_steps (seq, name, occurrence, kind, status, attempts, started_at, wake_at)
         VALUES (?, ?, ?, 'sleep', 'sleeping', 1, ?, ?)`,
        seq,
        name,
        occurrence,
        now,
        wakeAt,
      );
    }
    await this.#until(run, seq, wakeAt ?? 0);
    const completed = this.#host.sql.run(
      "UPDATE _baton_steps SET status = 'completed', ended_at = ?, wake_at = NULL WHERE seq = ? AND status <> 'completed'",
      this.#host.now(),
      seq,
    );
    if (completed > 0) this.#host.stepDone(seq, name, () => undefined);
  }

  async #wait<T>(
    run: Run,
    name: string,
    type: string,
    timeoutMs: number | undefined,
  ): Promise<WorkflowEvent<T>> {
    if (run.dead) return never();
    const begun = this.#begin(run, name, "wait");
    if (!begun) return never();
    const { seq, occurrence, row } = begun;
    if (row?.status === "completed") {
      return this.#replayed(run, (await run.track(this.readStepOutput(row))) as WorkflowEvent<T>);
    }
    if (row?.status === "timed_out") throw eventTimeout(name, type);
    if (run.cancelling) return this.#frontier(run);
    await this.#passGate(run);
    const { sql } = this.#host;
    if (!row) {
      const now = this.#host.now();
      const wakeAt = timeoutMs === undefined ? null : now + timeoutMs;
      sql.run(
        `INSERT INTO _baton_steps (seq, name, occurrence, kind, status, attempts, started_at, wake_at, event_type)
         VALUES (?, ?, ?, 'wait', 'waiting', 1, ?, ?, ?)`,
        seq,
        name,
        occurrence,
        now,
        wakeAt,
        type,
      );
      // An event that arrived before the wait is consumed at once (same synchronous block, so
      // sendEvent cannot interleave).
      const buffered = sql.one<EventRow>(
        "SELECT * FROM _baton_events WHERE type = ? AND consumed_by IS NULL ORDER BY id LIMIT 1",
        type,
      );
      if (buffered) this.#deliver(buffered, seq, name);
    }
    for (;;) {
      if (run.dead) return never();
      const current = this.#stepRow(seq);
      if (current?.status === "completed")
        return (await this.readStepOutput(current)) as WorkflowEvent<T>;
      const timeoutAt = current?.wake_at ?? null;
      if (timeoutAt !== null && this.#host.now() >= timeoutAt) {
        sql.run(
          "UPDATE _baton_steps SET status = 'timed_out', ended_at = ?, wake_at = NULL WHERE seq = ? AND status = 'waiting'",
          this.#host.now(),
          seq,
        );
        throw eventTimeout(name, type);
      }
      // Register before any await, so sendEvent or the timeout timer finds the waiter.
      const woken = this.#sleepOn(seq);
      if (timeoutAt !== null) {
        await this.#host.timers.schedule(
          "wake",
          { seq },
          { at: timeoutAt },
          { key: `wake:${seq}` },
        );
      }
      await woken;
    }
  }

  /**
   * Stores an event and hands it to the oldest wait for its type, if any. Returns the receipt.
   */
  async sendEvent(
    type: string,
    payload: unknown,
    dedupeKey: string | undefined,
  ): Promise<{
    id: number;
    delivered: boolean;
    step: string | null;
    duplicate: boolean;
  }> {
    const { sql } = this.#host;
    const bytes = await encode(payload);
    const status = this.row()?.status;
    if (status === undefined || TERMINAL.has(status)) {
      throw new BatonError(
        "EXECUTION_FINISHED",
        `The execution is ${status ?? "gone"}; it takes no more events.`,
        {
          status: status ?? null,
        },
      );
    }
    if (bytes.byteLength > MAX_EVENT_BYTES) {
      throw new BatonError(
        "PAYLOAD_TOO_LARGE",
        `Event payload is ${bytes.byteLength} bytes encoded; the limit is ${MAX_EVENT_BYTES}.`,
        { bytes: bytes.byteLength, limit: MAX_EVENT_BYTES },
      );
    }
    if (dedupeKey !== undefined) {
      const seen = sql.one<EventRow>("SELECT * FROM _baton_events WHERE dedupe_key = ?", dedupeKey);
      if (seen) {
        const step =
          seen.consumed_by === null ? null : (this.#stepRow(seen.consumed_by)?.name ?? null);
        return { id: seen.id, delivered: seen.consumed_by !== null, step, duplicate: true };
      }
    }
    const event = sql.one<EventRow>(
      "INSERT INTO _baton_events (type, payload, dedupe_key, received_at) VALUES (?, ?, ?, ?) RETURNING *",
      type,
      bytes,
      dedupeKey ?? null,
      this.#host.now(),
    ) as EventRow;
    // A wait past its deadline has timed out even if its timer has not fired yet (late alarm).
    const waiting = sql.one<StepRow>(
      `SELECT * FROM _baton_steps WHERE kind = 'wait' AND status = 'waiting' AND event_type = ?
         AND (wake_at IS NULL OR wake_at > ?)
       ORDER BY seq LIMIT 1`,
      type,
      this.#host.now(),
    );
    if (!waiting) return { id: event.id, delivered: false, step: null, duplicate: false };
    this.#deliver(event, waiting.seq, waiting.name);
    await this.#host.timers.cancel(`wake:${waiting.seq}`);
    this.wake(waiting.seq);
    return { id: event.id, delivered: true, step: waiting.name, duplicate: false };
  }

  /** Marks `event` consumed by the wait at `seq` and completes that wait, atomically. */
  #deliver(event: EventRow, seq: number, step: string): void {
    // The wait's output refers to the event row, so the payload is stored once.
    this.#host.sql.transaction(() => {
      this.#host.sql.run("UPDATE _baton_events SET consumed_by = ? WHERE id = ?", seq, event.id);
      this.#host.sql.run(
        "UPDATE _baton_steps SET status = 'completed', ended_at = ?, wake_at = NULL, output = ? WHERE seq = ?",
        this.#host.now(),
        `event:${event.id}`,
        seq,
      );
    });
    this.#host.stepDone(seq, step, () => {
      try {
        return {
          type: event.type,
          payload: decodeSync(event.payload),
          receivedAt: event.received_at,
        };
      } catch {
        return OMITTED; // a compressed (big) payload
      }
    });
  }

  // ---- values --------------------------------------------------------------------------------

  /** Inline bytes, or a reference to the value store for big ones. */
  storeBlob(key: string, bytes: Uint8Array): Uint8Array | string {
    if (bytes.byteLength <= INLINE_MAX) return bytes;
    this.#host.values.putEncoded("execution", key, bytes);
    return `ref:${key}`;
  }

  async #readBlob(stored: ArrayBuffer | string | null): Promise<unknown> {
    if (stored === null) return undefined;
    if (typeof stored === "string") {
      if (stored.startsWith("event:")) {
        const event = this.#host.sql.one<EventRow>(
          "SELECT * FROM _baton_events WHERE id = ?",
          Number(stored.slice(6)),
        );
        if (!event) return undefined;
        return {
          type: event.type,
          payload: await decode(event.payload),
          receivedAt: event.received_at,
        };
      }
      const bytes = this.#host.values.getEncoded("execution", stored.slice(4));
      return bytes === undefined ? undefined : decode(bytes);
    }
    return decode(stored);
  }

  /** A step's output, decoded. */
  readStepOutput(row: StepRow): Promise<unknown> {
    return this.#readBlob(row.output as ArrayBuffer | string | null);
  }

  /** The execution's input, decoded (read here: rows are read without their blobs). */
  readInput(): Promise<unknown> {
    return this.#readBlob(
      this.#host.sql.value<ArrayBuffer | string>(
        "SELECT input FROM _baton_execution WHERE id = 1",
      ) ?? null,
    );
  }

  /** The execution's output, decoded. */
  readOutput(): Promise<unknown> {
    return this.#readBlob(
      this.#host.sql.value<ArrayBuffer | string>(
        "SELECT output FROM _baton_execution WHERE id = 1",
      ) ?? null,
    );
  }

  // ---- fork ------------------------------------------------------------------------------------

  /**
   * The journal up to checkpoint `name` (inclusive), with outputs decoded, for a fork.
   *
   * @throws BatonError `CHECKPOINT_NOT_FOUND`.
   */
  async exportCheckpoint(name: string): Promise<ForkSnapshot> {
    const row = this.row();
    const mark = this.#host.sql.one<StepRow>(
      "SELECT * FROM _baton_steps WHERE name = ? AND status = 'completed' ORDER BY seq LIMIT 1",
      `${CHECKPOINT_PREFIX}${name}`,
    );
    if (!row || !mark) {
      throw new BatonError(
        "CHECKPOINT_NOT_FOUND",
        `Execution "${row?.execution_id ?? "?"}" has no checkpoint "${name}" (step.checkpoint("${name}") has not completed).`,
        { checkpoint: name },
      );
    }
    const steps: ForkSnapshot["steps"] = [];
    for (const step of this.#host.sql.all<StepRow>(
      "SELECT * FROM _baton_steps WHERE seq <= ? AND status IN ('completed', 'failed', 'timed_out') ORDER BY seq",
      mark.seq,
    )) {
      steps.push({
        seq: step.seq,
        name: step.name,
        occurrence: step.occurrence,
        kind: step.kind,
        status: step.status as "completed" | "failed" | "timed_out",
        attempts: step.attempts,
        startedAt: step.started_at,
        endedAt: step.ended_at,
        // Encoded bytes cross RPC whatever the value (URL, Error subclasses ...).
        output: step.status === "completed" ? await encode(await this.readStepOutput(step)) : null,
        error: step.error,
      });
    }
    if (steps.length !== mark.seq + 1) {
      throw new BatonError(
        "CHECKPOINT_NOT_FOUND",
        `Checkpoint "${name}" of execution "${row.execution_id}" has steps that did not finish before it (parallel steps still running); checkpoint after awaiting them.`,
        { checkpoint: name },
      );
    }
    return {
      workflow: row.workflow,
      version: row.version,
      input: await encode(await this.readInput()),
      steps,
    };
  }

  /**
   * Writes a fork's journal (the snapshot's steps) into this new execution, in one transaction
   * with `alongside` (which creates the execution row).
   */
  async importJournal(snapshot: ForkSnapshot, alongside: () => void): Promise<void> {
    this.#host.sql.transaction(() => {
      snapshot.steps.forEach((step) => {
        const bytes = step.output ? new Uint8Array(step.output) : undefined;
        this.#host.sql.run(
          `INSERT INTO _baton_steps (seq, name, occurrence, kind, status, attempts, started_at, ended_at, output, error)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          step.seq,
          step.name,
          step.occurrence,
          step.kind,
          step.status,
          step.attempts,
          step.startedAt,
          step.endedAt,
          bytes === undefined ? null : this.storeBlob(`step:${step.seq}`, bytes),
          step.error,
        );
      });
      alongside();
    });
  }

  /** Deletes every trace of the execution (retention); the object keeps only empty tables. */
  purge(): void {
    const { sql } = this.#host;
    this.#host.recordChange(true);
    this.#host.timers.purgeDeadLetters();
    sql.run("DELETE FROM _baton_steps");
    sql.run("DELETE FROM _baton_events");
    sql.run("DELETE FROM _baton_execution");
    this.#host.values.clear("execution");
  }

  /** Clears the journal and events for a restart. */
  resetJournal(): void {
    const { sql } = this.#host;
    sql.run("DELETE FROM _baton_steps");
    sql.run("DELETE FROM _baton_events");
    for (const key of this.#host.values.keys("execution")) {
      if (key !== "input") this.#host.values.delete("execution", key);
    }
  }

  /** A stable digest of an input, to tell a repeated start from a conflicting one. */
  static async digest(workflow: string, input: unknown): Promise<string> {
    const text = `${workflow}\u0000${encodeText(canonical(input))}`;
    return await sha256Hex(text);
  }
}

/** The RPC surface of an Execution actor that children and parents call. */
interface ExecutionActorLike extends Rpc.DurableObjectBranded {
  startChild(
    workflow: string,
    input: Value,
    options: { id: string; parent: { id: string; seq: number; binding: string } },
  ): Promise<{ status: string }>;
  result(): Promise<{ ok: boolean; value?: unknown; error?: ExecutionError; status: string }>;
  childDone(seq: number, childId: string, result: ChildResult<Value>): Promise<boolean>;
  cancel(): Promise<object>;
  status(): Promise<{ status: string }>;
}

/**
 * The id of a child execution: `<parent id>/[r<run>/]<step name>/<occurrence>`, with `%` and `/`
 * in the step name escaped (so no two steps share an id). An id over the 256-character limit
 * keeps its first 190 characters and ends in a hash of the whole.
 */
async function childExecutionId(
  parent: { execution_id: string; run: number },
  name: string,
  occurrence: number,
): Promise<string> {
  const escaped = name.replaceAll("%", "%25").replaceAll("/", "%2F");
  const id = `${parent.execution_id}/${parent.run > 1 ? `r${parent.run}/` : ""}${escaped}/${occurrence}`;
  if (id.length <= 256) return id;
  return `${id.slice(0, 190)}~${await sha256Hex(id, 16)}`;
}

function workflowName(workflow: unknown): string {
  const name = typeof workflow === "string" ? workflow : (workflow as { name?: unknown })?.name;
  if (typeof name !== "string" || name.length === 0) {
    invalidArgument(
      "Child workflow",
      "must be a workflow definition or a registered name",
      workflow,
    );
  }
  return name;
}

function toChildResult(
  id: string,
  result: { ok: boolean; value?: unknown; error?: ExecutionError },
): ChildResult<unknown> {
  if (result.ok) return { ok: true, id, value: result.value };
  const e = result.error;
  return {
    ok: false,
    id,
    error: {
      code: e?.code ?? "CHILD_FAILED",
      message: e?.message ?? "child failed",
      name: e?.name ?? "Error",
      step: e?.step ?? null,
    },
  };
}

function childError(
  row: ExecutionRow,
): ChildResult<unknown> extends infer R
  ? R extends { ok: false; error: infer E }
    ? E
    : never
  : never {
  const error = row.error ? (JSON.parse(row.error) as ExecutionError) : undefined;
  return {
    code: error?.code ?? row.status.toUpperCase(),
    message: error?.message ?? `The child execution ${row.status}.`,
    name: error?.name ?? "Error",
    step: error?.step ?? null,
  };
}

/** A journal prefix that a fork replays (see `exportCheckpoint`). */
export interface ForkSnapshot {
  workflow: string;
  /** The workflow version the source ran. */
  version: number;
  /** Codec-encoded input. */
  input: Uint8Array;
  steps: Array<{
    seq: number;
    name: string;
    occurrence: number;
    kind: StepKind;
    status: "completed" | "failed" | "timed_out";
    attempts: number;
    startedAt: number;
    endedAt: number | null;
    /** Codec-encoded output of a completed step. */
    output: Uint8Array | null;
    error: string | null;
  }>;
}

// ---- helpers -------------------------------------------------------------------------------------

/** A copy of `value` with plain objects' keys sorted (Map and array order is meaningful; kept). */
function canonical(value: unknown, seen = new Map<object, unknown>()): unknown {
  if (typeof value !== "object" || value === null) return value;
  if (seen.has(value)) return seen.get(value);
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    seen.set(value, out);
    for (const item of value) out.push(canonical(item, seen));
    return out;
  }
  if (Object.getPrototypeOf(value) !== Object.prototype && Object.getPrototypeOf(value) !== null) {
    return value;
  }
  const out: Record<string, unknown> = {};
  seen.set(value, out);
  for (const key of Object.keys(value).sort())
    out[key] = canonical((value as Record<string, unknown>)[key], seen);
  return out;
}

type ResolvedPolicy = {
  limit: number;
  delay: number;
  maxDelay: number;
  backoff: NonNullable<RetryPolicy["backoff"]>;
};

function resolvePolicy(policy: RetryPolicy): ResolvedPolicy {
  const limit = policy.limit ?? DEFAULT_RETRIES.limit;
  if (!Number.isSafeInteger(limit) || limit < 0 || limit > 1000) {
    invalidArgument("retries.limit", "must be an integer from 0 to 1000", limit);
  }
  const backoff = policy.backoff ?? "exponential";
  if (!["constant", "linear", "exponential"].includes(backoff)) {
    invalidArgument("retries.backoff", 'must be "constant", "linear" or "exponential"', backoff);
  }
  return {
    limit,
    backoff,
    delay: parseDuration(policy.delay ?? DEFAULT_RETRIES.delay),
    maxDelay: parseDuration(policy.maxDelay ?? DEFAULT_RETRIES.maxDelay),
  };
}

type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

async function attempt<T>(
  fn: (a: StepAttempt) => T | Promise<T>,
  context: StepAttempt,
  timeoutMs: number | undefined,
  controller: AbortController,
): Promise<Outcome<T>> {
  const body = (async () => fn(context))().then(
    (value): Outcome<T> => ({ ok: true, value }),
    (error): Outcome<T> => ({ ok: false, error }),
  );
  if (timeoutMs === undefined) return body;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<Outcome<T>>((resolve) => {
    timer = setTimeout(() => {
      const error = new BatonError(
        "STEP_TIMEOUT",
        `Attempt ${context.attempt} timed out after ${timeoutMs} ms.`,
        { timeoutMs, attempt: context.attempt },
      );
      controller.abort(error);
      resolve({ ok: false, error });
    }, timeoutMs);
  });
  try {
    return await Promise.race([body, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function toStepError(error: unknown): StepError {
  if (error instanceof Error || (typeof error === "object" && error !== null)) {
    const e = error as { name?: unknown; message?: unknown; code?: unknown };
    return {
      name: typeof e.name === "string" ? e.name : "Error",
      message: typeof e.message === "string" ? e.message : String(error),
      ...(typeof e.code === "string" ? { code: e.code } : {}),
      ...(isNonRetryable(error) ? { nonRetryable: true } : {}),
    };
  }
  return { name: "Error", message: String(error) };
}

function toExecutionError(error: unknown, current: string | null): ExecutionError {
  if (error instanceof StepFailedError) {
    return {
      code: error.code,
      message: error.message,
      name: error.name,
      step: error.step,
      attempt: error.attempt,
    };
  }
  const info = toStepError(error);
  return {
    code: info.code ?? "WORKFLOW_FAILED",
    message: info.message,
    name: info.name,
    step: info.code === "NONDETERMINISM" ? current : null,
    attempt: null,
  };
}

function failedError(row: StepRow): StepFailedError {
  const error: StepError = row.error
    ? JSON.parse(row.error)
    : { name: "Error", message: "step failed" };
  return new StepFailedError(row.name, row.attempts, error);
}

function nondeterminism(detail: string): BatonError {
  return new BatonError(
    "NONDETERMINISM",
    `Replay does not match the journal: ${detail}. Deploy such changes as a new workflow version and keep the old one registered for running executions.`,
  );
}

function eventTimeout(name: string, type: string): BatonError {
  return new BatonError(
    "EVENT_TIMEOUT",
    `step.waitForEvent("${name}") timed out waiting for an event of type "${type}".`,
    { step: name, type },
  );
}

function checkStepName(name: unknown): asserts name is string {
  if (typeof name !== "string" || name.length === 0 || name.length > MAX_STEP_NAME) {
    invalidArgument("Step name", `must be a string of 1 to ${MAX_STEP_NAME} characters`, name);
  }
}

const EVENT_TYPE = /^[\w.:/-]{1,128}$/;

/** Event types: 1-128 characters of letters, digits and _ . : / -. */
export function checkEventType(type: unknown): asserts type is string {
  if (typeof type !== "string" || !EVENT_TYPE.test(type)) {
    invalidArgument(
      "Event type",
      "must be 1-128 characters of letters, digits and _ . : / -",
      type,
    );
  }
}

export type { Value };
