import { decodeSync, encode } from "../foundation/codec.ts";
import { BatonError, isBatonError } from "../foundation/errors.ts";
import type { WorkflowEvent } from "../workflow/workflow.ts";
import { eventTimeout } from "./errors.ts";
import { OMITTED } from "./live-events.ts";
import type { Replay } from "./replay.ts";
import { never, type Run } from "./run.ts";
import { type EventRow, type StepRow, TERMINAL } from "./schema.ts";
import type { EventReceipt } from "./types.ts";

/** Event payloads larger than this (encoded, before compression) are refused. */
const MAX_EVENT_BYTES = 1024 * 1024;
/** Events an execution buffers for waits to come (not consumed yet), at most. */
export const MAX_BUFFERED_EVENTS = 1000;
/** Stored bytes of those buffered events, at most. */
export const MAX_BUFFERED_EVENT_BYTES = 16 * 1024 * 1024;

/**
 * `step.sleep` / `step.sleepUntil`: the wake time is journaled when the sleep starts (a replay
 * keeps it), and a `wake` timer ends it; it never ends early, whatever wakes the actor.
 */
export async function runSleep(
  replay: Replay,
  run: Run,
  name: string,
  until: (now: number) => number,
): Promise<void> {
  if (run.dead) return never();
  const begun = replay.begin(run, name, "sleep");
  if (!begun) return never();
  const { seq, occurrence, row } = begun;
  if (row?.status === "completed") return;
  if (run.cancelling) return replay.frontier(run);
  await replay.passGate(run);
  const { host } = replay;
  let wakeAt = row?.wake_at ?? null;
  if (!row) {
    const now = host.now();
    // baton/testing can make sleeps instant (never in production: no hooks there).
    wakeAt = host.testHooks()?.instantSleeps ? now : until(now);
    // The engine's own writes: one that fails crashes the actor (Replay.crash), never the step.
    const journaled = replay.wrote(run, () =>
      host.sql.run(
        `INSERT INTO _baton_steps (seq, name, occurrence, kind, status, attempts, started_at, wake_at)
         VALUES (?, ?, ?, 'sleep', 'sleeping', 1, ?, ?)`,
        seq,
        name,
        occurrence,
        now,
        wakeAt,
      ),
    );
    if (!journaled) return never();
  }
  await replay.until(run, seq, wakeAt ?? 0);
  let completed = 0;
  const ended = replay.wrote(run, () => {
    completed = host.sql.run(
      "UPDATE _baton_steps SET status = 'completed', ended_at = ?, wake_at = NULL WHERE seq = ? AND status <> 'completed'",
      host.now(),
      seq,
    );
  });
  if (!ended) return never();
  if (completed > 0) host.stepDone(seq, name, () => undefined);
}

/**
 * `step.waitForEvent`: takes the oldest buffered event of its type at once, or waits for
 * {@link sendEvent} to hand it one; with a timeout, a `wake` timer ends it with `EVENT_TIMEOUT`.
 * An event is consumed by one wait, once; a wait past its deadline takes none.
 */
