import { decodeSync } from "../codec.ts";
import { type Duration, parseDuration } from "../duration.ts";
import { invalidArgument, truncateText } from "../errors.ts";

/*
 * The timer table: its schema, the row and public shapes of a timer, and the checks of what
 * callers pass. The scheduler (scheduler.ts) reads and writes it; the alarm (alarm.ts) follows
 * its earliest due time.
 */

/** Maps each timer kind to its payload type. */
export type TimerMap = Record<string, unknown>;

/** The lifecycle state of a stored timer. */
export type TimerState = "pending" | "running" | "dead";

/** A stored timer as the inspection methods return it. */
export interface TimerInfo<K extends string = string, P = unknown> {
  id: number;
  kind: K;
  payload: P;
  /** When it is due, in ms since the epoch. */
  dueAt: number;
  key: string | null;
  state: TimerState;
  /** Attempts started so far. */
  attempts: number;
  maxAttempts: number;
  /** Message of the last failure, if any. */
  lastError: string | null;
  createdAt: number;
}

/** Runs one timer. Throwing (or rejecting) counts as a failed attempt. */
export type TimerHandler<P, K extends string = string> = (
  payload: P,
  timer: TimerInfo<K, P>,
) => void | Promise<void>;

/** When a timer is due: at a time, or after a duration from now. */
export type When = { at: Date | number } | { after: Duration };

/** Options for one timer. */
export interface ScheduleOptions {
  /**
   * Idempotency key: while a pending timer with this key exists, scheduling again returns it
   * unchanged instead of adding a second one.
   */
  key?: string;
  /** Attempts before the timer is dead-lettered. Default: the scheduler's `maxAttempts`. */
  maxAttempts?: number;
}

/** Tuning for a {@link Scheduler}. Defaults suit most actors. */
export interface SchedulerOptions {
  /** Attempts per timer before it is dead-lettered. Default 5. */
  maxAttempts?: number;
  /** First retry delay after a failed attempt; doubles each attempt. Default 1 second. */
  retryDelay?: Duration;
  /** Cap on the retry delay. Default 5 minutes. */
  maxRetryDelay?: Duration;
  /** Rows read per query while draining due timers. Default 256. */
  batchSize?: number;
  /** Timers run per alarm invocation before the rest is left to the next alarm. Default 2000. */
  maxPerRun?: number;
  /** Wall-time budget of one alarm invocation, in ms. Default 10 seconds. */
  timeBudgetMs?: number;
}

/** What one {@link Scheduler.run} did. */
export interface RunReport {
  /** Handlers that succeeded. */
  succeeded: number;
  /** Attempts that failed and will be retried. */
  retried: number;
  /** Timers moved to the dead-letter state. */
  deadLettered: number;
  /** True if due timers were left for the next alarm (batch or time budget reached). */
  more: boolean;
}

/** Filters for {@link Scheduler.list}. */
export interface ListTimersOptions {
  kind?: string;
  state?: TimerState;
  /** Default 100, at most 1000. */
  limit?: number;
}

/** A timer row as stored. */
export interface TimerRow {
  id: number;
  kind: string;
  due_at: number;
  payload: ArrayBuffer;
  key: string | null;
  state: TimerState | "claimed";
  attempts: number;
  max_attempts: number;
  last_error: string | null;
  created_at: number;
  [column: string]: string | number | ArrayBuffer | null;
}

export const TABLE = "_baton_timers";
/**
 * Largest encoded timer payload; keep payloads small and store bulk data elsewhere.
 *
 * @example
 * ```ts
 * // Too big for a timer: store it and schedule a reference instead.
 * await this.values.put("jobs", jobId, bigInput);
 * await this.timers.schedule("job", { jobId }, { after: "1m" });
 * ```
 */
export const MAX_TIMER_PAYLOAD_BYTES = 256 * 1024;
const MAX_KIND = 128;
const MAX_KEY = 512;

