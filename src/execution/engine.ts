import { decodeSync, encode, encodeSync } from "../foundation/codec.ts";
import { BatonError } from "../foundation/errors.ts";
import type { AnyWorkflow, Step } from "../workflow/workflow.ts";
import { Blobs } from "./blobs.ts";
import { Children } from "./children.ts";
import { nondeterminism, toExecutionError } from "./errors.ts";
import { type EngineHost, type ExecutionTimers, HEARTBEAT_MS } from "./host.ts";
import { returnPermit, schedulePermitReturn, takePermit } from "./permits.ts";
import { Replay } from "./replay.ts";
import { noop, Run } from "./run.ts";
import { compensate, recordCompensation } from "./saga.ts";
import { compensates, type ExecutionRow, endsTimedOut, TERMINAL } from "./schema.ts";
import { stepApi } from "./step-api.ts";
import type { EventReceipt, ExecutionError } from "./types.ts";
import { sendEvent } from "./waits.ts";

/** The value-store namespace of what outlives a purge. */
const LINEAGE = "lineage";

/**
 * The replay engine of one execution: the run loop. A run executes the workflow function from
 * the top; `step.*` calls return journaled results for steps already done and run the rest,
 * journaling each (see {@link Replay} and the step kinds beside it). Waits (backoff, sleep,
 * events, children) are alarm timers; a run that is evicted mid-way is replayed by the next
 * timer or by the heartbeat. When the workflow returns or fails for good, {@link Engine.finish}
 * ends the execution: lifecycle transition, follow-up timers, retention.
 */
export class Engine {
  readonly #host: EngineHost;
  /** Where the input, the output and step outputs are stored. */
  readonly blobs: Blobs;
  /** Journal positions, the determinism check, and how runs wait. */
  readonly replay: Replay;
  /** Child executions, as parent and as child. */
  readonly children: Children;
  #run: Run | null = null;
  #resultWaiters: Array<() => void> = [];

  constructor(host: EngineHost) {
    this.#host = host;
    this.blobs = new Blobs(host.sql, host.values);
    this.replay = new Replay(host, this.blobs, (run, error) => this.#fail(run, error));
    this.children = new Children(this.replay, {
      running: () => this.#run !== null,
      kick: () => this.kick(),
      wake: (seq) => this.wake(seq),
      ensureHeartbeat: () => this.ensureHeartbeat(),
    });
  }

  // ---- reading state -------------------------------------------------------------------------

  /** The execution's row, without its input and output (read them from {@link Engine.blobs}). */
  row(): ExecutionRow | undefined {
    return this.replay.row();
  }

  /**
   * Resolves when the execution is terminal, or when `signal` aborts (then the wait is forgotten:
   * a caller that gave up leaves nothing behind).
   */
  whenTerminal(signal?: AbortSignal): Promise<void> {
    const row = this.row();
    if (!row || TERMINAL.has(row.status) || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.#resultWaiters = this.#resultWaiters.filter((waiter) => waiter !== done);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      this.#resultWaiters.push(done);
      signal?.addEventListener("abort", done, { once: true });
    });
  }

  /** Whether a run is live in this instance (one that crashed with the actor is not). */
  get live(): boolean {
    return this.#run !== null && !this.#run.dead;
  }

  /** Step bodies running and journaled outputs being read back in the live run, now. */
  get busy(): number {
    return this.#run?.busy ?? 0;
  }

  /** Callers waiting for the execution to end now (`result()`, `cancel()`): for diagnostics. */
  get pendingWaits(): number {
    return this.#resultWaiters.length;
  }

  // ---- driving the run -----------------------------------------------------------------------

