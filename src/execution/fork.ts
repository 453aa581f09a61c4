import { decodeSync, encode } from "../foundation/codec.ts";
import { BatonError, invalidArgument } from "../foundation/errors.ts";
import type { Replay } from "./replay.ts";
import { CHECKPOINT_PREFIX, type StepKind, type StepRow } from "./schema.ts";

/** A journal prefix that a fork replays (`ExecutionActor.exportCheckpoint` makes one). */
export interface ForkSnapshot {
  workflow: string;
  /** The workflow version the source ran. */
  version: number;
  /** Codec-encoded input. */
  input: Uint8Array;
  steps: Array<{
    seq: number;
    name: string;
    occurrence: number;
    kind: StepKind;
    /** `cancelled` only in `exportJournal`'s (a step the run stopped: it never ended). */
    status: "completed" | "failed" | "timed_out" | "cancelled";
    attempts: number;
    startedAt: number;
    endedAt: number | null;
    /** Codec-encoded output of a completed step. */
    output: Uint8Array | null;
    error: string | null;
  }>;
  /**
   * The steps from the first unfinished one on (`exportJournal` only), in position order: what a
   * replay test checks the code calls next.
   */
  unfinished?: Array<{ seq: number; name: string; kind: StepKind }>;
}

const STEP_KINDS = new Set<string>(["do", "sleep", "wait", "progress", "child"]);
const STEP_STATUSES = new Set<string>(["completed", "failed", "timed_out", "cancelled"]);

/**
 * Checks a snapshot that came over RPC (`importFork`): its shape, and every step entry's fields
 * and types, before anything is read from it or stored.
 *
 * @throws BatonError `INVALID_ARGUMENT` naming the bad field (`snapshot.steps[2].seq` ...).
 */
export function checkSnapshot(snapshot: unknown): asserts snapshot is ForkSnapshot {
  const rule = "must come from exportCheckpoint()";
  if (typeof snapshot !== "object" || snapshot === null)
    invalidArgument("snapshot", rule, snapshot);
  const s = snapshot as Record<string, unknown>;
  if (typeof s.workflow !== "string" || s.workflow.length === 0) {
    invalidArgument("snapshot.workflow", "must be a workflow name", s.workflow);
  }
  if (!Number.isSafeInteger(s.version)) {
    invalidArgument("snapshot.version", "must be an integer", s.version);
  }
  if (!isBytes(s.input)) invalidArgument("snapshot.input", "must be encoded bytes", s.input);
  if (!Array.isArray(s.steps)) invalidArgument("snapshot.steps", "must be an array", s.steps);
  const count = (n: unknown) => Number.isSafeInteger(n) && (n as number) >= 0;
  const time = (n: unknown) => typeof n === "number" && Number.isFinite(n);
  const fields: Array<[string, string, (v: unknown) => boolean]> = [
    ["seq", "must be an integer >= 0", count],
    ["name", "must be a step name", (v) => typeof v === "string" && v.length > 0],
    ["occurrence", "must be an integer >= 0", count],
    ["kind", "must be a step kind", (v) => typeof v === "string" && STEP_KINDS.has(v)],
    ["status", "must be a finished status", (v) => typeof v === "string" && STEP_STATUSES.has(v)],
    ["attempts", "must be an integer >= 0", count],
    ["startedAt", "must be a time in ms", time],
    ["endedAt", "must be a time in ms or null", (v) => v === null || time(v)],
    ["output", "must be encoded bytes or null", (v) => v === null || isBytes(v)],
    ["error", "must be a string or null", (v) => v === null || typeof v === "string"],
  ];
  const seen = new Set<number>();
  s.steps.forEach((step: unknown, i: number) => {
    const at = `snapshot.steps[${i}]`;
    if (typeof step !== "object" || step === null || Array.isArray(step)) {
      invalidArgument(at, "must be a step entry from exportCheckpoint()", step);
    }
    const entry = step as Record<string, unknown>;
    for (const [field, what, ok] of fields) {
      if (!ok(entry[field])) invalidArgument(`${at}.${field}`, what, entry[field]);
    }
    if (seen.has(entry.seq as number)) invalidArgument(`${at}.seq`, "must be unique", entry.seq);
    seen.add(entry.seq as number);
  });
}

