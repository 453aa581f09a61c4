import type { ForkSnapshot } from "../execution/fork.ts";
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
  /** Codec bytes of the input, base64. */
  input: string;
  steps: Array<{
    seq: number;
    name: string;
    occurrence: number;
    kind: ForkSnapshot["steps"][number]["kind"];
    status: "completed" | "failed" | "timed_out";
    attempts: number;
    startedAt: number;
    endedAt: number | null;
    /** Codec bytes of a completed step's output, base64. */
    output: string | null;
    error: string | null;
  }>;
}

const base64 = (bytes: Uint8Array) => {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
};
const bytesOf = (text: string) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

/** A snapshot (`ExecutionActor.exportJournal`) as a JSON-safe recording. */
export function toRecorded(snapshot: ForkSnapshot): RecordedJournal {
  return {
    format: "baton.journal/1",
    workflow: snapshot.workflow,
    version: snapshot.version,
    input: base64(new Uint8Array(snapshot.input)),
    steps: snapshot.steps.map((s) => ({
      ...s,
      output: s.output ? base64(new Uint8Array(s.output)) : null,
    })),
  };
}

/**
 * A recording back as a snapshot to import.
 *
 * @throws BatonError `INVALID_ARGUMENT` for anything that is not a recording.
 */
export function fromRecorded(recorded: RecordedJournal): ForkSnapshot {
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
  try {
    return {
      workflow: r.workflow,
      version: Number(r.version ?? 1),
      input: bytesOf(r.input),
      steps: r.steps.map((s) => ({ ...s, output: s.output ? bytesOf(s.output) : null })),
    };
  } catch (error) {
    throw new BatonError(
      "INVALID_ARGUMENT",
      `The recorded journal is damaged (its base64 does not decode): ${(error as Error).message}`,
    );
  }
}
