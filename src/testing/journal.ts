import type { ForkSnapshot } from "../execution/fork.ts";
import type { ExecutionStatus, StepKind } from "../execution/types.ts";
import { BatonError } from "../foundation/errors.ts";

/**
 * An execution's journal as a JSON document — what a replay test keeps in the repository and
 * replays against the current workflow code (`TestKit.replay`). Inputs and outputs are Baton's
 * codec bytes in base64, so Maps, Dates, BigInts and binary come back as they were.
 */
export interface RecordedJournal {
  format: "baton.journal/1";
  workflow: string;
  /** The workflow version that ran. */
  version: number;
  /** The execution's status when it was recorded (a replay of a completed one must complete). */
  status?: ExecutionStatus;
  /** Codec bytes of the input, base64. */
  input: string;
  /** The finished steps, up to the first unfinished one. */
  steps: Array<{
    seq: number;
    name: string;
    occurrence: number;
    kind: StepKind;
    /** `cancelled`: the run stopped it (a lost race, a failure elsewhere); it never ended. */
    status: "completed" | "failed" | "timed_out" | "cancelled";
    attempts: number;
    startedAt: number;
    endedAt: number | null;
    /** Codec bytes of a completed step's output, base64. */
    output: string | null;
    error: string | null;
  }>;
  /**
   * The steps from the first unfinished one on (an execution recorded while it waited, say):
   * the replay checks the code calls them next, by name and kind.
   */
  unfinished?: Array<{ seq: number; name: string; kind: StepKind }>;
}

const base64 = (bytes: Uint8Array) => {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
};
const bytesOf = (text: string) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

/** A snapshot (`ExecutionActor.exportJournal`) as a JSON-safe recording. */
export function toRecorded(snapshot: ForkSnapshot, status?: ExecutionStatus): RecordedJournal {
  const { unfinished, ...rest } = snapshot;
  return {
    format: "baton.journal/1",
    workflow: rest.workflow,
    version: rest.version,
    ...(status ? { status } : {}),
    input: base64(new Uint8Array(rest.input)),
    steps: rest.steps.map((s) => ({
      ...s,
      output: s.output ? base64(new Uint8Array(s.output)) : null,
    })),
    ...(unfinished?.length ? { unfinished } : {}),
  };
}

const KINDS = new Set<string>(["do", "sleep", "wait", "progress", "child"]);
const FINISHED = new Set<string>(["completed", "failed", "timed_out", "cancelled"]);
const STATUSES = new Set<string>([
  "pending",
  "running",
  "sleeping",
  "waiting",
  "paused",
  "completed",
  "failed",
  "cancelled",
  "timed_out",
]);
const isCount = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;
const isTime = (n: unknown): n is number => typeof n === "number" && Number.isFinite(n);

function damaged(detail: string): never {
  throw new BatonError("INVALID_ARGUMENT", `The recorded journal is damaged: ${detail}.`, {
    detail,
  });
}

/** What is wrong with step `i` of a recording, if anything. */
function checkStep(s: unknown, i: number, previous: number): void {
  const step = s as Partial<RecordedJournal["steps"][number]> | null;
  const at = `steps[${i}]`;
  if (typeof step !== "object" || step === null) damaged(`${at} is not an object`);
  if (!isCount(step.seq) || step.seq <= previous) {
    damaged(`${at}.seq must be an integer above the one before it`);
  }
  if (typeof step.name !== "string" || !step.name) damaged(`${at}.name must be a step name`);
  if (!isCount(step.occurrence)) damaged(`${at}.occurrence must be an integer >= 0`);
  if (!KINDS.has(step.kind as string)) damaged(`${at}.kind must be one of ${[...KINDS]}`);
  if (!FINISHED.has(step.status as string)) {
    damaged(`${at}.status must be completed, failed, timed_out or cancelled`);
  }
  if (!isCount(step.attempts)) damaged(`${at}.attempts must be an integer >= 0`);
  if (!isTime(step.startedAt)) damaged(`${at}.startedAt must be a time in ms`);
  if (step.endedAt !== null && !isTime(step.endedAt)) {
    damaged(`${at}.endedAt must be a time in ms or null`);
  }
  if (step.output !== null && typeof step.output !== "string") {
    damaged(`${at}.output must be base64 or null`);
  }
  if (step.error !== null && typeof step.error !== "string") {
    damaged(`${at}.error must be a string or null`);
  }
}

/**
 * A recording back as a snapshot to import.
 *
 * @throws BatonError `INVALID_ARGUMENT` for anything that is not a recording, or a damaged one.
 */
export function fromRecorded(recorded: unknown): ForkSnapshot {
  const r = recorded as Partial<RecordedJournal> | null;
  if (
    typeof r !== "object" ||
    r === null ||
    r.format !== "baton.journal/1" ||
    typeof r.workflow !== "string" ||
    typeof r.input !== "string" ||
    !Array.isArray(r.steps)
  ) {
    throw new BatonError(
      "INVALID_ARGUMENT",
      'Not a recorded journal: expected { format: "baton.journal/1", workflow, input, steps } (from exportJournal()).',
    );
  }
  const version = r.version ?? 1;
  if (!Number.isSafeInteger(version) || version < 1) damaged("version must be an integer >= 1");
  if (r.status !== undefined && !STATUSES.has(r.status)) {
    damaged("status must be an execution status");
  }
  let previous = -1;
  r.steps.forEach((step, i) => {
    checkStep(step, i, previous);
    previous = step.seq;
  });
  if (r.unfinished !== undefined) {
    if (!Array.isArray(r.unfinished)) damaged("unfinished must be an array");
    r.unfinished.forEach((u, i) => {
      if (!isCount(u?.seq) || typeof u.name !== "string" || !KINDS.has(u.kind)) {
        damaged(`unfinished[${i}] must be { seq, name, kind }`);
      }
    });
  }
  try {
    return {
      workflow: r.workflow,
      version,
      input: bytesOf(r.input),
      steps: r.steps.map((s) => ({ ...s, output: s.output ? bytesOf(s.output) : null })),
      ...(r.unfinished ? { unfinished: r.unfinished } : {}),
    };
  } catch (error) {
    damaged(`its base64 does not decode (${(error as Error).message})`);
  }
}