function isBytes(value: unknown): boolean {
  return value instanceof Uint8Array || value instanceof ArrayBuffer;
}

/**
 * The journal up to checkpoint `name` (inclusive), with outputs encoded, for a fork.
 *
 * @throws BatonError `CHECKPOINT_NOT_FOUND`.
 */
export async function exportCheckpoint(replay: Replay, name: string): Promise<ForkSnapshot> {
  const { host, blobs } = replay;
  const row = replay.row();
  const mark = host.sql.one<StepRow>(
    "SELECT * FROM _baton_steps WHERE name = ? AND status = 'completed' ORDER BY seq LIMIT 1",
    `${CHECKPOINT_PREFIX}${name}`,
  );
  if (!row || !mark) {
    throw new BatonError(
      "CHECKPOINT_NOT_FOUND",
      `Execution "${row?.execution_id ?? "?"}" has no checkpoint "${name}" (step.checkpoint("${name}") has not completed).`,
      { checkpoint: name },
    );
  }
  const steps = await finishedSteps(
    replay,
    host.sql.all<StepRow>(
      "SELECT * FROM _baton_steps WHERE seq <= ? AND status IN ('completed', 'failed', 'timed_out') ORDER BY seq",
      mark.seq,
    ),
  );
  // Every step before the checkpoint must have finished (a position may be empty: a fork that
  // has not re-taken its permit yet).
  const unfinished = host.sql.value<number>(
    `SELECT COUNT(*) FROM _baton_steps WHERE seq <= ? AND status NOT IN ('completed', 'failed', 'timed_out')`,
    mark.seq,
  );
  if (unfinished) {
    throw new BatonError(
      "CHECKPOINT_NOT_FOUND",
      `Checkpoint "${name}" of execution "${row.execution_id}" has steps that did not finish before it (parallel steps still running); checkpoint after awaiting them.`,
      { checkpoint: name },
    );
  }
  const held = heldLocks(steps);
  if (held.length > 0) {
    throw new BatonError(
      "INVALID_ARGUMENT",
      `Checkpoint "${name}" of execution "${row.execution_id}" is inside the critical section of lock "${held[0]}" (locks.inWorkflow): a fork cannot take over its source's lock. Checkpoint outside the locked function.`,
      { checkpoint: name, lock: held[0] },
    );
  }
  return {
    workflow: row.workflow,
    version: row.version,
    input: await encode(await blobs.readInput()),
    // The fork takes its own permit: the source's is not replayed (its position stays empty).
    steps: withoutPermit(steps),
  };
}

/**
 * The whole journal, as far as its steps have finished or were stopped (up to the first that
 * has not), with outputs encoded: what a replay test replays (`baton/testing`).
 *
 * @throws BatonError `EXECUTION_NOT_FOUND`.
 */
export async function exportJournal(replay: Replay): Promise<ForkSnapshot> {
  const { host, blobs } = replay;
  const row = replay.row();
  if (!row) {
    throw new BatonError("EXECUTION_NOT_FOUND", "No execution here: nothing to export.");
  }
  const open = host.sql.value<number>(
    "SELECT MIN(seq) FROM _baton_steps WHERE status NOT IN ('completed', 'failed', 'timed_out', 'cancelled')",
  );
  const steps = await finishedSteps(
    replay,
    host.sql.all<StepRow>(
      "SELECT * FROM _baton_steps WHERE seq < ? AND status IN ('completed', 'failed', 'timed_out', 'cancelled') ORDER BY seq",
      open ?? Number.MAX_SAFE_INTEGER,
    ),
  );
  const unfinished = host.sql
    .all<StepRow>(
      "SELECT seq, name, kind FROM _baton_steps WHERE seq >= ? ORDER BY seq",
      open ?? Number.MAX_SAFE_INTEGER,
    )
    .map(({ seq, name, kind }) => ({ seq, name, kind }));
  return {
    workflow: row.workflow,
    version: row.version,
    input: await encode(await blobs.readInput()),
    steps,
    unfinished,
  };
}

