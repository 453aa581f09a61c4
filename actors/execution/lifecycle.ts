import {
  type ExecutionRow,
  LIFECYCLE,
  type LifecycleEvent,
  NEW_SECRET_SQL,
  type StoredStatus,
} from "../../src/execution/schema.ts";
import { type Duration, parseDuration } from "../../src/foundation/duration.ts";
import { BatonError, checkId, invalidArgument } from "../../src/foundation/errors.ts";
import type { MachineDefinition, Transition } from "../../src/foundation/fsm.ts";
import type { Sql } from "../../src/foundation/sql.ts";
import type { AnyWorkflow } from "../../src/workflow/workflow.ts";

/** Longest execution id (and tracked name, and event dedupe key). */
export const MAX_ID = 256;

/** Retention of a finished execution unless its workflow or its start says otherwise. */
export const DEFAULT_RETENTION = "7 days";
/** Shortest retention: a finished execution stays readable (status, result, journal) this long. */
export const MIN_RETENTION_MS = 60_000;
/** Longest retention: one year. */
export const MAX_RETENTION_MS = 365 * 86_400_000;

/**
 * A retention in ms, from {@link MIN_RETENTION_MS} (1 minute) to {@link MAX_RETENTION_MS}
 * (365 days).
 *
 * @throws BatonError `INVALID_DURATION` (not a duration) or `INVALID_ARGUMENT` (out of bounds).
 */
export function retentionMs(retention: Duration): number {
  const ms = parseDuration(retention);
  if (ms < MIN_RETENTION_MS || ms > MAX_RETENTION_MS) {
    invalidArgument("retention", "must be from 1 minute to 365 days", retention);
  }
  return ms;
}

/** Longest execution timeout: one year. */
export const MAX_EXECUTION_TIMEOUT_MS = 365 * 86_400_000;

/**
 * How long each run of an execution may take, in ms: the start's `timeout`, else the workflow's
 * `executionTimeout`; null for no deadline.
 *
 * @throws BatonError `INVALID_DURATION` (not a duration) or `INVALID_ARGUMENT` (0, a deadline
 *   that has already passed, or over a year).
 */
export function executionTimeoutMs(
  timeout: Duration | undefined,
  workflowDefault: Duration | undefined,
): number | null {
  const value = timeout ?? workflowDefault;
  if (value === undefined) return null;
  const name = timeout === undefined ? "executionTimeout" : "timeout";
  const ms = parseDuration(value);
  if (ms <= 0) {
    invalidArgument(name, "must be more than 0 (a deadline of now has already passed)", value);
  }
  if (ms > MAX_EXECUTION_TIMEOUT_MS) invalidArgument(name, "must be at most 365 days", value);
  return ms;
}

/**
 * The execution's lifecycle machine: its state is the execution row's own `status` column, and
 * every change of status writes the index outbox (`onTransition`) in the same transaction.
 */
export function lifecycleDefinition(
  sql: Sql,
  onTransition: (transition: Transition<StoredStatus, LifecycleEvent>) => void,
): MachineDefinition<StoredStatus, LifecycleEvent> {
  return {
    name: "execution",
    initial: "pending",
    transitions: LIFECYCLE,
    onTransition,
    store: {
      read: () => sql.value<StoredStatus>("SELECT status FROM _baton_execution WHERE id = 1"),
      write: (to, at) => {
        sql.run("UPDATE _baton_execution SET status = ?, updated_at = ? WHERE id = 1", to, at);
      },
    },
  };
}

/** The columns of a new execution row (the rest take their defaults). */
export interface NewExecution {
  id: string;
  workflow: string;
  version: number;
  mode: ExecutionRow["mode"];
  /** Stored input: inline bytes or a value-store reference; null for tracked executions. */
  input: Uint8Array | string | null;
  digest: string;
  retentionMs: number;
  totalSteps?: number | null;
  parent?: { id: string; seq: number; binding: string } | undefined;
  now: number;
  /**
   * Runs an earlier execution under this id made (one deleted, or whose retention ran out): this
   * one's run numbers go on from there, so its child executions' ids are new ones.
   */
  priorRuns?: number;
  /** How long each run may take ({@link executionTimeoutMs}); the deadline is `now` plus it. */
  timeoutMs?: number | null;
}

