import { parseDuration } from "../foundation/duration.ts";
import { invalidArgument } from "../foundation/errors.ts";
import type { RetryPolicy } from "../workflow/workflow.ts";

/** Defaults of a step's retry policy (Cloudflare Workflows' defaults, plus a cap). */
export const DEFAULT_RETRIES = {
  limit: 5,
  delay: "10 seconds",
  backoff: "exponential",
  maxDelay: "1 hour",
} as const;

/** A retry policy with every field checked and every duration in ms. */
export type ResolvedPolicy = {
  limit: number;
  delay: number;
  maxDelay: number;
  backoff: NonNullable<RetryPolicy["backoff"]>;
};

/**
 * Checks `policy` and fills in the defaults.
 *
 * @throws BatonError `INVALID_ARGUMENT` or `INVALID_DURATION`.
 */
export function resolvePolicy(policy: RetryPolicy): ResolvedPolicy {
  const limit = policy.limit ?? DEFAULT_RETRIES.limit;
  if (!Number.isSafeInteger(limit) || limit < 0 || limit > 1000) {
    invalidArgument("retries.limit", "must be an integer from 0 to 1000", limit);
  }
  const backoff = policy.backoff ?? "exponential";
  if (!["constant", "linear", "exponential"].includes(backoff)) {
    invalidArgument("retries.backoff", 'must be "constant", "linear" or "exponential"', backoff);
  }
  return {
    limit,
    backoff,
    delay: parseDuration(policy.delay ?? DEFAULT_RETRIES.delay),
    maxDelay: parseDuration(policy.maxDelay ?? DEFAULT_RETRIES.maxDelay),
  };
}
