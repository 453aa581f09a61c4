import type { Sql } from "../foundation/sql.ts";
import type { Blobs } from "./blobs.ts";
import { PERMIT_STEP } from "./fork.ts";
import type { ExecutionRow } from "./schema.ts";
import type { ExecutionError, Value } from "./types.ts";

/** Cloudflare Workflows' instance status names. */
export type InstanceStatusName =
  | "queued"
  | "running"
  | "paused"
  | "errored"
  | "terminated"
  | "complete"
  | "waiting"
  | "waitingForPause"
  | "unknown";

/** An execution's state as Cloudflare Workflows' `instance.status()` reports it. */
export interface InstanceStatusInfo {
  status: InstanceStatusName;
  /** The workflow's return value once `complete` (else null). */
  output: Value;
  /** The error once `errored`. */
  error?: { name: string; message: string };
}

/**
 * Maps an execution to Workflows' status: `queued` before its first step (or while it waits for
 * a concurrency permit), `waiting` while every open step is a sleep or a wait, `waitingForPause`
 * while paused with a step still in flight, `errored` for failed and timed out, `terminated`
 * for cancelled, `complete` for completed.
 */
export async function instanceStatus(
  row: ExecutionRow,
  sql: Sql,
  blobs: Blobs,
): Promise<InstanceStatusInfo> {
  const error = row.error ? (JSON.parse(row.error) as ExecutionError) : null;
  const brief = error ? { error: { name: error.name, message: error.message } } : {};
  switch (row.status) {
    case "completed":
      return { status: "complete", output: ((await blobs.readOutput()) as Value) ?? null };
    case "failed":
    case "timed_out":
      return { status: "errored", output: null, ...brief };
    case "cancelled":
      return { status: "terminated", output: null };
    case "pending":
      return { status: "queued", output: null };
    case "paused": {
      const inFlight = sql.value<number>(
        "SELECT COUNT(*) FROM _baton_steps WHERE status = 'running'",
      );
      return { status: inFlight ? "waitingForPause" : "paused", output: null };
    }
    case "running": {
      const open = sql.one<{ permit: number; other: number; parked: number }>(
        `SELECT COALESCE(SUM(name = ?), 0) AS permit, COALESCE(SUM(name != ?), 0) AS other,
           COALESCE(SUM(status IN ('sleeping', 'waiting') AND name != ?), 0) AS parked
         FROM _baton_steps WHERE status IN ('running', 'backoff', 'sleeping', 'waiting')`,
        PERMIT_STEP,
        PERMIT_STEP,
        PERMIT_STEP,
      );
      if (open?.permit && !open.other) return { status: "queued", output: null };
      if (open?.other && open.parked === open.other) return { status: "waiting", output: null };
      return { status: "running", output: null };
    }
    default:
      return { status: "unknown", output: null };
  }
}
