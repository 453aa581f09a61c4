import { type Duration, parseDuration } from "../../src/foundation/duration.ts";
import { checkId, invalidArgument } from "../../src/foundation/errors.ts";

/** Longest wait of one `history()` call. */
const MAX_HISTORY_WAIT_MS = 30_000;
/**
 * Most keys a `history()` caller may say it has seen (those of the events at `since`: steps
 * without I/O between them can share one millisecond).
 */
const MAX_SEEN = 10_000;

/** Checks the options of `ExecutionActor.history()`. */
export function checkHistoryOptions(options: {
  since?: number;
  seen?: string[];
  wait?: Duration;
}): { since: number; seen: Set<string>; waitMs: number } {
  const since = options?.since ?? 0;
  if (!Number.isSafeInteger(since) || since < 0) {
    invalidArgument("since", "must be a time in ms since the epoch (an integer >= 0)", since);
  }
  const seen = options?.seen ?? [];
  if (!Array.isArray(seen) || seen.length > MAX_SEEN) {
    invalidArgument("seen", `must be an array of at most ${MAX_SEEN} event keys`, seen);
  }
  for (const key of seen) checkId(key, "seen[]", 64);
  const waitMs = options?.wait === undefined ? 0 : parseDuration(options.wait);
  if (waitMs > MAX_HISTORY_WAIT_MS)
    invalidArgument("wait", "must be at most 30 seconds", options.wait);
  return { since, seen: new Set(seen), waitMs };
}

/** A signal that the execution may have moved: every waiter of the moment wakes, once. */
export class Changes {
  #next: { promise: Promise<void>; resolve: () => void } | null = null;

  /** Resolves at the next {@link Changes.signal}. */
  next(): Promise<void> {
    if (!this.#next) {
      let resolve = () => {};
      const promise = new Promise<void>((r) => {
        resolve = r;
      });
      this.#next = { promise, resolve };
    }
    return this.#next.promise;
  }

  signal(): void {
    const next = this.#next;
    this.#next = null;
    next?.resolve();
  }
}
