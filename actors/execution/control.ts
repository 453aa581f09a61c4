import type { Engine } from "../../src/execution/engine.ts";
import type { ExecutionTimers } from "../../src/execution/host.ts";
import {
  checkRestartPoint,
  findStep,
  type StepRef,
  truncateJournal,
} from "../../src/execution/restart.ts";
import {
  CANCEL_FOR_TIMEOUT,
  CANCEL_FOR_TIMEOUT_WITHOUT_COMPENSATION,
  CANCEL_WITHOUT_COMPENSATION,
  type ExecutionRow,
  endsTimedOut,
  type LifecycleEvent,
  type StoredStatus,
  TERMINAL,
} from "../../src/execution/schema.ts";
import type { ExecutionError } from "../../src/execution/types.ts";
import { BatonError, invalidArgument } from "../../src/foundation/errors.ts";
import type { StateMachine } from "../../src/foundation/fsm.ts";
import type { Scheduler } from "../../src/foundation/scheduler/scheduler.ts";
import type { Sql } from "../../src/foundation/sql.ts";
import { trackedOnly } from "./lifecycle.ts";

/** How long `cancel()` waits for compensations before answering (they go on after). */
const CANCEL_WAIT_MS = 10_000;

/** What the operator's controls (cancel, restart, delete) need of the Execution actor. */
export interface ControlHost {
  sql: Sql;
  timers: Scheduler<ExecutionTimers>;
  engine: Engine;
  lifecycle: StateMachine<StoredStatus, LifecycleEvent>;
  now(): number;
  requireRow(): ExecutionRow;
  currentStep(): string | null;
  /** Delivers the index outbox now (never rejects). */
  flushIndex(): Promise<void>;
  /** Cancels the lifecycle timer (the heartbeat, or the retention of an ended execution). */
  cancelLifecycle(): Promise<unknown>;
}

/** Options of `cancel()`. */
export interface CancelOptions {
  /**
   * Run the compensations of the completed steps (saga), as on a failure. Default true;
   * `false` is Cloudflare Workflows' `terminate()` without `rollback`.
   */
  compensate?: boolean;
}

/** Options of `restart()`. */
export interface RestartOptions {
  /**
   * Restart from this step: the steps before it keep their outcomes (their bodies do not run
   * again); it and every step after it run again. Default: from the start.
   */
  from?: StepRef;
  /**
   * When the execution still runs, cancel it with compensations first (default true). A restart
   * `from` a step never compensates: the steps it keeps stay done.
   */
  compensate?: boolean;
}

function checkFlag(name: string, value: unknown): void {
  if (value !== undefined && typeof value !== "boolean") {
    invalidArgument(name, "must be true or false", value);
  }
}

/**
 * Cancels the execution (see `ExecutionActor.cancel`) and waits up to 10 s for it to end.
 */
export async function cancelExecution(
  host: ControlHost,
  options: CancelOptions = {},
): Promise<void> {
  checkFlag("compensate", options?.compensate);
  const row = host.requireRow();
  if (TERMINAL.has(row.status)) return;
  const { engine } = host;
  // Its deadline passed and it is ending (timed out): a cancel waits for that, and one without
  // compensations (terminate, delete, a restart from a step) stops the compensating.
  if (endsTimedOut(row.cancel_requested)) {
    if (options?.compensate === false && row.cancel_requested === CANCEL_FOR_TIMEOUT) {
      host.sql.run(
        "UPDATE _baton_execution SET cancel_requested = ? WHERE id = 1",
        CANCEL_FOR_TIMEOUT_WITHOUT_COMPENSATION,
      );
      engine.killRun(new BatonError("CANCELLED", "The execution was cancelled."));
      engine.kick();
    }
    return waitForCancel(engine);
  }
  await stopExecution(host, row, {
    code: "CANCELLED",
    message: "The execution was cancelled.",
    cancelRequested: options?.compensate === false ? CANCEL_WITHOUT_COMPENSATION : 1,
  });
  if (row.mode !== "tracked") await waitForCancel(engine);
}

/**
 * Stops a running execution for a cancel or its deadline. A tracked one ends at once (the stop
 * recorded in the transaction of the transition: a failure changes nothing). A workflow's stop is
 * recorded before its run is killed (a failure of this write leaves the run as it was); then a
 * cancel-mode run replays to the first unfinished step, runs the compensations of the completed
 * steps (saga) unless told not to, and ends the execution; finish() closes open steps and cancels
 * unfinished children.
 */
async function stopExecution(
  host: ControlHost,
  row: ExecutionRow,
  stop: { code: "CANCELLED" | "EXECUTION_TIMEOUT"; message: string; cancelRequested: number },
): Promise<void> {
  const { engine } = host;
  const error: ExecutionError = {
    code: stop.code,
    message: stop.message,
    name: "BatonError",
    step: host.currentStep(),
    attempt: null,
  };
  const requested = () =>
    host.sql.run(
      "UPDATE _baton_execution SET error = ?, ended_at = ?, cancel_requested = ? WHERE id = 1",
      JSON.stringify(error),
      host.now(),
      stop.cancelRequested,
    );
  if (row.mode === "tracked") {
    engine.killRun(new BatonError(stop.code, stop.message));
    await engine.finish(null, stop.code === "CANCELLED" ? "cancel" : "time_out", requested);
    return;
  }
  requested();
  engine.killRun(new BatonError(stop.code, stop.message));
  engine.kick();
}

