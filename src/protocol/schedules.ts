/**
 * What crosses RPC between the Schedule actors and their callers (types and constants only: no
 * runtime code of the actors, so callers pay nothing for importing them).
 */
import type { ExecutionError, Value } from "../execution/types.ts";
import type { Duration } from "../foundation/duration.ts";
import type { IndexedStatus } from "./listing.ts";

/**
 * What a fire does while a run the schedule started is still running: `skip` it (default), keep
 * at most one to start when the running one ends (`buffer-one`), or start it anyway (`allow`).
 */
export type OverlapPolicy = "skip" | "buffer-one" | "allow";

/**
 * What the schedule does about fires it missed (its alarm came late: an outage, a long eviction):
 * run none of them, `one` (the latest; default), or `all` (the latest {@link MAX_CATCHUP} of
 * them, oldest first). A fire counts as missed when its alarm runs more than a minute (plus the
 * jitter) after it. Fires while the schedule is paused are not missed: they never happen.
 */
export type CatchupPolicy = "none" | "one" | "all";

/** A schedule as `create` takes it. Either `cron` or `every`. */
export interface ScheduleSpec {
  /** The schedule's id (its Schedule actor's name): 1 to 200 characters. */
  id: string;
  /** The registered workflow each fire starts (its name). */
  workflow: string;
  /** The input of every run. */
  input?: Value;
  /**
   * A cron expression: five fields (minute hour day-of-month month day-of-week) or six with
   * seconds first; `@daily`, `@hourly` … too. Evaluated in `timezone`.
   */
  cron?: string;
  /**
   * A fixed interval instead of `cron`: at least 1 second. Fires at `startAt` + k × every, or
   * without `startAt` at creation + (k + 1) × every.
   */
  every?: Duration;
  /** An IANA time zone for `cron` ("Europe/Berlin"). Default "UTC". */
  timezone?: string;
  /** Default `skip`. */
  overlap?: OverlapPolicy;
  /** Default `one`. */
  catchup?: CatchupPolicy;
  /** Each fire starts up to this much later, at random (spreads load); the run's id keeps the fire time. */
  jitter?: Duration;
  /** No fire before this time. */
  startAt?: Date | number;
  /** No fire after this time: the schedule ends. */
  endAt?: Date | number;
  /** Each run's deadline (the start's `timeout`): a run not ended by then ends `timed_out`. */
  timeout?: Duration;
  /** How many recent runs the schedule keeps with their outcomes. Default 20, at most 100. */
  keep?: number;
  /** Created paused. */
  paused?: boolean;
  /** The Execution actor namespace's binding in the Schedule actor's env. Default "Executions". */
  binding?: string;
}

/** What `update` may change. */
export type ScheduleUpdate = Partial<Omit<ScheduleSpec, "id" | "paused">>;

/** Why a run was started. */
export type RunReason = "scheduled" | "catchup" | "trigger" | "backfill";

/** One run of a schedule, as it keeps it. */
export interface ScheduleRun {
  /** The fire time it stands for (ms since the epoch); its execution id is `<schedule id>/<ISO time>`. */
  fireAt: number;
  executionId: string;
  reason: RunReason;
  /**
   * `starting` until the execution exists, then its status as last seen; `skipped` (an overlap
   * with a running run), `buffered` (waiting for the running one), or `start_failed` (the start
   * was refused: see `error`).
   */
  status: "starting" | "skipped" | "buffered" | "start_failed" | IndexedStatus;
  /** When the fire was handled. */
  recordedAt: number;
  /** The execution's error (failed, cancelled, timed out), or why it could not start. */
  error: Pick<ExecutionError, "code" | "message"> | null;
}

/** A schedule's state. */
export interface ScheduleInfo {
  id: string;
  workflow: string;
  input: Value;
  cron: string | null;
  /** The interval in ms, for an `every` schedule. */
  every: number | null;
  timezone: string;
  overlap: OverlapPolicy;
  catchup: CatchupPolicy;
  jitter: number;
  startAt: number | null;
  endAt: number | null;
  /** Each run's deadline in ms, or null. */
  timeout: number | null;
  keep: number;
  binding: string;
  /** `ended` after `endAt` (no more fires). */
  state: "active" | "paused" | "ended";
  /** The next fire time, or null (paused, ended). */
  nextFireAt: number | null;
  /** The latest fire time handled, or null. */
  lastFireAt: number | null;
  /** Fires dropped since creation: missed (catch-up) or skipped (overlap). */
  skipped: number;
  createdAt: number;
  updatedAt: number;
  /** The recent runs, newest first. */
  runs: ScheduleRun[];
}

/** One schedule in `list()`. */
export interface ScheduleSummary {
  id: string;
  workflow: string;
  cron: string | null;
  every: number | null;
  timezone: string;
  state: ScheduleInfo["state"];
  nextFireAt: number | null;
  lastFireAt: number | null;
  /** The newest run, if any. */
  lastRun: Pick<ScheduleRun, "executionId" | "status" | "fireAt"> | null;
  updatedAt: number;
}

/** A page of `list()`. */
export interface ScheduleList {
  schedules: ScheduleSummary[];
  /** Pass it back for the next page; null on the last one. */
  cursor: string | null;
}

/** The Schedule actor that lists every schedule of its namespace (a reserved name). */
export const SCHEDULE_REGISTRY = "baton:schedules";
/** Most missed fires `catchup: "all"` starts. */
export const MAX_CATCHUP = 100;
/** Most fires one `backfill` starts. */
export const MAX_BACKFILL = 1000;
/** Most runs a schedule keeps. */
export const MAX_KEEP = 100;
