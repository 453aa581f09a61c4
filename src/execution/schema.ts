import type { Migration } from "../foundation/migrations.ts";
import type { StepError } from "../workflow/workflow.ts";
import type { StepKind, StepStatus } from "./types.ts";

/** SQL expression of a new execution secret: 256 random bits, hex. */
export const NEW_SECRET_SQL = "lower(hex(randomblob(32)))";

/** Schema scope of the Execution actor's tables. */
export const EXECUTION_SCHEMA = "baton.execution";

/** The Execution actor's tables. Append-only: add a migration, never edit one. */
export const EXECUTION_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "execution, steps, events",
    up: (sql) => {
      // One row: this object is one execution.
      sql.run(`CREATE TABLE _baton_execution (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        execution_id TEXT NOT NULL,
        workflow TEXT NOT NULL,
        version INTEGER NOT NULL,
        mode TEXT NOT NULL CHECK (mode IN ('workflow', 'tracked')),
        status TEXT NOT NULL CHECK (status IN
          ('pending', 'running', 'paused', 'completed', 'failed', 'cancelled', 'timed_out')),
        input ANY,
        input_digest TEXT NOT NULL,
        output ANY,
        error TEXT,
        total_steps INTEGER,
        run INTEGER NOT NULL DEFAULT 1,
        retention_ms INTEGER NOT NULL,
        -- A child execution reports its outcome to this parent step (through this binding).
        parent_id TEXT,
        parent_seq INTEGER,
        parent_binding TEXT,
        -- cancel() was called: the next run replays to the first unfinished step, compensates, ends.
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        ended_at INTEGER
      ) STRICT`);
      // The journal: one row per step call, in call order (seq), which replay must reproduce.
      sql.run(`CREATE TABLE _baton_steps (
        seq INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        occurrence INTEGER NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('do', 'sleep', 'wait', 'progress', 'child')),
        status TEXT NOT NULL CHECK (status IN
          ('running', 'backoff', 'completed', 'failed', 'sleeping', 'waiting', 'timed_out', 'cancelled')),
        attempts INTEGER NOT NULL DEFAULT 0,
        started_at INTEGER NOT NULL,
        ended_at INTEGER,
        wake_at INTEGER,
        event_type TEXT,
        -- Encoded bytes, or text: 'ref:<key>' (value store) or 'event:<id>' (a consumed event).
        output ANY,
        error TEXT
      ) STRICT`);
      sql.run(`CREATE TABLE _baton_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        type TEXT NOT NULL,
        payload BLOB NOT NULL,
        dedupe_key TEXT UNIQUE,
        received_at INTEGER NOT NULL,
        consumed_by INTEGER
      ) STRICT`);
      sql.run(
        "CREATE INDEX _baton_events_open ON _baton_events (type, id) WHERE consumed_by IS NULL",
      );
    },
  },
  {
    version: 2,
    name: "index outbox",
    up: (sql) => {
      // Changes not yet delivered to the ExecutionIndex, written in the transaction of the change
      // itself. `version` only grows (AUTOINCREMENT), also across a purge and a new start.
      sql.run(`CREATE TABLE _baton_index_outbox (
        version INTEGER PRIMARY KEY AUTOINCREMENT,
        execution_id TEXT NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0
      ) STRICT`);
    },
  },
  {
    version: 3,
    name: "execution secret",
    up: (sql) => {
      // A random secret per execution, never shown: step secrets (lock waiter ids, permit
      // waiters) are derived from it, so they are unguessable yet stable across retries.
      sql.run("ALTER TABLE _baton_execution ADD COLUMN secret TEXT");
      // An execution that existed before may have waited for a permit under the predictable
      // waiter id of earlier versions: its permit path also withdraws that one.
      sql.run("ALTER TABLE _baton_execution ADD COLUMN legacy_waiters INTEGER NOT NULL DEFAULT 0");
      sql.run(
        `UPDATE _baton_execution SET secret = ${NEW_SECRET_SQL}, legacy_waiters = 1 WHERE secret IS NULL`,
      );
    },
  },
  {
    version: 4,
    name: "attempt history",
    up: (sql) => {
      // When the step's current (or last) attempt started; rows from before stay NULL.
      sql.run("ALTER TABLE _baton_steps ADD COLUMN attempt_started_at INTEGER");
      // The attempts that failed, as a JSON array of AttemptRecord (written on failure only).
      sql.run("ALTER TABLE _baton_steps ADD COLUMN attempt_log TEXT");
    },
  },
  {
    version: 5,
    name: "execution deadline",
    up: (sql) => {
      // How long each run may take (the start's `timeout` or the workflow's `executionTimeout`),
      // and when the current run times out; NULL: no deadline.
      sql.run("ALTER TABLE _baton_execution ADD COLUMN timeout_ms INTEGER");
      sql.run("ALTER TABLE _baton_execution ADD COLUMN deadline_at INTEGER");
    },
  },
];

/** Failed attempts kept per step (the oldest are dropped first), and their message's length. */
export const ATTEMPT_LOG_LIMIT = 50;
const ATTEMPT_MESSAGE_CHARS = 1024;

/**
 * SQL that appends one failed attempt to a step's `attempt_log`, in the UPDATE that records the
 * failure (no statement of its own): `attempt` and its start come from the row; bind
 * {@link attemptRecord}'s JSON after the statement's other parameters.
 */