/** Waits up to {@link CANCEL_WAIT_MS} for the execution to end (compensations go on after). */
async function waitForCancel(engine: Engine): Promise<void> {
  const gaveUp = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    engine.whenTerminal(gaveUp.signal),
    new Promise((resolve) => {
      timer = setTimeout(resolve, CANCEL_WAIT_MS);
    }),
  ]);
  clearTimeout(timer);
  gaveUp.abort();
}

/**
 * Arms run `run`'s deadline timer (call it in the transaction that writes `deadline_at`): one
 * timer per run, so a restart's deadline never meets the timer of the run before it.
 */
export function armDeadline(
  timers: Scheduler<ExecutionTimers>,
  run: number,
  deadlineAt: number | null,
): void {
  if (deadlineAt === null) return;
  timers.enqueue("deadline", { run }, { at: deadlineAt }, { key: `deadline:${run}` });
}

/**
 * Run `run`'s deadline passed: unless it has ended (or is being cancelled), it ends `timed_out`
 * with `EXECUTION_TIMEOUT`, as a cancel ends it: running step bodies see their abort signal,
 * the compensations of completed steps run, unfinished children are cancelled.
 */
export async function timeOutExecution(host: ControlHost, run: number): Promise<void> {
  const { engine } = host;
  const row = engine.row();
  if (!row || TERMINAL.has(row.status) || row.run !== run || row.deadline_at === null) return;
  if (row.cancel_requested !== 0) return; // a cancel is ending it already
  await stopExecution(host, row, {
    code: "EXECUTION_TIMEOUT",
    message: `The execution did not end within its timeout of ${row.timeout_ms} ms (its deadline was ${new Date(row.deadline_at).toISOString()}).`,
    cancelRequested: CANCEL_FOR_TIMEOUT,
  });
}

/**
 * Waits until the execution is terminal (or `timeoutMs` passes) and returns its row; a restart
 * meanwhile makes it wait on.
 *
 * @throws BatonError `RESULT_TIMEOUT` (naming `statusOf` the row) if it is still unfinished.
 */
export async function waitForEnd(
  host: ControlHost,
  timeoutMs: number | undefined,
  statusOf: (row: ExecutionRow) => string,
): Promise<ExecutionRow> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut =
    timeoutMs === undefined
      ? new Promise<"timeout">(() => {})
      : new Promise<"timeout">((resolve) => {
          timer = setTimeout(() => resolve("timeout"), timeoutMs);
        });
  let row = host.requireRow();
  // Aborted when this call returns: its waits are forgotten, also after a timeout.
  const gaveUp = new AbortController();
  try {
    while (!TERMINAL.has(row.status)) {
      const outcome = await Promise.race([host.engine.whenTerminal(gaveUp.signal), timedOut]);
      row = host.requireRow();
      if (outcome === "timeout" && !TERMINAL.has(row.status)) {
        throw new BatonError(
          "RESULT_TIMEOUT",
          `Execution is still ${statusOf(row)} after ${timeoutMs} ms.`,
          { timeoutMs },
        );
      }
    }
  } finally {
    clearTimeout(timer);
    gaveUp.abort();
  }
  return row;
}

/** Runs the workflow again, from the start or from a step (see `ExecutionActor.restart`). */
export async function restartExecution(
  host: ControlHost,
  options: RestartOptions = {},
): Promise<void> {
  checkFlag("compensate", options?.compensate);
  const row = host.requireRow();
  if (row.mode !== "workflow") throw trackedOnly("restart");
  const { engine } = host;
  const from = options?.from === undefined ? undefined : findStep(engine.replay, options.from);
  // Checked before a running execution is stopped, so a refused restart changes nothing.
  if (from !== undefined) await checkRestartPoint(engine.replay, from);
  if (!TERMINAL.has(row.status)) {
    await cancelExecution(host, {
      compensate: from === undefined && options?.compensate !== false,
    });
    await engine.whenTerminal(); // compensations may take longer than cancel() waits
  }
  // No await from here on: the journal, the row and the status change together.
  engine.killRun(new BatonError("CANCELLED", "The execution was restarted."));
  // All or nothing: a failure leaves the ended execution as it was (the caller may retry).
  host.sql.transaction(() => {
    if (from === undefined) engine.resetJournal();
    else truncateJournal(engine.replay, from);
    // Each run gets the execution's timeout again, from now.
    const now = host.now();
    host.sql.run(
      `UPDATE _baton_execution SET output = NULL, error = NULL, ended_at = NULL, cancel_requested = 0,
       run = run + 1, deadline_at = CASE WHEN timeout_ms IS NULL THEN NULL ELSE ? + timeout_ms END
       WHERE id = 1`,
      now,
    );
    const next = host.requireRow();
    armDeadline(host.timers, next.run, next.deadline_at);
    host.lifecycle.send("restart");
  });
  await engine.ensureHeartbeat();
  engine.kick();
}

/**
 * Deletes the execution and everything stored of it now, as its retention would: a running one
 * is cancelled first, without compensations (its children are cancelled too). Its id is free
 * again afterwards.
 */
export async function deleteExecution(host: ControlHost): Promise<void> {
  const { engine } = host;
  if (!TERMINAL.has(host.requireRow().status)) {
    await cancelExecution(host, { compensate: false });
    await engine.whenTerminal();
  }
  const row = engine.row();
  if (!row) return; // deleted meanwhile
  // A child tells its parent how it ended before it goes (the parent's check would find it gone).
  if (row.parent_id) await engine.children.reportNow().catch(() => {});
  engine.killRun(new BatonError("CANCELLED", "The execution was deleted."));
  engine.purge();
  // The retention timer goes too, so a new execution under this id gets a heartbeat of its own.
  await host.cancelLifecycle();
  await host.flushIndex();
}
