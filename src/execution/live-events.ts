import type { ExecutionInfo } from "./types.ts";

/**
 * The live progress protocol of an execution (the seed `ExecutionState` protocol): a subscriber
 * gets `initial_state` first, then ordered `progress` events, then exactly one terminal event
 * (`completed`, `failed` or `cancelled`), after which the server closes the socket.
 *
 * Every event is one JSON text message on the WebSocket, and the same objects reach capnweb
 * subscribers (`api.subscribe(id, callback)`).
 */
export type LiveEvent =
  | InitialStateEvent
  | ProgressEvent
  | CompletedEvent
  | FailedEvent
  | CancelledEvent
  | DisconnectedEvent;

/** Sent first, on connection: the execution's state as `status()` returns it. */
export interface InitialStateEvent {
  type: "initial_state";
  state: ExecutionInfo;
}

/** A step finished (or, for a tracked execution, was reported). */
export interface ProgressEvent {
  type: "progress";
  executionId: string;
  step: string;
  /** Position of the step in the journal (0-based). */
  stepIndex: number;
  /** The total the execution declared (tracked executions), or null. */
  totalSteps: number | null;
  /** The step's output as JSON, when it is at most {@link MAX_LIVE_OUTPUT_BYTES}. */
  output?: unknown;
  /** True when the output exists but was left out (too big, or not JSON); read the journal. */
  outputOmitted?: true;
  /** When the step finished (ms since the epoch, actor clock). */
  timestamp: number;
}

/** The execution completed. */
export interface CompletedEvent {
  type: "completed";
  executionId: string;
  /** The result as JSON, when it is at most {@link MAX_LIVE_RESULT_BYTES}. */
  result?: unknown;
  /** True when the result was left out (too big, or not JSON); read it with `result()`. */
  resultOmitted?: true;
  timestamp: number;
}

/** The execution failed. */
export interface FailedEvent {
  type: "failed";
  executionId: string;
  /** The error message. */
  error: string;
  code: string;
  step: string | null;
  timestamp: number;
}

/** The execution was cancelled. */
export interface CancelledEvent {
  type: "cancelled";
  executionId: string;
  timestamp: number;
}

/**
 * Only for capnweb subscribers: the stream broke before a terminal event (the actor was reset or
 * redeployed, or the subscription fell too far behind). Subscribe again: the new stream starts
 * with the current state.
 */
export interface DisconnectedEvent {
  type: "disconnected";
  executionId: string;
  reason: string;
}

/** Marks an output that exists but cannot be carried in an event (read it from the journal). */
export const OMITTED: unique symbol = Symbol("omitted");

/** Largest step output carried in a `progress` event, as JSON bytes. */
export const MAX_LIVE_OUTPUT_BYTES = 16 * 1024;
/** Largest result carried in a `completed` event, as JSON bytes. */
export const MAX_LIVE_RESULT_BYTES = 512 * 1024;

/**
 * `value` as JSON when it fits in `limit` bytes (what a JSON client would get), or `undefined`
 * with `omitted` when it does not (too big, a BigInt, a cycle ...).
 */
export function jsonIfSmall(value: unknown, limit: number): { json?: string; omitted: boolean } {
  if (value === undefined) return { omitted: false };
  if (value === OMITTED) return { omitted: true };
  let json: string | undefined;
  // A rough count of the output as it is built: a value of shared references (small in storage,
  // huge as a tree) is given up as soon as it passes the limit, never stringified whole.
  let size = 0;
  try {
    // Values JSON would silently turn into something else ({} for a Map) are left out instead.
    json = JSON.stringify(value, (key, v: unknown) => {
      if (v instanceof Map || v instanceof Set || v instanceof ArrayBuffer || ArrayBuffer.isView(v))
        throw new TypeError("not JSON");
      size += key.length + (typeof v === "string" ? v.length : 4);
      if (size > limit) throw new RangeError("too big");
      return v;
    });
  } catch {
    return { omitted: true };
  }
  if (json === undefined) return { omitted: false };
  // Length in UTF-16 units is at most the UTF-8 byte length times one; check bytes only near the limit.
  if (
    json.length > limit ||
    (json.length * 3 > limit && new TextEncoder().encode(json).byteLength > limit)
  ) {
    return { omitted: true };
  }
  return { json, omitted: false };
}

/** Whether `event` ends the stream. */
export function isTerminalEvent(
  event: LiveEvent,
): event is CompletedEvent | FailedEvent | CancelledEvent {
  return event.type === "completed" || event.type === "failed" || event.type === "cancelled";
}
