import type { Sql } from "../foundation/sql.ts";
import type { Blobs } from "./blobs.ts";
import { COMPENSATE_PREFIX, type ExecutionRow, type StepRow, TERMINAL } from "./schema.ts";
import type { AttemptRecord, ExecutionError, Value } from "./types.ts";

/**
 * One event of an execution's history, in Cloudflare Workflows' `WorkflowInstanceEvent` shape
 * (without `instanceId` and `eventId`, which the subscription adds). `key` names the event
 * uniquely and stably, so a reader that polls never sees one twice.
 */
export type HistoryEvent = { key: string; timestamp: number } & (
  | { type: "workflow_started" }
  | { type: "workflow_completed"; output?: Value }
  | { type: "workflow_errored"; error: { name: string; message: string } }
  | { type: "workflow_terminated" }
  | { type: "step_started"; stepName: string }
  | { type: "step_completed"; stepName: string; output?: Value }
  | { type: "step_errored"; stepName: string }
  | { type: "attempt_started"; stepName: string; attempt: number }
  | { type: "attempt_completed"; stepName: string; attempt: number }
  | {
      type: "attempt_errored";
      stepName: string;
      attempt: number;
      error: { name: string; message: string };
    }
  | { type: "sleep_started"; stepName: string; durationMs: number }
  | { type: "sleep_completed"; stepName: string }
  | { type: "wait_started"; stepName: string; eventType: string }
  | { type: "wait_completed"; stepName: string }
  | { type: "wait_timed_out"; stepName: string }
  | { type: "rollback_step_started"; stepName: string }
  | { type: "rollback_step_completed"; stepName: string }
  | { type: "rollback_step_errored"; stepName: string; error: { name: string; message: string } }
);

/** A page of history: the events at or after `since` the reader has not seen, oldest first. */
export interface HistoryPage {
  events: HistoryEvent[];
  /** True once the execution has ended and this page holds the rest of its events. */
  ended: boolean;
  /** True when more events are there already (the page was full): read again at once. */
  more?: true;
}

type Draft = { event: HistoryEvent; seq: number; order: number; row?: StepRow };

const STEP_COLUMNS =
  "seq, name, occurrence, kind, status, attempts, started_at, ended_at, wake_at, event_type, output, error, attempt_started_at, attempt_log";

/**
 * The history of the execution's current run from `since` (ms, inclusive) on, without the
 * events whose keys are in `seen`: derived from the journal and the execution row, so it costs
 * no write on any step. Step outputs are read only for the events returned.
 */
export async function readHistory(
  sql: Sql,
  blobs: Blobs,
  row: ExecutionRow,
  since: number,
  seen: ReadonlySet<string>,
): Promise<HistoryPage> {
  const run = `r${row.run}:`;
  const drafts: Draft[] = [];
  const add = (event: HistoryEvent, seq: number, order: number, step?: StepRow) => {
    if (event.timestamp >= since && !seen.has(event.key)) {
      drafts.push({ event, seq, order, ...(step ? { row: step } : {}) });
    }
  };
  // Every run starts the history (a restarted run's at the creation time: it sorts first).
  add({ key: `${run}start`, timestamp: row.created_at, type: "workflow_started" }, -1, 0);
  // A step whose every event is older than `since` has ended before it: skip it.
  const steps = sql.all<StepRow>(
    `SELECT ${STEP_COLUMNS} FROM _baton_steps WHERE ended_at IS NULL OR ended_at >= ? ORDER BY seq`,
    since,
  );
  for (const step of steps) stepEvents(step, `${run}${step.seq}:`, add);
  const ended = TERMINAL.has(row.status);
  if (ended) {
    // After everything it did: a cancel stamps ended_at when asked, before its compensations.
    const at = Math.max(row.ended_at ?? 0, row.updated_at);
    const key = `${run}end`;
    const end = Number.MAX_SAFE_INTEGER;
    if (row.status === "completed") add({ key, timestamp: at, type: "workflow_completed" }, end, 0);
    else if (row.status === "cancelled")
      add({ key, timestamp: at, type: "workflow_terminated" }, end, 0);
    else {
      const error = row.error ? (JSON.parse(row.error) as ExecutionError) : undefined;
      add(
        {
          key,
          timestamp: at,
          type: "workflow_errored",
          error: { name: error?.name ?? "Error", message: error?.message ?? "" },
        },
        end,
        0,
      );
    }
  }
  drafts.sort(
    (a, b) => a.event.timestamp - b.event.timestamp || a.seq - b.seq || a.order - b.order,
  );
  // A page: at most MAX_PAGE_EVENTS events and about MAX_PAGE_BYTES of outputs (at least one).
  const page: HistoryEvent[] = [];
  let bytes = 0;
  for (const draft of drafts) {
    if (page.length >= MAX_PAGE_EVENTS || (bytes > MAX_PAGE_BYTES && page.length > 0)) {
      return { events: page, ended: false, more: true };
    }
    const { event } = draft;
    try {
      if (event.type === "step_completed" && draft.row) {
        const output = await blobs.readStepOutputSized(draft.row);
        bytes += output.bytes;
        event.output = output.value as Value;
      }
      if (event.type === "workflow_completed") event.output = (await blobs.readOutput()) as Value;
    } catch {
      // An output that cannot be read back here (too big, damaged) is left out of the event.
    }
    page.push(event);
  }
  return { events: page, ended };
}