export async function runWait<T>(
  replay: Replay,
  run: Run,
  name: string,
  type: string,
  timeoutMs: number | undefined,
): Promise<WorkflowEvent<T>> {
  if (run.dead) return never();
  const begun = replay.begin(run, name, "wait");
  if (!begun) return never();
  const { seq, occurrence, row } = begun;
  if (row?.status === "completed") {
    return replay.replayed(
      run,
      (await run.track(replay.blobs.readStepOutput(row))) as WorkflowEvent<T>,
    );
  }
  if (row?.status === "timed_out") throw eventTimeout(name, type);
  if (run.cancelling) return replay.frontier(run);
  await replay.passGate(run);
  const { host } = replay;
  const { sql } = host;
  if (!row) {
    const now = host.now();
    const wakeAt = timeoutMs === undefined ? null : now + timeoutMs;
    // An event that arrived before the wait is consumed at once (same synchronous block, so
    // sendEvent cannot interleave), in one transaction with the wait's row.
    const taken = sql.one<EventRow>(
      "SELECT * FROM _baton_events WHERE type = ? AND consumed_by IS NULL ORDER BY id LIMIT 1",
      type,
    );
    const insert = () =>
      sql.run(
        `INSERT INTO _baton_steps (seq, name, occurrence, kind, status, attempts, started_at, wake_at, event_type)
         VALUES (?, ?, ?, 'wait', 'waiting', 1, ?, ?, ?)`,
        seq,
        name,
        occurrence,
        now,
        wakeAt,
        type,
      );
    // The engine's own writes: one that fails crashes the actor (Replay.crash), never the step.
    const journaled = replay.wrote(run, () =>
      taken
        ? sql.transaction(() => {
            insert();
            consume(replay, taken, seq);
          })
        : insert(),
    );
    if (!journaled) return never();
    if (taken) announce(replay, taken, seq, name);
  }
  for (;;) {
    if (run.dead) return never();
    const current = replay.stepRow(seq);
    if (current?.status === "completed")
      return (await replay.blobs.readStepOutput(current)) as WorkflowEvent<T>;
    const timeoutAt = current?.wake_at ?? null;
    if (timeoutAt !== null && host.now() >= timeoutAt) {
      const timedOut = replay.wrote(run, () =>
        sql.run(
          "UPDATE _baton_steps SET status = 'timed_out', ended_at = ?, wake_at = NULL WHERE seq = ? AND status = 'waiting'",
          host.now(),
          seq,
        ),
      );
      if (!timedOut) return never();
      throw eventTimeout(name, type);
    }
    // Register before any await, so sendEvent or the timeout timer finds the waiter.
    const woken = replay.sleepOn(seq);
    if (timeoutAt !== null) {
      try {
        await host.timers.schedule("wake", { seq }, { at: timeoutAt }, { key: `wake:${seq}` });
      } catch (error) {
        return replay.crash(run, error);
      }
    }
    await woken;
  }
}

/**
 * Stores an event and hands it to the oldest wait for its type, if any; `wake` resumes that
 * wait's run (or replays). With `dedupeKey`, a repeated delivery changes nothing and returns the
 * first one's receipt.
 *
 * @throws BatonError `EXECUTION_FINISHED`, `PAYLOAD_TOO_LARGE`, `SERIALIZATION_ERROR`.
 */
export async function sendEvent(
  replay: Replay,
  type: string,
  payload: unknown,
  dedupeKey: string | undefined,
  wake: (seq: number) => void,
): Promise<EventReceipt> {
  const { host } = replay;
  const { sql } = host;
  let bytes: Uint8Array;
  try {
    bytes = await encode(payload, MAX_EVENT_BYTES);
  } catch (error) {
    if (!isBatonError(error, "PAYLOAD_TOO_LARGE")) throw error;
    const size = (error.details as { bytes?: number } | undefined)?.bytes;
    throw new BatonError(
      "PAYLOAD_TOO_LARGE",
      `Event payload is ${size ?? "over"} bytes encoded; the limit is ${MAX_EVENT_BYTES}.`,
      { bytes: size ?? null, limit: MAX_EVENT_BYTES },
    );
  }
  const status = replay.row()?.status;
  if (status === undefined || TERMINAL.has(status)) {
    throw new BatonError(
      "EXECUTION_FINISHED",
      `The execution is ${status ?? "gone"}; it takes no more events.`,
      {
        status: status ?? null,
      },
    );
  }
  if (dedupeKey !== undefined) {
    const seen = sql.one<EventRow>("SELECT * FROM _baton_events WHERE dedupe_key = ?", dedupeKey);
    if (seen) {
      const step =
        seen.consumed_by === null ? null : (replay.stepRow(seen.consumed_by)?.name ?? null);
      return { id: seen.id, delivered: seen.consumed_by !== null, step, duplicate: true };
    }
  }
  // A wait past its deadline has timed out even if its timer has not fired yet (late alarm).
  const waiting = sql.one<StepRow>(
    `SELECT * FROM _baton_steps WHERE kind = 'wait' AND status = 'waiting' AND event_type = ?
       AND (wake_at IS NULL OR wake_at > ?)
     ORDER BY seq LIMIT 1`,
    type,
    host.now(),
  );
  // Nobody waits for it: it is buffered, within bounds (a sender cannot grow the object forever).
  if (!waiting) checkBuffer(replay, bytes.byteLength);
  // The event and its delivery commit together: a failure stores neither (the caller retries).
  const event = sql.transaction(() => {
    const stored = sql.one<EventRow>(
      "INSERT INTO _baton_events (type, payload, dedupe_key, received_at) VALUES (?, ?, ?, ?) RETURNING *",
      type,
      bytes,
      dedupeKey ?? null,
      host.now(),
    ) as EventRow;
    if (waiting) consume(replay, stored, waiting.seq);
    return stored;
  });
  if (!waiting) return { id: event.id, delivered: false, step: null, duplicate: false };
  announce(replay, event, waiting.seq, waiting.name);
  // The wait's timeout timer is moot now; one left behind (this failed) wakes it for nothing.
  await host.timers.cancel(`wake:${waiting.seq}`).catch(() => false);
  wake(waiting.seq);
  return { id: event.id, delivered: true, step: waiting.name, duplicate: false };
}

