import type { Value } from "../../src/execution/types.ts";
import type { Migration } from "../../src/foundation/migrations.ts";
import type { Sql } from "../../src/foundation/sql.ts";
import type {
  ScheduleInfo,
  ScheduleSummary,
  ScheduleUpdate,
} from "../../src/protocol/schedules.ts";
import { REGISTRY_MIGRATION } from "./registry.ts";
import { type RunRow, toRun } from "./runs.ts";
import type { Settings } from "./spec.ts";
import { type Timing, timingOf } from "./timing.ts";

/** Schema scope of the Schedule actor's tables. */
export const SCHEDULE_SCHEMA = "baton.schedule";

export const SCHEDULE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "schedule, runs",
    up: (sql) => {
      // One row: this object is one schedule.
      sql.run(`CREATE TABLE _baton_schedule (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        schedule_id TEXT NOT NULL,
        digest TEXT NOT NULL,
        settings TEXT NOT NULL,
        input BLOB NOT NULL,
        anchor INTEGER NOT NULL,
        paused INTEGER NOT NULL DEFAULT 0,
        -- Fires at or before it have been handled.
        cursor INTEGER NOT NULL,
        next_fire_at INTEGER,
        -- buffer-one: the fire waiting for the running run to end.
        buffered INTEGER,
        last_fire_at INTEGER,
        skipped INTEGER NOT NULL DEFAULT 0,
        -- Orders the registry's copies of this schedule.
        version INTEGER NOT NULL DEFAULT 1,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      ) STRICT`);
      sql.run(`CREATE TABLE _baton_schedule_runs (
        fire_at INTEGER PRIMARY KEY,
        execution_id TEXT NOT NULL,
        reason TEXT NOT NULL,
        status TEXT NOT NULL,
        recorded_at INTEGER NOT NULL,
        error TEXT
      ) STRICT`);
    },
  },
  REGISTRY_MIGRATION,
];

/** The schedule's one row. */
export interface ScheduleRow {
  schedule_id: string;
  digest: string;
  settings: string;
  input: ArrayBuffer;
  anchor: number;
  paused: number;
  cursor: number;
  next_fire_at: number | null;
  buffered: number | null;
  last_fire_at: number | null;
  skipped: number;
  version: number;
  created_at: number;
  updated_at: number;
  [column: string]: string | number | ArrayBuffer | null;
}

/** The schedule's state for `describe()`. */
export function infoOf(sql: Sql, row: ScheduleRow, input: Value): ScheduleInfo {
  const s = settingsOf(row);
  const runs = sql.all<RunRow>(
    "SELECT * FROM _baton_schedule_runs ORDER BY fire_at DESC LIMIT ?",
    s.keep,
  );
  return {
    id: row.schedule_id,
    workflow: s.workflow,
    input,
    cron: s.cron,
    every: s.everyMs,
    timezone: s.timezone,
    overlap: s.overlap,
    catchup: s.catchup,
    jitter: s.jitterMs,
    startAt: s.startAt,
    endAt: s.endAt,
    timeout: s.timeoutMs,
    keep: s.keep,
    binding: s.binding,
    state: stateOf(row),
    nextFireAt: row.next_fire_at,
    lastFireAt: row.last_fire_at,
    skipped: row.skipped,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    runs: runs.map(toRun),
  };
}

/** The schedule as the registry lists it. */
export function summaryOf(sql: Sql, row: ScheduleRow): ScheduleSummary {
  const s = settingsOf(row);
  const last = sql.one<RunRow>("SELECT * FROM _baton_schedule_runs ORDER BY fire_at DESC LIMIT 1");
  return {
    id: row.schedule_id,
    workflow: s.workflow,
    cron: s.cron,
    every: s.everyMs,
    timezone: s.timezone,
    state: stateOf(row),
    nextFireAt: row.next_fire_at,
    lastFireAt: row.last_fire_at,
    lastRun: last
      ? { executionId: last.execution_id, status: last.status, fireAt: last.fire_at }
      : null,
    updatedAt: row.updated_at,
  };
}

function stateOf(row: ScheduleRow): ScheduleInfo["state"] {
  return row.paused ? "paused" : row.next_fire_at === null ? "ended" : "active";
}

/** The stored (checked) settings of a schedule. */
export function settingsOf(row: ScheduleRow): Settings {
  return JSON.parse(row.settings) as Settings;
}

/** When the schedule fires. */
export function timingOfRow(row: ScheduleRow): Timing {
  return timingOf({ ...settingsOf(row), anchor: row.anchor });
}

/**
 * The first fire of an `every` schedule: `startAt`, else one interval after `now` (its creation).
 * Its fires are the anchor plus whole intervals.
 */
export function anchorOf(settings: Settings, now: number): number {
  return settings.startAt ?? now + (settings.everyMs ?? 0);
}

/** Stored settings as a spec again (to merge an update into). */
export function specOf(s: Settings, input: Value): ScheduleUpdate & { workflow: string } {
  return {
    workflow: s.workflow,
    input,
    ...(s.cron === null ? {} : { cron: s.cron }),
    ...(s.everyMs === null ? {} : { every: s.everyMs }),
    timezone: s.timezone,
    overlap: s.overlap,
    catchup: s.catchup,
    jitter: s.jitterMs,
    ...(s.startAt === null ? {} : { startAt: s.startAt }),
    ...(s.endAt === null ? {} : { endAt: s.endAt }),
    ...(s.timeoutMs === null ? {} : { timeout: s.timeoutMs }),
    keep: s.keep,
    binding: s.binding,
  };
}
