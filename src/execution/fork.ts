import { encode } from "../foundation/codec.ts";
import { BatonError } from "../foundation/errors.ts";
import type { Replay } from "./replay.ts";
import { CHECKPOINT_PREFIX, type StepKind, type StepRow } from "./schema.ts";

/** A journal prefix that a fork replays (see {@link exportCheckpoint}). */
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
    status: "completed" | "failed" | "timed_out";
    attempts: number;
    startedAt: number;
    endedAt: number | null;
    /** Codec-encoded output of a completed step. */
    output: Uint8Array | null;
    error: string | null;
  }>;
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
  const steps: ForkSnapshot["steps"] = [];
  for (const step of host.sql.all<StepRow>(
    "SELECT * FROM _baton_steps WHERE seq <= ? AND status IN ('completed', 'failed', 'timed_out') ORDER BY seq",
    mark.seq,
  )) {
    steps.push({
      seq: step.seq,
      name: step.name,
      occurrence: step.occurrence,
      kind: step.kind,
      status: step.status as "completed" | "failed" | "timed_out",
      attempts: step.attempts,
      startedAt: step.started_at,
      endedAt: step.ended_at,
      // Encoded bytes cross RPC whatever the value (URL, Error subclasses ...).
      output: step.status === "completed" ? await encode(await blobs.readStepOutput(step)) : null,
      error: step.error,
    });
  }
  if (steps.length !== mark.seq + 1) {
    throw new BatonError(
      "CHECKPOINT_NOT_FOUND",
      `Checkpoint "${name}" of execution "${row.execution_id}" has steps that did not finish before it (parallel steps still running); checkpoint after awaiting them.`,
      { checkpoint: name },
    );
  }
  return {
    workflow: row.workflow,
    version: row.version,
    input: await encode(await blobs.readInput()),
    steps: withoutHeldLocks(steps),
  };
}

/**
 * The steps a fork must run again rather than replay: the ones that took something the source
 * still holds at the checkpoint — its concurrency permit (`$concurrency`) and the locks it is
 * inside of (`lock:<name>:acquire` with no release or abandon after it). Replaying them would
 * let the fork run without a permit or a lock of its own. Their positions stay empty in the
 * fork's journal; its replay runs them there and takes its own.
 */
function withoutHeldLocks(steps: ForkSnapshot["steps"]): ForkSnapshot["steps"] {
  const open = new Map<string, number[]>(); // lock name → seqs of its acquires still held
  for (const step of steps) {
    const lock = /^lock:(.*):(acquire|release|abandon)$/.exec(step.name);
    if (!lock) continue;
    const [, name = "", what] = lock;
    const held = open.get(name) ?? [];
    if (what === "acquire") held.push(step.seq);
    else held.shift();
    open.set(name, held);
  }
  const drop = new Set([...open.values()].flat());
  return steps.filter((step) => step.name !== PERMIT_STEP && !drop.has(step.seq));
}

/** The journal name of a concurrency-limited execution's permit. */
const PERMIT_STEP = "$concurrency";

/**
 * Writes a fork's journal (the snapshot's steps) into this new execution, in one transaction
 * with `alongside` (which creates the execution row).
 */
export function importJournal(replay: Replay, snapshot: ForkSnapshot, alongside: () => void): void {
  const { host, blobs } = replay;
  host.sql.transaction(() => {
    // Never a permit from a snapshot (one made elsewhere could carry any): the fork takes its own.
    for (const step of snapshot.steps.filter((s) => s.name !== PERMIT_STEP)) {
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