  /**
   * Starts a run if the execution should be running and none is. A paused execution is replayed
   * too when a step was in flight (it finishes; the next step waits at the gate).
   */
  kick(row: ExecutionRow | undefined = this.row()): void {
    if (row?.mode !== "workflow" || this.#run || TERMINAL.has(row.status)) return;
    const cancelling = row.cancel_requested !== 0;
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

  /** A timer for `seq` fired (or its outcome came in): wake its waiter, or replay if none waits. */
  wake(seq: number): void {
    if (!this.replay.wakeWaiters(seq)) this.kick();
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
    this.replay.openGate();
  }

  /** Ends the live run: in-flight steps see their signals abort; nothing resumes it. */
  killRun(reason: unknown): void {
    this.#run?.kill(reason);
    this.#run = null;
    this.replay.clearWaiters();
    this.openGate();
  }

  /** Wakes everyone waiting for the result. */
  #settle(): void {
    const waiters = this.#resultWaiters;
    this.#resultWaiters = [];
    for (const resolve of waiters) resolve();
  }

  async #execute(run: Run, row: ExecutionRow): Promise<void> {
    // A replay test (baton/testing) may run the code it was given in place of the registered one
    // of the same name and version.
    const tested = this.#host.testHooks()?.workflow as AnyWorkflow | undefined;
    const wf =
      tested?.name === row.workflow && tested.version === row.version
        ? tested
        : this.#host.registry().get(row.workflow, row.version);
    try {
      if (!wf) {
        throw new BatonError(
          "UNKNOWN_WORKFLOW",
          `Version ${row.version} of workflow "${row.workflow}" is not registered on this Execution actor; keep old versions registered until their executions finish.`,
          { workflow: row.workflow, version: row.version },
        );
      }
      const input = await this.blobs.readInput();
      if (run.dead) return;
      const step = stepApi(this.replay, this.children, run, wf, row);
      const start = () =>
        (wf.fn as (i: unknown, s: Step, c: unknown) => Promise<unknown>)(input, step, {
          executionId: row.execution_id,
          workflow: row.workflow,
          version: row.version,
          env: this.#host.env,
          createdAt: row.created_at,
          waitUntil: (promise: Promise<unknown>) => this.#host.waitUntil(promise),
        });
      // The permit is a journaled step like any other: a cancel-mode run replays it too (and
      // stops there if the execution never got one).
      const permit = wf.options.concurrency
        ? takePermit(this.replay, wf, row, input, step)
        : undefined;
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
        const timedOut = endsTimedOut(row.cancel_requested);
        const cancelled = timedOut
          ? new BatonError("EXECUTION_TIMEOUT", "The execution's deadline passed.")
          : new BatonError("CANCELLED", "The execution was cancelled.");
        const end = timedOut ? "time_out" : "cancel";
        run.stop(cancelled);
        await run.quiesce();
        if (run.dead) return;
        // Cancelled without compensations (Workflows' terminate() without rollback): none run.
        if (compensates(row.cancel_requested)) {
          const compensation = await compensate(this.replay, run, row, cancelled);
          if (run.dead) return;
          if (compensation) {
            await this.finish(run, end, () => recordCompensation(this.replay, compensation));
            return;
          }
        }
        await this.finish(run, end);
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
      for (const seq of this.children.openChildSteps()) await this.children.outcome(run, seq);
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
        const cause = error instanceof Error ? error : new Error(failure.message);
        const compensation = await compensate(this.replay, run, row, cause);
        if (run.dead) return;
        if (compensation) failure.compensation = compensation;
      }
      await this.#fail(run, failure);
    } finally {
      if (this.#run === run) this.#run = null;
    }
  }

