import type { Replay } from "./replay.ts";
import { never, type Run } from "./run.ts";
import { COMPENSATE_PREFIX, type ExecutionRow } from "./schema.ts";
import { runDo } from "./step-do.ts";
import type { ExecutionError } from "./types.ts";

/**
 * Saga compensation: runs the compensations of the run's completed steps in reverse journal
 * order (call order, not completion order: parallel steps may complete in another order on a
 * replay, and the compensation steps must line up with the journal), each a journaled step
 * `$compensate:<name>` (so it runs once across replays). Call it once the run has stopped and
 * quiesced. Returns the outcome, or undefined when there was nothing to compensate.
 */
export async function compensate(
  replay: Replay,
  run: Run,
  exec: ExecutionRow,
  cause: Error,
): Promise<"completed" | "failed" | undefined> {
  if (run.compensations.length === 0) return undefined;
  let failed = false;
  for (const c of [...run.compensations].sort((a, b) => b.seq - a.seq)) {
    if (replay.skipsCompensation(run)) continue; // a replay test runs no body
    try {
      await runDo(
        replay,
        run,
        exec,
        `${COMPENSATE_PREFIX}${c.name}`,
        c.policy,
        c.timeoutMs,
        (attempt) =>
          c.fn(c.output, attempt, {
            error: cause,
            step: { name: c.name, count: c.count },
            config: c.config,
          }),
        { compensating: true },
      );
    } catch {
      if (run.dead) return never();
      failed = true;
    }
  }
  return failed ? "failed" : "completed";
}

/** Adds the compensation outcome to the error of an execution that was cancelled. */
export function recordCompensation(replay: Replay, outcome: "completed" | "failed"): void {
  const row = replay.row();
  const error = row?.error ? (JSON.parse(row.error) as ExecutionError) : undefined;
  if (!error) return;
  replay.host.sql.run(
    "UPDATE _baton_execution SET error = ? WHERE id = 1",
    JSON.stringify({ ...error, compensation: outcome }),
  );
}
