import type { ExecutionInfo } from "../../src/execution/types.ts";
import type { Sql } from "../../src/foundation/sql.ts";
import type { RunReason, ScheduleRun } from "../../src/protocol/schedules.ts";

/** A run as the schedule's table keeps it. */
export interface RunRow {
  fire_at: number;
  execution_id: string;
  reason: RunReason;
  status: ScheduleRun["status"];
  recorded_at: number;
  error: string | null;
  [column: string]: string | number | null;
}

/** Records what a run's execution said of itself (an error only once it has ended). */
export function setRunStatus(
  sql: Sql,
  fireAt: number,
  status: ScheduleRun["status"],
  error: { code?: string | undefined; message: string } | null,
): void {
  const stored =
    error && status !== "running" && status !== "pending" && status !== "paused"
      ? JSON.stringify({ code: error.code ?? "STEP_FAILED", message: error.message })
      : null;
  sql.run(
    "UPDATE _baton_schedule_runs SET status = ?, error = ? WHERE fire_at = ?",
    status,
    stored,
    fireAt,
  );
}

/** How many runs may still be going (the overlap policy waits for them). */
export function activeRuns(sql: Sql): number {
  return (
    sql.value<number>(
      `SELECT COUNT(*) FROM _baton_schedule_runs
       WHERE status IN ('starting', 'pending', 'running', 'paused')`,
    ) ?? 0
  );
}

/** Keeps the newest `keep` runs, and any still going or buffered. */
export function pruneRuns(sql: Sql, keep: number): void {
  sql.run(
    `DELETE FROM _baton_schedule_runs WHERE fire_at NOT IN (
       SELECT fire_at FROM _baton_schedule_runs ORDER BY fire_at DESC LIMIT ?)
     AND status NOT IN ('starting', 'pending', 'running', 'paused', 'buffered')`,
    keep,
  );
}

export function runRow(sql: Sql, fireAt: number): RunRow | undefined {
  return sql.one<RunRow>("SELECT * FROM _baton_schedule_runs WHERE fire_at = ?", fireAt);
}

/** A run's status from its execution's (waiting and sleeping are running). */
export function runStatus(status: ExecutionInfo["status"]): ScheduleRun["status"] {
  return status === "waiting" || status === "sleeping" ? "running" : status;
}

export function toRun(row: RunRow): ScheduleRun {
  return {
    fireAt: row.fire_at,
    executionId: row.execution_id,
    reason: row.reason,
    status: row.status,
    recordedAt: row.recorded_at,
    error: row.error ? JSON.parse(row.error) : null,
  };
}
