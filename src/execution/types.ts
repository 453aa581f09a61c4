import type { Duration } from "../foundation/duration.ts";
import type { StepError } from "../workflow/workflow.ts";

/** The kind of a journal entry: a step call of one of these kinds. */
export type StepKind = "do" | "sleep" | "wait" | "progress" | "child";

/** Where a journal entry stands. */
export type StepStatus =
  | "running"
  | "backoff"
  | "completed"
  | "failed"
  | "sleeping"
  | "waiting"
  | "timed_out"
  | "cancelled";

/**
 * Any value a workflow takes or returns, as it crosses RPC (structured-clone types). Typed
 * clients narrow it to the workflow's own input and output types.
 */
export type Value = object | string | number | boolean | bigint | null | undefined;

/** What an execution is doing. `sleeping` and `waiting` are `running` executions whose every unfinished step is a sleep or a wait. */
export type ExecutionStatus =
  | "pending"
  | "running"
  | "sleeping"
  | "waiting"
  | "paused"
  | "completed"
  | "failed"
  | "cancelled"
  | "timed_out";

/** Why an execution failed (or was cancelled). */
export interface ExecutionError {
  /** Stable code: `STEP_FAILED`, `STEP_TIMEOUT`, `NONDETERMINISM`, `CANCELLED`, or the error's own code. */
  code: string;
  message: string;
  /** The error's name (`Error`, `TypeError`, ...). */
  name: string;
  /** The step that failed, when a step did. */
  step: string | null;
  /** The attempt of that step that failed last. */
  attempt: number | null;
  /**
   * Saga compensation after the failure or cancel: `completed` (every compensation ran),
   * `failed` (at least one failed after its retries; see the journal's `$compensate:` entries).
   * Absent when no completed step had a compensation.
   */
  compensation?: "completed" | "failed";
}

/** The state of an execution, as `status()` reports it. */
export interface ExecutionInfo {
  id: string;
  workflow: string;
  /** The workflow version the execution started on. */
  version: number;
  /** `workflow` (run by Baton) or `tracked` (reported by outside code). */
  mode: "workflow" | "tracked";
  status: ExecutionStatus;
  /** The latest step started (or reported), if any. */
  currentStep: string | null;
  /** Steps journaled so far, and how many of them completed. */
  stepCount: number;
  completedSteps: number;
  /** Tracked executions: the total announced at start. */
  totalSteps: number | null;
  /** Attempts over all steps (retries and recoveries included). */
  attempts: number;
  /**
   * 1, then +1 per `restart()`; an execution started under an id whose earlier execution was
   * deleted (or purged by retention) numbers on from that one's runs.
   */
  run: number;
  createdAt: number;
  updatedAt: number;
  endedAt: number | null;
  /** When the current run times out (ms since the epoch), if it has a deadline; else null. */
  deadline: number | null;
  error: ExecutionError | null;
}

/** Everything about an execution for an operator's view (`ExecutionActor.describe()`). */
export interface ExecutionDetails {
  info: ExecutionInfo;
  /** The input it was started with. */
  input: Value;
  /** Its outcome once it is finished (`completed`, `failed`, `cancelled`), else null. */
  result: ExecutionResult | null;
  /** The parent execution and its step (journal position), for a child execution. */
  parent: { id: string; step: number } | null;
}

/** The outcome of an execution: `ok` with its value, or the error. */
export type ExecutionResult<T = Value> =
  | { ok: true; status: "completed"; value: T }
  | { ok: false; status: "failed" | "cancelled" | "timed_out"; error: ExecutionError };

/** One journal entry: a step as it ran. */
export interface JournalEntry {
  /** Position in call order (0-based). */
  seq: number;
  name: string;
  kind: StepKind;
  status: StepStatus;
  attempts: number;
  startedAt: number;
  endedAt: number | null;
  /** Sleeps and backoffs: when it wakes. Waits: when it times out. */
  wakeAt: number | null;
  /** Waits: the event type. */
  eventType: string | null;
  /** Completed steps: the journaled output. */
  output?: Value;
  /**
   * True when a completed step's output could not be read back here (over the codec's 32 MiB
   * limit, as a value stored by an older version may be, or damaged); the page goes on.
   */
  outputOmitted?: true;
  /** The last error, if any attempt failed. */
  error?: StepError;
  /** `do` steps: when the current (or last) attempt started; null for rows older than 0.1. */
  attemptStartedAt?: number | null;
  /**
   * `do` steps: the attempts that failed (the last 50), oldest first, each with its start, end
   * and error; a gap between one's end and the next attempt's start is the retry backoff.
   * Absent when no attempt failed.
   */
  failedAttempts?: AttemptRecord[];
  /** `child` steps: the child execution's id (in the same Execution actor namespace). */
  childId?: string;
}

/** A failed attempt of a step, in {@link JournalEntry.failedAttempts}. */
export interface AttemptRecord {
  attempt: number;
  /** When it started (null if unknown: it began before this was recorded). */
  startedAt: number | null;
  /** When it failed, or when the actor found it cut short by a crash (`STEP_INTERRUPTED`). */
  endedAt: number;
  /** Its error; the message cut to 1 KiB. */
  error: { name: string; message: string; code?: string };
}

/** What `sendEvent` did with an event. */
export interface EventReceipt {
  /** The stored event's id. */
  id: number;
  /** True if a waiting step consumed it now; false if it is buffered for a later wait. */
  delivered: boolean;
  /** The step that consumed it, if one did. */
  step: string | null;
  /** True if an event with the same `dedupeKey` was already received (nothing changed). */
  duplicate: boolean;
}

/** Options of `start`. */
export interface StartOptions {
  /** The execution id (the Execution actor's name). 1–256 characters. */
  id: string;
  /** Override the workflow's retention of the finished execution. */
  retention?: number | `${number}${string}`;
  /**
   * Fail with `EXECUTION_CONFLICT` when the id exists, even as the same workflow and input
   * (`start` is idempotent per id otherwise).
   */
  exclusive?: boolean;
  /**
   * A deadline: the execution ends `timed_out` (error `EXECUTION_TIMEOUT`) if it has not ended
   * this long after it started, as a cancel would end it (running step bodies see their abort
   * signal, compensations run, children are cancelled). Overrides the workflow's
   * `executionTimeout`; each `restart()` gets the same length again. At most 365 days. Set when
   * the execution is created (a repeated start keeps the first one's deadline). `execute` that
   * creates the execution waits for its end, which the deadline brings.
   */
  timeout?: Duration;
}