  async #complete(run: Run, output: unknown): Promise<void> {
    let bytes: Uint8Array;
    try {
      bytes = await encode(output);
    } catch (error) {
      return this.#fail(run, toExecutionError(error, null));
    }
    if (run.dead) return;
    // The output is written with the terminal transition (see finish): both or neither.
    await this.finish(run, "complete", () =>
      this.blobs.storeWith("output", bytes, (stored) =>
        this.#host.sql.run("UPDATE _baton_execution SET output = ? WHERE id = 1", stored),
      ),
    );
  }

  async #fail(run: Run, error: ExecutionError): Promise<void> {
    if (run.dead) return;
    await this.finish(run, "fail", () =>
      this.#host.sql.run(
        "UPDATE _baton_execution SET error = ? WHERE id = 1",
        JSON.stringify(error),
      ),
    );
  }

  /**
   * Moves to a terminal state, stops timers and schedules retention. `record` writes the
   * outcome (output, error) in the transaction of the transition, with the follow-up timers
   * (cancel unfinished children, report to the parent): all of it commits or none does. If that
   * fails for a run, the actor crashes ({@link Replay.crash}) and the replay ends it again; a
   * caller with no run (cancel, a tracked execution) gets the `STORAGE_ERROR`, nothing changed.
   */
  async finish(
    run: Run | null,
    event: "complete" | "fail" | "cancel" | "time_out",
    record?: () => void,
  ): Promise<void> {
    const now = this.#host.now();
    const openChildren = this.children.openChildIds();
    const before = this.row();
    const compensate = compensates(before?.cancel_requested ?? 0);
    const transition = () =>
      this.#host.sql.transaction(() => {
        record?.();
        this.#transition(event, now);
        // Durable follow-ups: cancel unfinished children, tell the parent. The cancels are due
        // now (run at the end of this call); the report is tried at once below and its timer is
        // the retry, due a heartbeat from now, so it falls in the alarm already armed (no alarm
        // write on the way out).
        for (const childId of openChildren) {
          this.#host.timers.enqueue(
            "cancel-child",
            { binding: this.#host.childBinding(), childId, ...(compensate ? {} : { compensate }) },
            { after: 0 },
            { maxAttempts: 50 },
          );
        }
        if (before?.parent_id) {
          this.#host.timers.enqueue(
            "report",
            {},
            { after: HEARTBEAT_MS },
            { key: "report", maxAttempts: 600 },
          );
        }
      });
    if (run) {
      if (run.dead) return;
      if (!this.replay.wrote(run, transition)) return;
    } else transition();
    run?.kill(new BatonError("CANCELLED", "The execution ended."));
    if (this.#run === run) this.#run = null;
    const row = this.row();
    const runNumber = row?.run;
    this.#host.ended();
    // The outcome is committed: whatever fails from here, waiters get it (settle below).
    try {
      // This run's permit goes back whatever comes next (a restart takes a permit of its own;
      // one not returned here runs out with its lease).
      if (row) await schedulePermitReturn(this.replay, row);
      await this.#host.timers.cancelKind("wake");
      // This run's deadline is moot (only its own: a restart meanwhile armed the next run's).
      if (row?.deadline_at != null) await this.#host.timers.cancel(`deadline:${row.run}`);
      // A restart may have come in during those awaits: then its heartbeat must stay.
      if (this.row()?.run !== runNumber) return;
      // The heartbeat becomes the retention timer.
      await this.#setLifecycle(now + (row?.retention_ms ?? 0));
    } catch {
      // Left armed, the heartbeat finds the execution ended and sets its retention timer.
    }
    this.#settle();
    // Cancelling children is due now: start it in this event rather than one alarm later (the
    // rows are committed, so the alarm still runs them if this is cut short).
    if (openChildren.length > 0) void this.#host.timers.runDue().catch(() => {});
    // Tell the parent and the index now, then (done for a long while) move the alarm to the
    // retention time rather than waking early. A child does not make its parent wait for that.
    const tail = async () => {
      await Promise.all([
        row?.parent_id ? this.children.reportNow() : null,
        this.#host.flushIndex(),
      ]);
      await this.#host.timers.syncAlarm();
    };
    if (row?.parent_id) void tail().catch(() => {});
    else await tail();
  }

  /** The terminal transition's writes (inside finish's transaction). */
  #transition(event: "complete" | "fail" | "cancel" | "time_out", now: number): void {
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
  }

  /**
   * Stores an event and hands it to the oldest wait for its type (see {@link sendEvent}).
   *
   * @throws BatonError `EXECUTION_FINISHED`, `PAYLOAD_TOO_LARGE`, `SERIALIZATION_ERROR`.
   */
  sendEvent(type: string, payload: unknown, dedupeKey: string | undefined): Promise<EventReceipt> {
    return sendEvent(this.replay, type, payload, dedupeKey, (seq) => this.wake(seq));
  }

  /** The `permit` timer: gives a finished execution's concurrency permit back. */
  returnPermit(payload: ExecutionTimers["permit"]): Promise<void> {
    return returnPermit(this.#host.env, payload);
  }

  /**
   * Deletes every trace of the execution (retention, `delete()`); the object keeps empty tables
   * and the number of runs the id had.
   */
  purge(): void {
    const { sql } = this.#host;
    const runs = this.row()?.run;
    this.#host.recordChange(true);
    this.#host.timers.purgeDeadLetters();
    sql.run("DELETE FROM _baton_steps");
    sql.run("DELETE FROM _baton_events");
    sql.run("DELETE FROM _baton_execution");
    this.blobs.clear();
    // The one thing kept: how many runs the id had, so a new execution under it numbers its runs
    // on (its children get new ids rather than finding the old ones).
    if (runs !== undefined) {
      const total = Math.max(runs, this.priorRuns()); // a tracked execution starts at 1
      this.#host.values.putEncoded(LINEAGE, "runs", encodeSync(total));
    }
  }

  /** Runs that executions under this id made before (deleted ones, or purged by retention). */
  priorRuns(): number {
    const bytes = this.#host.values.getEncoded(LINEAGE, "runs");
    return bytes === undefined ? 0 : (decodeSync<number>(bytes) ?? 0);
  }

  /** Clears the journal and events for a restart. */
  resetJournal(): void {
    const { sql } = this.#host;
    sql.run("DELETE FROM _baton_steps");
    sql.run("DELETE FROM _baton_events");
    this.blobs.clearAllButInput();
  }
}