/** Journal rows as a snapshot's steps, outputs encoded. */
export async function finishedSteps(
  replay: Replay,
  rows: StepRow[],
): Promise<ForkSnapshot["steps"]> {
  const steps: ForkSnapshot["steps"] = [];
  for (const step of rows) {
    steps.push({
      seq: step.seq,
      name: step.name,
      occurrence: step.occurrence,
      kind: step.kind,
      status: step.status as ForkSnapshot["steps"][number]["status"],
      attempts: step.attempts,
      startedAt: step.started_at,
      endedAt: step.ended_at,
      // Encoded bytes cross RPC whatever the value (URL, Error subclasses ...).
      output:
        step.status === "completed" ? await encode(await replay.blobs.readStepOutput(step)) : null,
      error: step.error,
    });
  }
  return steps;
}

/**
 * The names of the locks (`locks.inWorkflow`) the journal shows acquired and not yet released:
 * an acquire's output names its waiter key, and the release names the key it ends (older
 * journals without keys pair in order).
 */
export function heldLocks(steps: ForkSnapshot["steps"]): string[] {
  const held = new Map<string, { name: string; key: unknown }>(); // by acquire seq
  const decoded = (step: ForkSnapshot["steps"][number]) =>
    step.output ? (decodeSync(step.output) as Record<string, unknown> | null) : null;
  for (const step of steps) {
    const lock = /^lock:(.*):(acquire|release)$/.exec(step.name);
    if (!lock || step.status !== "completed") continue;
    const [, name = "", what] = lock;
    let output: Record<string, unknown> | null = null;
    try {
      output = decoded(step);
    } catch {
      output = null; // compressed (a big output): not one of inWorkflow's
    }
    if (what === "acquire") held.set(String(step.seq), { name, key: output?.key });
    else {
      const released = output?.released;
      const match = [...held.entries()].find(([, h]) =>
        released === undefined ? h.name === name : h.key === released,
      );
      if (match) held.delete(match[0]);
    }
  }
  return [...held.values()].map((h) => h.name);
}

/** Every step but the permit. */
function withoutPermit(steps: ForkSnapshot["steps"]): ForkSnapshot["steps"] {
  return steps.filter((step) => step.name !== PERMIT_STEP);
}

/** The statuses of the steps a fork imports. */
const FORKABLE = new Set<string>(["completed", "failed", "timed_out"]);

/** The journal name of a concurrency-limited execution's permit. */
export const PERMIT_STEP = "$concurrency";

/**
 * Writes a fork's journal (the snapshot's steps) into this new execution, in one transaction
 * with `alongside` (which creates the execution row). `keepPermit` only for a replay test
 * (`baton/testing`), which never runs a step and must see the journal as it was.
 */
export function importJournal(
  replay: Replay,
  snapshot: ForkSnapshot,
  alongside: () => void,
  options: { keepPermit?: boolean } = {},
): void {
  const { host, blobs } = replay;
  host.sql.transaction(() => {
    // Never a permit from a snapshot (one made elsewhere could carry any): the fork takes its own.
    for (const step of options.keepPermit ? snapshot.steps : withoutPermit(snapshot.steps)) {
      // A fork replays finished steps only (a stopped one would never end in it).
      if (!options.keepPermit && !FORKABLE.has(step.status)) {
        throw new BatonError(
          "INVALID_ARGUMENT",
          `A fork snapshot holds finished steps only (step ${step.seq} "${step.name}" is ${String(step.status)}): make it with exportCheckpoint().`,
        );
      }
      const bytes = step.output ? new Uint8Array(step.output) : undefined;
      host.sql.run(
        `INSERT INTO _baton_steps (seq, name, occurrence, kind, status, attempts, started_at, ended_at, output, error)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        step.seq,
        step.name,
        step.occurrence,
        step.kind,
        step.status,
        step.attempts,
        step.startedAt,
        step.endedAt,
        bytes === undefined ? null : blobs.store(`step:${step.seq}`, bytes),
        step.error,
      );
    }
    alongside();
  });
}
