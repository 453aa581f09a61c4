import { type Duration, parseDuration } from "../../foundation/duration.ts";
import { invalidArgument } from "../../foundation/errors.ts";

/** The budgets of a gateway: what one session (a WebSocket, or one HTTP batch) may use. */
export interface GatewayLimits {
  /**
   * Calls in one HTTP batch, pipelined and nested calls included (a batch that plainly makes
   * more gets 413 before any runs; past it, each further call fails with `LIMIT_EXCEEDED`).
   * Default 100.
   */
  callsPerBatch?: number;
  /** Calls over one WebSocket session (past it, each call fails with `LIMIT_EXCEEDED`). Default 10,000. */
  callsPerSession?: number;
  /** Response bytes of one HTTP batch (more: 413). Default 32 MiB. */
  responseBytesPerBatch?: number;
  /** Response bytes over one WebSocket session (then it is closed, 1008). Default 256 MiB. */
  responseBytesPerSession?: number;
  /** Live subscriptions one session holds at once. Default 16. */
  subscriptionsPerSession?: number;
  /** `result()` / `execute()` calls one session waits on at once. Default 16. */
  pendingResultsPerSession?: number;
  /** Longest `result()` wait (also the wait when a call names none). Default 5 minutes. */
  maxResultWait?: Duration;
  /** Largest incoming message, and largest HTTP batch body. Default 8 MiB. */
  maxMessageBytes?: number;
}

/** {@link GatewayLimits} with every field set; durations in ms. */
export interface ResolvedLimits {
  callsPerBatch: number;
  callsPerSession: number;
  responseBytesPerBatch: number;
  responseBytesPerSession: number;
  subscriptionsPerSession: number;
  pendingResultsPerSession: number;
  maxResultWaitMs: number;
  maxMessageBytes: number;
}

/** Checks `limits` and fills in the defaults. */
export function resolveLimits(limits: GatewayLimits = {}): ResolvedLimits {
  const count = (name: keyof GatewayLimits, value: number | undefined, fallback: number) => {
    const n = value ?? fallback;
    if (!Number.isSafeInteger(n) || n < 1)
      invalidArgument(`limits.${name}`, "must be a positive integer", n);
    return n;
  };
  return {
    callsPerBatch: count("callsPerBatch", limits.callsPerBatch, 100),
    callsPerSession: count("callsPerSession", limits.callsPerSession, 10_000),
    responseBytesPerBatch: count(
      "responseBytesPerBatch",
      limits.responseBytesPerBatch,
      32 * 2 ** 20,
    ),
    responseBytesPerSession: count(
      "responseBytesPerSession",
      limits.responseBytesPerSession,
      256 * 2 ** 20,
    ),
    subscriptionsPerSession: count("subscriptionsPerSession", limits.subscriptionsPerSession, 16),
    pendingResultsPerSession: count(
      "pendingResultsPerSession",
      limits.pendingResultsPerSession,
      16,
    ),
    maxResultWaitMs: parseDuration(limits.maxResultWait ?? "5 minutes"),
    maxMessageBytes: count("maxMessageBytes", limits.maxMessageBytes, 8 * 2 ** 20),
  };
}
