import { parseDuration } from "../foundation/duration.ts";
import { invalidArgument } from "../foundation/errors.ts";
import type { RetryDelayFunction, RetryPolicy, StepConfig } from "../workflow/workflow.ts";

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
  /** A delay computed per failure (then `delay`, `backoff` and `maxDelay` do not apply). */
  delayFn?: RetryDelayFunction;
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
  const maxDelay = parseDuration(policy.maxDelay ?? DEFAULT_RETRIES.maxDelay);
  if (typeof policy.delay === "function") {
    return { limit, backoff, delay: 0, maxDelay, delayFn: policy.delay };
  }
  return { limit, backoff, delay: parseDuration(policy.delay ?? DEFAULT_RETRIES.delay), maxDelay };
}

/** The configuration a step's attempts see (`attempt.config`): the policy and the timeout. */
export function stepConfig(policy: ResolvedPolicy, timeoutMs: number | undefined): StepConfig {
  return {
    retries: {
      limit: policy.limit,
      ...(policy.delayFn ? {} : { delay: policy.delay }),
      backoff: policy.backoff,
      maxDelay: policy.maxDelay,
    },
    ...(timeoutMs === undefined ? {} : { timeout: timeoutMs }),
  };
}
