import { BatonError, preview } from "./errors.ts";

/**
 * A duration: a number of milliseconds, or text such as `"250ms"`, `"30s"`, `"5 minutes"`,
 * `"1h"`, `"2 days"`, `"1 month"`.
 */
export type Duration = number | `${number}${string}`;

const UNIT_MS: Record<string, number> = {
  ms: 1,
  msec: 1,
  msecs: 1,
  millisecond: 1,
  milliseconds: 1,
  s: 1_000,
  sec: 1_000,
  secs: 1_000,
  second: 1_000,
  seconds: 1_000,
  m: 60_000,
  min: 60_000,
  mins: 60_000,
  minute: 60_000,
  minutes: 60_000,
  h: 3_600_000,
  hr: 3_600_000,
  hrs: 3_600_000,
  hour: 3_600_000,
  hours: 3_600_000,
  d: 86_400_000,
  day: 86_400_000,
  days: 86_400_000,
  w: 604_800_000,
  week: 604_800_000,
  weeks: 604_800_000,
  // As Cloudflare Workflows counts them: a month is 30 days, a year 365.25 days.
  month: 2_592_000_000,
  months: 2_592_000_000,
  y: 31_557_600_000,
  year: 31_557_600_000,
  years: 31_557_600_000,
};

const PATTERN = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)?\s*$/;

/**
 * Longest duration, numbers and text alike: 100 years. Anything longer is a mistake (or an
 * attempt to make a due time overflow), not a plan.
 */
export const MAX_DURATION_MS = 100 * 365 * 86_400_000;

/**
 * Parses a {@link Duration} into whole milliseconds (fractions are rounded up, so a duration never
 * ends early).
 *
 * Accepted units: `ms`, `s`/`sec`/`second(s)`, `m`/`min`/`minute(s)`, `h`/`hr`/`hour(s)`,
 * `d`/`day(s)`, `w`/`week(s)`, `month(s)` (30 days), `y`/`year(s)` (365.25 days). A bare number (or numeric string) means milliseconds. Every
 * duration is from 0 to {@link MAX_DURATION_MS} (100 years).
 *
 * @throws BatonError `INVALID_DURATION` for anything else (negative, NaN, unknown unit ...); the
 *   message quotes the bad text.
 * @example
 * ```ts
 * parseDuration("250ms"); // 250
 * parseDuration("5 minutes"); // 300000
 * parseDuration("2 days"); // 172800000
 * parseDuration(1500); // 1500
 * ```
 */
export function parseDuration(duration: Duration | string): number {
  if (typeof duration === "number") {
    if (!Number.isFinite(duration) || duration < 0) {
      throw invalid(duration, "a duration in milliseconds must be a finite number >= 0");
    }
    if (duration > MAX_DURATION_MS) throw invalid(duration, "the longest duration is 100 years");
    return Math.ceil(duration);
  }
  if (typeof duration !== "string") {
    throw invalid(duration, "a duration must be a number of milliseconds or a string");
  }
  const match = PATTERN.exec(duration);
  if (!match) throw invalid(duration, "expected a number and a unit");
  const amount = Number(match[1]);
  const unit = match[2]?.toLowerCase() ?? "ms";
  const factor = UNIT_MS[unit];
  if (factor === undefined) throw invalid(duration, `unknown unit "${match[2]}"`);
  const ms = Math.ceil(amount * factor);
  if (!Number.isSafeInteger(ms) || ms > MAX_DURATION_MS) {
    throw invalid(duration, "the longest duration is 100 years");
  }
  return ms;
}

function invalid(got: unknown, why: string): BatonError {
  return new BatonError(
    "INVALID_DURATION",
    `Invalid duration ${preview(got)}: ${why}. Use a number of milliseconds or text such as "250ms", "30s", "5 minutes", "1h" or "2 days".`,
    { duration: typeof got === "string" || typeof got === "number" ? got : String(got) },
  );
}
