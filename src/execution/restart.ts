import { BatonError, checkId, invalidArgument } from "../foundation/errors.ts";
import { finishedSteps, heldLocks, PERMIT_STEP } from "./fork.ts";
import type { Replay } from "./replay.ts";
import { COMPENSATE_PREFIX, type StepKind, type StepRow } from "./schema.ts";

/**
 * A step of the journal named as Cloudflare Workflows names it in `restart({ from })`: its name,
 * its occurrence of that name (from 1), and optionally its kind.
 */
export interface StepRef {
  name: string;
  /** 1 for the first call of a step with this name in the run, 2 for the second ... Default 1. */
  count?: number;
  /** Only a step of this kind (when steps of different kinds share the name). */
  type?: "do" | "sleep" | "waitForEvent";
}

const KINDS: Record<NonNullable<StepRef["type"]>, StepKind> = {
  do: "do",
  sleep: "sleep",
  waitForEvent: "wait",
};

/**
 * The journal position of the step `ref` names.
 *
 * @throws BatonError `INVALID_ARGUMENT` for a malformed reference, `STEP_NOT_FOUND` when the
 *   journal has no such step.
 */
export function findStep(replay: Replay, ref: StepRef): number {
  if (typeof ref !== "object" || ref === null) {
    invalidArgument("from", "must be { name, count?, type? }", ref);
  }
  checkId(ref.name, "from.name");
  const count = ref.count ?? 1;
  if (!Number.isSafeInteger(count) || count < 1) {
    invalidArgument("from.count", "must be an integer >= 1", ref.count);
  }
  const kind = ref.type === undefined ? undefined : KINDS[ref.type];
  if (ref.type !== undefined && (kind === undefined || !Object.hasOwn(KINDS, ref.type))) {
    invalidArgument("from.type", 'must be "do", "sleep" or "waitForEvent"', ref.type);
  }
  const seq = replay.host.sql.value<number>(
    `SELECT seq FROM _baton_steps WHERE name = ? AND occurrence = ? AND (? IS NULL OR kind = ?)
     ORDER BY seq LIMIT 1`,
    ref.name,
    count - 1,
    kind ?? null,
    kind ?? null,
  );
  if (seq === undefined) {
    throw new BatonError(
      "STEP_NOT_FOUND",
      `The execution's journal has no step "${ref.name}"${count > 1 ? ` (occurrence ${count})` : ""}${kind ? ` of type ${ref.type}` : ""} to restart from.`,
      { step: ref.name, count, ...(ref.type ? { type: ref.type } : {}) },
    );
  }
  return seq;
}

/**
 * Checks that a restart from position `from` can keep the steps before it.
 *
 * @throws BatonError `INVALID_TRANSITION` when the execution's compensations ran (the steps it
 *   would keep were undone); `INVALID_ARGUMENT` when a kept step holds a lock
 *   (`locks.inWorkflow`): the restarted run could not own it (the ended run released it).
 */
export async function checkRestartPoint(replay: Replay, from: number): Promise<void> {
  // The steps it would keep were undone: replaying them as done would be wrong.
  const undone = replay.host.sql.value<number>(
    "SELECT COUNT(*) FROM _baton_steps WHERE substr(name, 1, ?) = ?",
    COMPENSATE_PREFIX.length,
    COMPENSATE_PREFIX,
  );
  if (undone) {
    throw new BatonError(
      "INVALID_TRANSITION",
      "The execution's compensations (rollbacks) ran, undoing the steps a restart from a step would keep: restart it from the start.",
      { state: replay.row()?.status ?? null, event: "restart", validEvents: [] },
    );
  }
  const locks = replay.host.sql.all<StepRow>(
    "SELECT * FROM _baton_steps WHERE seq < ? AND name LIKE 'lock:%' AND status = 'completed' ORDER BY seq",
    from,
  );
  const held = heldLocks(await finishedSteps(replay, locks));
  if (held.length > 0) {
    throw new BatonError(
      "INVALID_ARGUMENT",
      `The steps before the restart point hold lock "${held[0]}" (locks.inWorkflow), which the ended run released: restart from a step before it was acquired.`,
      { lock: held[0] },
    );
  }
}

/**
 * Cuts an ended execution's journal for a restart from position `from`, in one transaction: the
 * steps before it that finished keep their outcomes (a replay returns them without running their
 * bodies); the step at `from`, every step after it, every step that had not finished, the
 * compensations and the concurrency permit are removed, with their stored outputs, and so are
 * the events, but for those the kept waits consumed. Check the point first with
 * {@link checkRestartPoint}.
 */
export function truncateJournal(replay: Replay, from: number): void {
  const { sql } = replay.host;
  const removable = `seq >= ? OR status NOT IN ('completed', 'failed', 'timed_out') OR name = ?
    OR substr(name, 1, ?) = ?`;
  const params = [from, PERMIT_STEP, COMPENSATE_PREFIX.length, COMPENSATE_PREFIX] as const;
  sql.transaction(() => {
    // Outputs put aside in the value store go with their rows (inline ones need nothing).
    const stored = sql.all<{ output: string }>(
      `SELECT output FROM _baton_steps WHERE (${removable}) AND typeof(output) = 'text'`,
      ...params,
    );
    for (const { output } of stored) replay.blobs.deleteStored(output);
    sql.run(`DELETE FROM _baton_steps WHERE ${removable}`, ...params);
    // As a whole restart does (and as Workflows does): the events go, but for those the kept
    // waits consumed (their outputs).
    sql.run(
      "DELETE FROM _baton_events WHERE consumed_by IS NULL OR consumed_by NOT IN (SELECT seq FROM _baton_steps)",
    );
  });
}