export const APPEND_ATTEMPT_SQL = `attempt_log = (
  SELECT json_group_array(json(value) ORDER BY k) FROM (
    SELECT k, value FROM (
      SELECT CAST(key AS INTEGER) AS k, value FROM json_each(COALESCE(attempt_log, '[]'))
      UNION ALL
      SELECT 1000000000, json_set(?, '$.startedAt', attempt_started_at)
    ) ORDER BY k DESC LIMIT ${ATTEMPT_LOG_LIMIT}
  )
)`;

/** The JSON of a failed attempt for {@link APPEND_ATTEMPT_SQL} (its start is filled in there). */
export function attemptRecord(attempt: number, endedAt: number, error: StepError): string {
  const message =
    error.message.length > ATTEMPT_MESSAGE_CHARS
      ? `${error.message.slice(0, ATTEMPT_MESSAGE_CHARS)}…`
      : error.message;
  return JSON.stringify({
    attempt,
    startedAt: null,
    endedAt,
    error: { name: error.name, message, ...(error.code ? { code: error.code } : {}) },
  });
}

/** Lifecycle states stored for an execution. */
export type StoredStatus =
  | "pending"
  | "running"
  | "paused"
  | "completed"
  | "failed"
  | "cancelled"
  | "timed_out";

export interface ExecutionRow {
  execution_id: string;
  workflow: string;
  version: number;
  mode: "workflow" | "tracked";
  status: StoredStatus;
  input_digest: string;
  error: string | null;
  total_steps: number | null;
  run: number;
  retention_ms: number;
  parent_id: string | null;
  parent_seq: number | null;
  parent_binding: string | null;
  /** 0; 1 when a cancel was asked for; {@link CANCEL_WITHOUT_COMPENSATION} for one without compensations. */
  cancel_requested: number;
  created_at: number;
  updated_at: number;
  ended_at: number | null;
  /** How long each run may take; null: no deadline. */
  timeout_ms: number | null;
  /** When the current run times out (`EXECUTION_TIMEOUT`); null: no deadline. */
  deadline_at: number | null;
  [column: string]: string | number | ArrayBuffer | null;
}

export type { StepKind, StepStatus } from "./types.ts";

export interface StepRow {
  seq: number;
  name: string;
  occurrence: number;
  kind: StepKind;
  status: StepStatus;
  attempts: number;
  started_at: number;
  ended_at: number | null;
  wake_at: number | null;
  event_type: string | null;
  output: ArrayBuffer | string | null;
  error: string | null;
  attempt_started_at: number | null;
  attempt_log: string | null;
  [column: string]: string | number | ArrayBuffer | null;
}

export interface EventRow {
  id: number;
  type: string;
  payload: ArrayBuffer;
  dedupe_key: string | null;
  received_at: number;
  consumed_by: number | null;
  [column: string]: string | number | ArrayBuffer | null;
}

/** Lifecycle transitions of an execution (for the persisted state machine). */
export type LifecycleEvent =
  | "start"
  | "pause"
  | "resume"
  | "complete"
  | "fail"
  | "cancel"
  | "time_out"
  | "restart";

export const LIFECYCLE: {
  readonly [S in StoredStatus]?: { readonly [E in LifecycleEvent]?: StoredStatus };
} = {
  pending: { start: "running", cancel: "cancelled", time_out: "timed_out" },
  running: {
    pause: "paused",
    complete: "completed",
    fail: "failed",
    cancel: "cancelled",
    time_out: "timed_out",
  },
  // A step in flight when the execution was paused may still end it.
  paused: {
    resume: "running",
    cancel: "cancelled",
    complete: "completed",
    fail: "failed",
    time_out: "timed_out",
  },
  completed: { restart: "running" },
  failed: { restart: "running" },
  cancelled: { restart: "running" },
  timed_out: { restart: "running" },
};

export const TERMINAL: ReadonlySet<StoredStatus> = new Set([
  "completed",
  "failed",
  "cancelled",
  "timed_out",
]);

/** Every column of the execution row but its (possibly big) input and output. */
export const ROW_COLUMNS = `execution_id, workflow, version, mode, status, input_digest, error, total_steps,
  run, retention_ms, parent_id, parent_seq, parent_binding, cancel_requested, created_at, updated_at,
  ended_at, timeout_ms, deadline_at`;

/** Journal name prefix of a saga compensation step. */
export const COMPENSATE_PREFIX = "$compensate:";
/** Journal name prefix of `step.checkpoint(name)`. */
export const CHECKPOINT_PREFIX = "$checkpoint:";
/** Journal name prefix of the marker `step.patched(id)` records on new code. */
export const PATCH_PREFIX = "$patch:";

/** `cancel_requested` of a cancel that runs no compensation (Workflows' `terminate()`). */
export const CANCEL_WITHOUT_COMPENSATION = 2;
/** `cancel_requested` of a run past its deadline: it ends `timed_out`, compensated as on cancel. */
export const CANCEL_FOR_TIMEOUT = 3;
/** A run past its deadline that a cancel without compensations (terminate, delete) took over. */
export const CANCEL_FOR_TIMEOUT_WITHOUT_COMPENSATION = 4;

/** Whether a stopping run ends `timed_out` (its deadline passed), by its `cancel_requested`. */
export function endsTimedOut(cancelRequested: number): boolean {
  return (
    cancelRequested === CANCEL_FOR_TIMEOUT ||
    cancelRequested === CANCEL_FOR_TIMEOUT_WITHOUT_COMPENSATION
  );
}

/** Whether a stopping run compensates its completed steps, by its `cancel_requested`. */
export function compensates(cancelRequested: number): boolean {
  return (
    cancelRequested !== CANCEL_WITHOUT_COMPENSATION &&
    cancelRequested !== CANCEL_FOR_TIMEOUT_WITHOUT_COMPENSATION
  );
}
