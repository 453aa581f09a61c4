import type { Blobs } from "../../src/execution/blobs.ts";
import type { ExecutionRow } from "../../src/execution/schema.ts";
import type { ExecutionError } from "../../src/execution/types.ts";
import { BatonError, checkId, invalidArgument } from "../../src/foundation/errors.ts";
import type { Sql } from "../../src/foundation/sql.ts";

/**
 * Tracked executions: run by outside code, which reports their steps (the seed
 * `ExecutionState` API). The checks and writes behind the Execution actor's `track`,
 * `progress` and `fail`.
 */

/** The total steps of a tracked execution (checked), and the digest its idempotency uses. */
export function trackedTotal(totalSteps: number | undefined): {
  total: number | null;
  digest: string;
} {
  if (totalSteps !== undefined && (!Number.isSafeInteger(totalSteps) || totalSteps < 0)) {
    invalidArgument("totalSteps", "must be an integer >= 0", totalSteps);
  }
  return { total: totalSteps ?? null, digest: `tracked:${totalSteps ?? ""}` };
}

/** Checks a progress report's step name and index. */
export function checkProgress(step: string, index: number | undefined): void {
  checkId(step, "step");
  if (index !== undefined && (!Number.isSafeInteger(index) || index < 0)) {
    invalidArgument("index", "must be an integer >= 0", index);
  }
}

/** Journals a reported step at the next position (no await: reports cannot interleave). */
export function insertProgress(
  sql: Sql,
  blobs: Blobs,
  step: string,
  index: number | undefined,
  bytes: Uint8Array | null,
  now: number,
): number {
  const seq = (sql.value<number>("SELECT MAX(seq) FROM _baton_steps") ?? -1) + 1;
  sql.run(
    `INSERT INTO _baton_steps (seq, name, occurrence, kind, status, attempts, started_at, ended_at, output)
     VALUES (?, ?, ?, 'progress', 'completed', 1, ?, ?, ?)`,
    seq,
    step,
    index ?? seq,
    now,
    now,
    bytes === null ? null : blobs.store(`step:${seq}`, bytes),
  );
  sql.run("UPDATE _baton_execution SET updated_at = ? WHERE id = 1", now);
  return seq;
}

/** The error a tracked execution fails with: a message, or `{ message, code }` (checked). */
export function trackedFailure(
  error: string | { message: string; code?: string },
  step: string | null,
): ExecutionError {
  const message = typeof error === "string" ? error : error?.message;
  if (typeof message !== "string" || message.length === 0 || message.length > 10_000) {
    invalidArgument(
      "error",
      "must be a message of 1 to 10000 characters, or { message, code? }",
      error,
    );
  }
  const code =
    typeof error === "object" && typeof error.code === "string"
      ? checkId(error.code, "error.code", 128)
      : "FAILED";
  return { code, message, name: "Error", step, attempt: null };
}

/**
 * Progress is reported while a tracked execution runs.
 *
 * @throws BatonError `INVALID_TRANSITION` otherwise.
 */
export function requireRunning(row: ExecutionRow): void {
  if (row.status !== "running") {
    throw new BatonError(
      "INVALID_TRANSITION",
      `Execution is ${row.status}; progress can only be reported while it runs.`,
      { state: row.status, event: "progress", validEvents: [] },
    );
  }
}
