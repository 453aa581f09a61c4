import type { Blobs } from "../../src/execution/blobs.ts";
import type { ExecutionRow, StepRow } from "../../src/execution/schema.ts";
import type {
  AttemptRecord,
  ExecutionError,
  ExecutionInfo,
  ExecutionResult,
  ExecutionStatus,
  JournalEntry,
  Value,
} from "../../src/execution/types.ts";
import type { Sql } from "../../src/foundation/sql.ts";

/** Counts over the journal that status() reports, and its latest step. */
export interface JournalStats {
  steps: number;
  done: number | null;
  attempts: number | null;
  busy: number | null;
  waiting: number | null;
  sleeping: number | null;
  current: string | null;
  /** The latest time a step started, retried or ended. */
  changed: number | null;
  [column: string]: string | number | ArrayBuffer | null;
}

/**
 * One pass over the journal for the counts, for what the open steps are doing, and for when a
 * step last changed (a change of the status it derives: running, sleeping, waiting).
 */
export const JOURNAL_STATS = `SELECT COUNT(*) AS steps, SUM(status = 'completed') AS done,
  SUM(attempts) AS attempts, SUM(status IN ('running', 'backoff')) AS busy,
  SUM(status = 'waiting') AS waiting, SUM(status = 'sleeping') AS sleeping,
  MAX(MAX(started_at, COALESCE(ended_at, 0), COALESCE(attempt_started_at, 0))) AS changed,
  (SELECT name FROM _baton_steps ORDER BY seq DESC LIMIT 1) AS current
FROM _baton_steps`;

/** The execution as `status()` reports it, from its row and its journal's counts. */
export function toInfo(row: ExecutionRow, stats: JournalStats | undefined): ExecutionInfo {
  let status: ExecutionStatus = row.status;
  // Running with every open step parked: say what it waits for.
  if (row.status === "running" && !stats?.busy) {
    if (stats?.waiting) status = "waiting";
    else if (stats?.sleeping) status = "sleeping";
  }
  return {
    id: row.execution_id,
    workflow: row.workflow,
    version: row.version,
    mode: row.mode,
    status,
    currentStep: stats?.current ?? null,
    stepCount: stats?.steps ?? 0,
    completedSteps: stats?.done ?? 0,
    totalSteps: row.total_steps,
    attempts: stats?.attempts ?? 0,
    run: row.run,
    createdAt: row.created_at,
    // The row changes with the lifecycle (paused, ended ...); the steps with running, sleeping
    // and waiting, which status derives from them.
    updatedAt: Math.max(row.updated_at, stats?.changed ?? 0),
    endedAt: row.ended_at,
    // Only while it can still time out: an ended execution has no deadline left.
    deadline: row.ended_at === null ? (row.deadline_at ?? null) : null,
    error: row.error ? parseError(row.error) : null,
  };
}

/** The stored error of an execution (a placeholder when none was recorded). */
/** The outcome of a finished execution (its output read from the value store if it is there). */
export async function outcome(row: ExecutionRow, blobs: Blobs): Promise<ExecutionResult> {
  if (row.status === "completed") {
    return { ok: true, status: "completed", value: (await blobs.readOutput()) as Value };
  }
  return {
    ok: false,
    status: row.status as "failed" | "cancelled" | "timed_out",
    error: parseError(row.error),
  };
}

export function parseError(text: string | null): ExecutionError {
  if (!text)
    return {
      code: "UNKNOWN",
      message: "no error recorded",
      name: "Error",
      step: null,
      attempt: null,
    };
  return JSON.parse(text) as ExecutionError;
}

/**
 * Most output bytes one journal page carries (encoded, before compression): a page ends early
 * (after at least one entry) rather than pass it. Page on from the last entry's `seq` + 1.
 */
export const JOURNAL_PAGE_BYTES = 8 * 1024 * 1024;

/**
 * Journal entries from position `from`: at most `limit`, and no more outputs than
 * {@link JOURNAL_PAGE_BYTES} (at least one entry), with completed steps' outputs.
 */
export async function readJournal(
  sql: Sql,
  blobs: Blobs,
  from: number,
  limit: number,
): Promise<JournalEntry[]> {
  const rows = sql.all<StepRow>(
    "SELECT * FROM _baton_steps WHERE seq >= ? ORDER BY seq LIMIT ?",
    from,
    limit,
  );
  const entries: JournalEntry[] = [];
  let bytes = 0;
  for (const row of rows) {
    const entry: JournalEntry = {
      seq: row.seq,
      name: row.name,
      kind: row.kind,
      status: row.status,
      attempts: row.attempts,
      startedAt: row.started_at,
      endedAt: row.ended_at,
      wakeAt: row.wake_at,
      eventType: row.event_type,
    };
    if (row.kind === "do") {
      entry.attemptStartedAt = row.attempt_started_at ?? null;
      if (row.attempt_log) entry.failedAttempts = JSON.parse(row.attempt_log) as AttemptRecord[];
    }
    if (row.kind === "child" && row.event_type) entry.childId = row.event_type;
    if (row.status === "completed" && row.output !== null) {
      let output: { value: unknown; bytes: number } | undefined;
      try {
        output = await blobs.readStepOutputSized(row);
      } catch {
        // One unreadable output must not make the whole journal unreadable.
        entry.outputOmitted = true;
      }
      if (output) {
        bytes += output.bytes;
        if (bytes > JOURNAL_PAGE_BYTES && entries.length > 0) break;
        entry.output = output.value as Value;
      }
    }
    if (row.error) entry.error = JSON.parse(row.error);
    entries.push(entry);
  }
  return entries;
}
