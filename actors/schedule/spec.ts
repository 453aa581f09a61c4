import type { Value } from "../../src/execution/types.ts";
import { encode } from "../../src/foundation/codec.ts";
import { type Duration, parseDuration } from "../../src/foundation/duration.ts";
import { checkId, invalidArgument } from "../../src/foundation/errors.ts";
import { checkNotReserved } from "../../src/foundation/reserved.ts";
import {
  type CatchupPolicy,
  MAX_KEEP,
  type OverlapPolicy,
  type ScheduleUpdate,
} from "../../src/protocol/schedules.ts";
import { checkTimezone, cronOf, MIN_EVERY_MS, timingOf } from "./timing.ts";

/** Longest schedule id: its runs' execution ids add `/` and a 24-character ISO time. */
export const MAX_SCHEDULE_ID = 200;
/** Longest jitter. */
const MAX_JITTER_MS = 24 * 60 * 60 * 1000;
/** Longest run deadline. */
const MAX_TIMEOUT_MS = 365 * 86_400_000;
const OVERLAPS: readonly OverlapPolicy[] = ["skip", "buffer-one", "allow"];
const CATCHUPS: readonly CatchupPolicy[] = ["none", "one", "all"];

/** A schedule's settings, checked and normalized, as its row stores them. */
export interface Settings {
  workflow: string;
  input: Value;
  cron: string | null;
  everyMs: number | null;
  timezone: string;
  overlap: OverlapPolicy;
  catchup: CatchupPolicy;
  jitterMs: number;
  startAt: number | null;
  endAt: number | null;
  timeoutMs: number | null;
  keep: number;
  binding: string;
}

/**
 * A schedule id: 1 to 200 characters, not one of Baton's reserved names.
 *
 * @throws BatonError `INVALID_ARGUMENT`, `FORBIDDEN`.
 */
export function checkScheduleId(id: unknown): string {
  return checkNotReserved(checkId(id, "Schedule id", MAX_SCHEDULE_ID), "Schedule id");
}

/**
 * Checks and normalizes a spec (`create`'s, or an existing schedule's merged with an update),
 * naming the first bad value.
 *
 * @throws BatonError `INVALID_ARGUMENT` (or `INVALID_DURATION`), naming the field and the value.
 */
export async function checkSpec(
  spec: ScheduleUpdate & { workflow?: unknown },
  now: number,
  creating: boolean,
): Promise<Settings> {
  if (typeof spec !== "object" || spec === null) {
    invalidArgument("schedule", "must be an object { id, workflow, cron | every, … }", spec);
  }
  const workflow = spec.workflow;
  if (typeof workflow !== "string" || workflow.length === 0 || workflow.length > 128) {
    invalidArgument("workflow", "must be the name of a registered workflow", workflow);
  }
  const hasCron = spec.cron !== undefined && spec.cron !== null;
  const hasEvery = spec.every !== undefined && spec.every !== null;
  if (hasCron === hasEvery) {
    invalidArgument("cron / every", "give exactly one of them", {
      cron: spec.cron,
      every: spec.every,
    });
  }
  const timezone = spec.timezone ?? "UTC";
  checkTimezone(timezone);
  let cron: string | null = null;
  let everyMs: number | null = null;
  if (hasCron) {
    if (typeof spec.cron !== "string" || spec.cron.length > 256) {
      invalidArgument("cron", "must be a cron expression (a string)", spec.cron);
    }
    cron = spec.cron.trim();
    // One that can never fire ("0 0 31 2 *") is a mistake, not a schedule.
    if (cronOf(cron, timezone).nextRun(new Date(now)) === null) {
      invalidArgument("cron", "never fires", spec.cron);
    }
  } else {
    everyMs = parseDuration(spec.every as Duration);
    if (everyMs < MIN_EVERY_MS) invalidArgument("every", "must be at least 1 second", spec.every);
  }
  const overlap = spec.overlap ?? "skip";
  if (!OVERLAPS.includes(overlap)) {
    invalidArgument("overlap", `must be one of ${OVERLAPS.join(", ")}`, overlap);
  }
  const catchup = spec.catchup ?? "one";
  if (!CATCHUPS.includes(catchup)) {
    invalidArgument("catchup", `must be one of ${CATCHUPS.join(", ")}`, catchup);
  }
  const jitterMs = spec.jitter === undefined ? 0 : parseDuration(spec.jitter);
  if (jitterMs > MAX_JITTER_MS) invalidArgument("jitter", "must be at most 24 hours", spec.jitter);
  if (everyMs !== null && jitterMs >= everyMs) {
    invalidArgument("jitter", "must be shorter than the interval", spec.jitter);
  }
  if (cron !== null && jitterMs > 0) {
    // Shorter than the shortest gap between the next fires, or fires would pass each other.
    const fires = cronOf(cron, timezone)
      .nextRuns(50, new Date(now))
      .map((d) => d.getTime());
    const gap = Math.min(...fires.slice(1).map((t, i) => t - (fires[i] as number)));
    if (jitterMs >= gap) {
      invalidArgument(
        "jitter",
        "must be shorter than the shortest time between two fires",
        spec.jitter,
      );
    }
  }
  const startAt = timeOf("startAt", spec.startAt);
  const endAt = timeOf("endAt", spec.endAt);
  if (endAt !== null && creating && endAt <= now) {
    invalidArgument("endAt", "is in the past: the schedule would never fire", spec.endAt);
  }
  if (startAt !== null && endAt !== null && endAt <= startAt) {
    invalidArgument("endAt", "must be after startAt", spec.endAt);
  }
  let timeoutMs: number | null = null;
  if (spec.timeout !== undefined && spec.timeout !== null) {
    timeoutMs = parseDuration(spec.timeout);
    if (timeoutMs <= 0 || timeoutMs > MAX_TIMEOUT_MS) {
      invalidArgument("timeout", "must be more than 0 and at most 365 days", spec.timeout);
    }
  }
  const keep = spec.keep ?? 20;
  if (!Number.isSafeInteger(keep) || keep < 1 || keep > MAX_KEEP) {
    invalidArgument("keep", `must be an integer from 1 to ${MAX_KEEP}`, keep);
  }
  const binding = spec.binding ?? "Executions";
  if (typeof binding !== "string" || binding.length === 0 || binding.length > 128) {
    invalidArgument("binding", "must be the name of an Execution actor binding", binding);
  }
  const input = spec.input === undefined ? null : spec.input;
  await encode(input); // refuses what cannot be stored (SERIALIZATION_ERROR) before anything is
  const settings: Settings = {
    workflow,
    input,
    cron,
    everyMs,
    timezone,
    overlap,
    catchup,
    jitterMs,
    startAt,
    endAt,
    timeoutMs,
    keep,
    binding,
  };
  // A schedule whose window holds no fire at all is refused as well.
  const anchor = startAt ?? now;
  if (creating && timingOf({ ...settings, anchor }).next(Math.max(now, anchor - 1)) === null) {
    invalidArgument("endAt", "leaves no fire between startAt and endAt", spec.endAt);
  }
  return settings;
}

/** A time given as a Date or epoch ms, or null. */
function timeOf(name: string, value: unknown): number | null {
  if (value === undefined || value === null) return null;
  const t = value instanceof Date ? value.getTime() : value;
  if (typeof t !== "number" || !Number.isSafeInteger(t) || t < 0) {
    invalidArgument(name, "must be a Date or a time in ms since the epoch", value);
  }
  return t;
}
