import { Cron } from "croner";
import { invalidArgument } from "../../src/foundation/errors.ts";

/** Shortest `every` interval. */
export const MIN_EVERY_MS = 1000;

/** When a schedule fires: a cron expression in a time zone, or a fixed interval. */
export interface Timing {
  /** The first fire strictly after `after` (within the schedule's window), or null. */
  next(after: number): number | null;
  /** Up to `n` fires `f` with `after < f <= until` (within the window), newest first. */
  latest(until: number, n: number, after: number): number[];
}

/** A schedule's timing, as its row stores it. */
export interface TimingSpec {
  cron: string | null;
  everyMs: number | null;
  timezone: string;
  /** The first fire of an `every` schedule, and no fire (of either kind) before it. */
  anchor: number;
  startAt: number | null;
  endAt: number | null;
}

/**
 * The timing of a stored (already checked) schedule. Cron expressions are evaluated by croner in
 * the schedule's IANA time zone: a daily local time that does not exist on a spring-forward day
 * fires once, at the first instant after the gap; one that happens twice on a fall-back day fires
 * once, at its first occurrence. (A pattern that names several minutes of the repeated hour, such
 * as every 30 minutes at 02:xx, fires at each of them in both passes.)
 */
export function timingOf(spec: TimingSpec): Timing {
  const low = spec.startAt ?? Number.NEGATIVE_INFINITY;
  const high = spec.endAt ?? Number.POSITIVE_INFINITY;
  const inWindow = (t: number | null) => (t !== null && t >= low && t <= high ? t : null);
  if (spec.cron !== null) {
    const cron = cronOf(spec.cron, spec.timezone);
    return {
      next(after) {
        // Nothing before the window: start looking just before it opens.
        const from = Math.max(after, low - 1);
        return inWindow(cron.nextRun(new Date(from))?.getTime() ?? null);
      },
      latest(until, n, after) {
        const ceiling = Math.min(until, high);
        if (ceiling <= after || n <= 0) return [];
        return cron
          .previousRuns(n, new Date(ceiling + 1))
          .map((d) => d.getTime())
          .filter((t) => t > after && t >= low);
      },
    };
  }
  const every = spec.everyMs ?? MIN_EVERY_MS;
  const anchor = spec.anchor;
  /** The index of the last fire at or before `t` (-1 before the anchor). */
  const indexAt = (t: number) => (t < anchor ? -1 : Math.floor((t - anchor) / every));
  return {
    next(after) {
      return inWindow(anchor + (indexAt(after) + 1) * every);
    },
    latest(until, n, after) {
      const out: number[] = [];
      for (let k = indexAt(Math.min(until, high)); k >= 0 && out.length < n; k--) {
        const t = anchor + k * every;
        if (t <= after) break;
        out.push(t);
      }
      return out;
    },
  };
}

/**
 * A croner job for `pattern` in `timezone` (never started: only its arithmetic is used).
 *
 * @throws BatonError `INVALID_ARGUMENT` naming a bad expression or time zone.
 */
export function cronOf(pattern: string, timezone: string): Cron {
  checkTimezone(timezone);
  try {
    return new Cron(pattern, { timezone, paused: true });
  } catch (error) {
    const why = error instanceof Error ? error.message.replace(/^CronPattern: /, "") : "invalid";
    return invalidArgument(
      "cron",
      `must be a cron expression of 5 fields (minute hour day month weekday), 6 with seconds first, or a nickname such as @daily (${why})`,
      pattern,
    );
  }
}

/** @throws BatonError `INVALID_ARGUMENT` unless `timezone` is an IANA time zone the runtime knows. */
export function checkTimezone(timezone: unknown): asserts timezone is string {
  if (typeof timezone !== "string" || timezone.length === 0 || timezone.length > 64) {
    invalidArgument("timezone", 'must be an IANA time zone such as "Europe/Berlin"', timezone);
  }
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: timezone });
  } catch {
    invalidArgument("timezone", 'must be an IANA time zone such as "Europe/Berlin"', timezone);
  }
}