/**
 * @throws BatonError `LIMIT_EXCEEDED` when buffering one more event of `bytes` would pass
 *   {@link MAX_BUFFERED_EVENTS} or {@link MAX_BUFFERED_EVENT_BYTES}.
 */
function checkBuffer(replay: Replay, bytes: number): void {
  const buffered = replay.host.sql.one<{ count: number; bytes: number }>(
    `SELECT COUNT(*) AS count, COALESCE(SUM(length(payload)), 0) AS bytes FROM _baton_events
     WHERE consumed_by IS NULL`,
  );
  const count = buffered?.count ?? 0;
  const total = buffered?.bytes ?? 0;
  if (count + 1 > MAX_BUFFERED_EVENTS || total + bytes > MAX_BUFFERED_EVENT_BYTES) {
    throw new BatonError(
      "LIMIT_EXCEEDED",
      `The execution already buffers ${count} event(s) (${total} bytes) that no wait has taken; the limits are ${MAX_BUFFERED_EVENTS} events and ${MAX_BUFFERED_EVENT_BYTES} bytes. Events are buffered only until a step.waitForEvent takes them: send fewer, or wait for them.`,
      {
        buffered: count,
        bytes: total,
        limit: MAX_BUFFERED_EVENTS,
        bytesLimit: MAX_BUFFERED_EVENT_BYTES,
      },
    );
  }
}

/**
 * Marks `event` consumed by the wait at `seq` and completes that wait. Call it inside the
 * transaction that stores the event or the wait, then {@link announce} once it committed.
 */
function consume(replay: Replay, event: EventRow, seq: number): void {
  const { host } = replay;
  // The wait's output refers to the event row, so the payload is stored once.
  host.sql.run("UPDATE _baton_events SET consumed_by = ? WHERE id = ?", seq, event.id);
  host.sql.run(
    "UPDATE _baton_steps SET status = 'completed', ended_at = ?, wake_at = NULL, output = ? WHERE seq = ?",
    host.now(),
    `event:${event.id}`,
    seq,
  );
}

/** Live subscribers hear of a wait that {@link consume} completed. */
function announce(replay: Replay, event: EventRow, seq: number, step: string): void {
  replay.host.stepDone(seq, step, () => {
    try {
      return {
        type: event.type,
        payload: decodeSync(event.payload),
        receivedAt: event.received_at,
      };
    } catch {
      return OMITTED; // a compressed (big) payload
    }
  });
}
