import type { Blobs } from "../../src/execution/blobs.ts";
import type { ExecutionRow } from "../../src/execution/schema.ts";
import type { ExecutionError, Value } from "../../src/execution/types.ts";
import { encode } from "../../src/foundation/codec.ts";
import type { Duration } from "../../src/foundation/duration.ts";
import { BatonError, checkId, invalidArgument } from "../../src/foundation/errors.ts";
import type { Sql } from "../../src/foundation/sql.ts";
import type { ControlHost } from "./control.ts";
import { DEFAULT_RETENTION, insertExecution, MAX_ID, retentionMs } from "./lifecycle.ts";

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
  // All or nothing: a failure leaves no entry, no orphaned output and no moved updated_at.
  sql.transaction(() => {
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
  });
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

/** What the tracked-execution methods need of the Execution actor. */
export interface TrackedHost extends ControlHost {
  checkId(options: { id: string } | undefined): string;
  requireTracked(method: string): ExecutionRow;
  stepDone(seq: number, step: string, output: () => unknown, index: number): void;
  /** Creates the actor's tables if this is its first write. */
  ensureSchema(): void;
}

/** `track()`: creates the tracked execution (idempotent for the same name and total). */
export function startTracked(
  host: TrackedHost,
  name: string,
  options: { id: string; totalSteps?: number; retention?: Duration },
): ExecutionRow {
  checkId(name, "name", MAX_ID);
  const id = host.checkId(options);
  const { total, digest } = trackedTotal(options?.totalSteps);
  const existing = host.engine.row();
  if (existing) {
    if (
      existing.mode === "tracked" &&
      existing.workflow === name &&
      existing.input_digest === digest
    ) {
      return existing;
    }
    throw new BatonError("EXECUTION_CONFLICT", `Execution "${id}" already exists.`, { id });
  }
  const retention = retentionMs(options?.retention ?? DEFAULT_RETENTION);
  host.ensureSchema();
  host.sql.transaction(() => {
    insertExecution(host.sql, {
      id,
      workflow: name,
      version: 1,
      mode: "tracked",
      input: null,
      digest,
      totalSteps: total,
      retentionMs: retention,
      now: host.now(),
    });
    host.lifecycle.send("start");
  });
  return host.requireRow();
}

/** `progress()`: journals a reported step. */
export async function reportProgress(
  host: TrackedHost,
  step: string,
  options: { index?: number; output?: Value },
): Promise<void> {
  const index = options?.index;
  checkProgress(step, index);
  host.requireTracked("progress");
  // Encode first; then check the state, pick the position and write with no await between,
  // so concurrent reports (and a concurrent complete or cancel) cannot interleave.
  const bytes = options?.output === undefined ? null : await encode(options.output);
  requireRunning(host.requireTracked("progress"));
  const seq = insertProgress(host.sql, host.engine.blobs, step, index, bytes, host.now());
  host.stepDone(seq, step, () => options?.output, index ?? seq);
}

/** Throws `INVALID_TRANSITION` (listing the valid events) unless `event` is valid now. */
function guard(host: TrackedHost, event: "complete" | "fail"): void {
  if (!host.lifecycle.can(event)) host.lifecycle.send(event);
}

/** `complete()`: ends the tracked execution with its result. */
export async function completeTracked(host: TrackedHost, result: Value): Promise<void> {
  host.requireTracked("complete");
  const bytes = await encode(result);
  guard(host, "complete");
  // The result is written in the transaction of the transition: a failure changes nothing.
  await host.engine.finish(null, "complete", () =>
    host.sql.run(
      "UPDATE _baton_execution SET output = ?, ended_at = ? WHERE id = 1",
      host.engine.blobs.store("output", bytes),
      host.now(),
    ),
  );
}

/** `fail()`: ends the tracked execution with an error. */
export async function failTracked(
  host: TrackedHost,
  error: string | { message: string; code?: string },
): Promise<void> {
  const info = trackedFailure(error, null);
  host.requireTracked("fail");
  guard(host, "fail");
  info.step = host.currentStep();
  // The error is written in the transaction of the transition: a failure changes nothing.
  await host.engine.finish(null, "fail", () =>
    host.sql.run(
      "UPDATE _baton_execution SET error = ?, ended_at = ? WHERE id = 1",
      JSON.stringify(info),
      host.now(),
    ),
  );
}