/** Most events in one page of history. */
const MAX_PAGE_EVENTS = 500;
/** Step outputs in one page of history, about (a page ends after the output that passes it). */
const MAX_PAGE_BYTES = 8 * 1024 * 1024;

/** The events of one journal row. */
function stepEvents(
  step: StepRow,
  key: string,
  add: (event: HistoryEvent, seq: number, order: number, row?: StepRow) => void,
): void {
  const { seq } = step;
  const compensation = step.name.startsWith(COMPENSATE_PREFIX);
  if (step.name.startsWith("$") && !compensation) return; // Baton's own: permit, checkpoints
  const stepName = compensation ? step.name.slice(COMPENSATE_PREFIX.length) : step.name;
  const error = step.error ? (JSON.parse(step.error) as { name: string; message: string }) : null;
  const brief = (e: { name: string; message: string } | null) => ({
    name: e?.name ?? "Error",
    message: e?.message ?? "",
  });
  if (compensation) {
    add(
      { key: `${key}rb`, timestamp: step.started_at, type: "rollback_step_started", stepName },
      seq,
      0,
    );
    if (step.status === "completed" && step.ended_at !== null) {
      add(
        {
          key: `${key}rb-done`,
          timestamp: step.ended_at,
          type: "rollback_step_completed",
          stepName,
        },
        seq,
        1,
      );
    } else if (step.status === "failed" && step.ended_at !== null) {
      add(
        {
          key: `${key}rb-err`,
          timestamp: step.ended_at,
          type: "rollback_step_errored",
          stepName,
          error: brief(error),
        },
        seq,
        1,
      );
    }
    return;
  }
  if (step.kind === "sleep") {
    // A finished sleep no longer has its wake time: it slept until it ended.
    const until = step.wake_at ?? step.ended_at ?? step.started_at;
    const durationMs = Math.max(0, until - step.started_at);
    add(
      {
        key: `${key}sleep`,
        timestamp: step.started_at,
        type: "sleep_started",
        stepName,
        durationMs,
      },
      seq,
      0,
    );
    if (step.status === "completed" && step.ended_at !== null) {
      add(
        { key: `${key}slept`, timestamp: step.ended_at, type: "sleep_completed", stepName },
        seq,
        1,
      );
    }
    return;
  }
  if (step.kind === "wait") {
    add(
      {
        key: `${key}wait`,
        timestamp: step.started_at,
        type: "wait_started",
        stepName,
        eventType: step.event_type ?? "",
      },
      seq,
      0,
    );
    if (step.ended_at !== null && step.status === "completed") {
      add(
        { key: `${key}waited`, timestamp: step.ended_at, type: "wait_completed", stepName },
        seq,
        1,
      );
    } else if (step.ended_at !== null && step.status === "timed_out") {
      add(
        { key: `${key}wait-timeout`, timestamp: step.ended_at, type: "wait_timed_out", stepName },
        seq,
        1,
      );
    }
    return;
  }
  // do, child and progress steps.
  add({ key: `${key}start`, timestamp: step.started_at, type: "step_started", stepName }, seq, 0);
  let order = 1;
  const failures = step.attempt_log ? (JSON.parse(step.attempt_log) as AttemptRecord[]) : [];
  for (const failure of failures) {
    const attempt = failure.attempt;
    if (failure.startedAt !== null) {
      add(
        {
          key: `${key}a${attempt}`,
          timestamp: failure.startedAt,
          type: "attempt_started",
          stepName,
          attempt,
        },
        seq,
        order++,
      );
    }
    add(
      {
        key: `${key}a${attempt}-err`,
        timestamp: failure.endedAt,
        type: "attempt_errored",
        stepName,
        attempt,
        error: brief(failure.error),
      },
      seq,
      order++,
    );
  }
  const last = step.attempts;
  const lastFailed = failures.some((f) => f.attempt === last);
  if (step.kind === "do" && !lastFailed && step.status !== "failed" && last > 0) {
    add(
      {
        key: `${key}a${last}`,
        timestamp: step.attempt_started_at ?? step.started_at,
        type: "attempt_started",
        stepName,
        attempt: last,
      },
      seq,
      order++,
    );
  }
  if (step.status === "completed" && step.ended_at !== null) {
    if (step.kind === "do") {
      add(
        {
          key: `${key}a${last}-done`,
          timestamp: step.ended_at,
          type: "attempt_completed",
          stepName,
          attempt: last,
        },
        seq,
        order++,
      );
    }
    add(
      { key: `${key}done`, timestamp: step.ended_at, type: "step_completed", stepName },
      seq,
      order++,
      step,
    );
  } else if ((step.status === "failed" || step.status === "timed_out") && step.ended_at !== null) {
    add(
      { key: `${key}err`, timestamp: step.ended_at, type: "step_errored", stepName },
      seq,
      order++,
    );
  }
}

/**
 * Reads history until there is something new, the execution has ended, or `waitMs` passes:
 * `changed()` resolves when the execution may have moved (a step finished, a status changed);
 * between those it looks again every second (attempts that fail do not signal).
 */
export async function waitForHistory(
  read: () => Promise<HistoryPage>,
  changed: () => Promise<void>,
  waitMs: number,
): Promise<HistoryPage> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const page = await read();
    const left = deadline - Date.now();
    if (page.events.length > 0 || page.ended || left <= 0) return page;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      changed(),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, Math.min(left, 1_000));
      }),
    ]);
    clearTimeout(timer);
  }
}