/** Framework migration statements that create the timer table. */
export const TIMERS_TABLE_SQL = `
CREATE TABLE ${TABLE} (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL,
  due_at INTEGER NOT NULL,
  payload BLOB NOT NULL,
  key TEXT,
  -- claimed: taken by a batch, not started; running: handler started (attempt counted).
  -- Both read as "running" outside.
  state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'claimed', 'running', 'dead')),
  attempts INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL,
  last_error TEXT,
  created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX ${TABLE}_due ON ${TABLE} (due_at, id) WHERE state <> 'dead';
CREATE UNIQUE INDEX ${TABLE}_key ON ${TABLE} (key) WHERE key IS NOT NULL AND state IN ('pending', 'claimed');
`;

/**
 * On a move back to pending: keep the key unless another timer with that key is waiting (the
 * running handler scheduled it); that one keeps the key, this one continues without it.
 */
export const KEEP_KEY_UNLESS_WAITING_TWIN = `key = CASE WHEN key IS NOT NULL AND EXISTS (
  SELECT 1 FROM ${TABLE} t WHERE t.key = ${TABLE}.key AND t.id <> ${TABLE}.id AND t.state IN ('pending', 'claimed')
) THEN NULL ELSE key END`;

/** Why a timer failed, as stored in `last_error` (cut to 8 KiB: a row must stay small). */
export function messageOf(error: unknown): string {
  let text: string;
  try {
    text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  } catch {
    text = Object.prototype.toString.call(error);
  }
  return truncateText(text, 8 * 1024);
}

export function rowInfo(row: TimerRow): Omit<TimerInfo, "payload"> {
  return {
    id: row.id,
    kind: row.kind,
    dueAt: row.due_at,
    key: row.key,
    state: row.state === "claimed" ? "running" : row.state,
    attempts: row.attempts,
    maxAttempts: row.max_attempts,
    lastError: row.last_error,
    createdAt: row.created_at,
  };
}

/** A row for inspection; a payload that cannot be decoded reads as `undefined`. */
export function toInfo(row: TimerRow): TimerInfo {
  let payload: unknown;
  try {
    payload = decodeSync(row.payload);
  } catch {
    payload = undefined;
  }
  return { ...rowInfo(row), payload };
}

export function dueTime(when: When, now: number): number {
  if (typeof when !== "object" || when === null) {
    invalidArgument("when", "must be { at: Date | number } or { after: duration }", when);
  }
  if ("at" in when) {
    const at = when.at instanceof Date ? when.at.getTime() : when.at;
    if (typeof at !== "number" || !Number.isFinite(at) || at < 0) {
      invalidArgument("when.at", "must be a valid Date or a time in ms since the epoch", when.at);
    }
    return Math.ceil(at);
  }
  if ("after" in when) return now + parseDuration(when.after);
  return invalidArgument("when", "must be { at: Date | number } or { after: duration }", when);
}

export function checkKind(kind: unknown): asserts kind is string {
  if (typeof kind !== "string" || kind.length === 0 || kind.length > MAX_KIND) {
    invalidArgument("Timer kind", `must be a string of 1 to ${MAX_KIND} characters`, kind);
  }
}

export function checkIdOrKey(idOrKey: unknown): void {
  if (typeof idOrKey === "number") {
    if (!Number.isSafeInteger(idOrKey)) invalidArgument("id", "must be an integer", idOrKey);
  } else if (typeof idOrKey === "string") checkKey(idOrKey);
  else invalidArgument("Timer id or key", "must be an integer id or a string key", idOrKey);
}

export function checkKey(key: unknown): asserts key is string {
  if (typeof key !== "string" || key.length === 0 || key.length > MAX_KEY) {
    invalidArgument("Timer key", `must be a string of 1 to ${MAX_KEY} characters`, key);
  }
}

export function positiveInt(name: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) {
    invalidArgument(name, "must be a positive integer", value);
  }
  return value;
}