/** Writes the execution row, `pending` (call it in the transaction that sends `start`). */
export function insertExecution(sql: Sql, row: NewExecution): void {
  sql.run(
    `INSERT INTO _baton_execution (id, execution_id, workflow, version, mode, status, input,
       input_digest, total_steps, retention_ms, created_at, updated_at, parent_id, parent_seq,
       parent_binding, run, timeout_ms, deadline_at, secret)
     VALUES (1, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ${NEW_SECRET_SQL})`,
    row.id,
    row.workflow,
    row.version,
    row.mode,
    row.input,
    row.digest,
    row.totalSteps ?? null,
    row.retentionMs,
    row.now,
    row.now,
    row.parent?.id ?? null,
    row.parent?.seq ?? null,
    row.parent?.binding ?? null,
    (row.priorRuns ?? 0) + 1,
    row.timeoutMs ?? null,
    row.timeoutMs == null ? null : row.now + row.timeoutMs,
  );
}

/**
 * `input` checked by the workflow's Standard Schema, if it has one: the validated value.
 *
 * @throws BatonError `INVALID_INPUT` with `details.issues` (path and message of each).
 */
export async function validateInput(wf: AnyWorkflow, input: unknown): Promise<unknown> {
  if (!wf.schema) return input;
  const result = await wf.schema["~standard"].validate(input);
  if (!result.issues) return result.value;
  const issues = result.issues.map((issue) => ({
    message: issue.message,
    path: (issue.path ?? []).map((p) => String(typeof p === "object" ? p.key : p)),
  }));
  throw new BatonError(
    "INVALID_INPUT",
    `Input of workflow "${wf.name}" is invalid: ${issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ")}.`,
    { workflow: wf.name, issues },
  );
}

/**
 * An execution id as a start gets it: 1 to 256 characters, and the actor's own name (`name`),
 * since one actor is one execution.
 *
 * @throws BatonError `INVALID_ARGUMENT`.
 */
export function checkExecutionId(id: unknown, name: string | undefined): string {
  const checked = checkId(id, "id", MAX_ID);
  if (name !== undefined && name !== checked) {
    invalidArgument(
      "id",
      `must be this actor's name ("${name}"); get the stub with getByName(id)`,
      id,
    );
  }
  return checked;
}

/** `EXECUTION_NOT_FOUND` for the actor with this id. */
export function notFound(id: DurableObjectId): BatonError {
  return new BatonError(
    "EXECUTION_NOT_FOUND",
    `No execution "${id.name ?? id.toString()}": it was never started, or its retention ran out.`,
    { id: id.name ?? null },
  );
}

/** A tracked-execution method called on a workflow execution. */
export function notTracked(row: ExecutionRow, method: string): BatonError {
  return new BatonError(
    "INVALID_TRANSITION",
    `${method}() reports on tracked executions; "${row.execution_id}" is run by workflow "${row.workflow}".`,
    { state: row.status, event: method, validEvents: [] },
  );
}

/** A workflow-execution method called on a tracked execution. */
export function trackedOnly(method: string): BatonError {
  return new BatonError(
    "INVALID_TRANSITION",
    `${method}() needs a workflow execution; this one is tracked (run by outside code).`,
    { event: method, validEvents: ["progress", "complete", "fail", "cancel"] },
  );
}

/** Rows a start created (not found): `execute` waits on the deadline only of one it created. */
const CREATED = new WeakSet<ExecutionRow>();

/** Marks `row` as created by this start. */
export function created(row: ExecutionRow): ExecutionRow {
  CREATED.add(row);
  return row;
}

/** Whether this start created `row`. */
export function wasCreated(row: ExecutionRow): boolean {
  return CREATED.has(row);
}
