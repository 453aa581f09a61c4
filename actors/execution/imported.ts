import type { Engine } from "../../src/execution/engine.ts";
import { type ForkSnapshot, importJournal } from "../../src/execution/fork.ts";
import type { ExecutionTimers } from "../../src/execution/host.ts";
import type { LifecycleEvent, StoredStatus } from "../../src/execution/schema.ts";
import { BatonError } from "../../src/foundation/errors.ts";
import type { StateMachine } from "../../src/foundation/fsm.ts";
import type { Scheduler } from "../../src/foundation/scheduler/scheduler.ts";
import type { Sql } from "../../src/foundation/sql.ts";
import type { TestHooks } from "../../src/foundation/test-hooks.ts";
import type { WorkflowRegistry } from "../../src/workflow/workflow.ts";
import { armDeadline } from "./control.ts";
import { DEFAULT_RETENTION, insertExecution, retentionMs } from "./lifecycle.ts";

/** What starting an execution from an imported journal needs of the Execution actor. */
export interface ImportHost {
  /** The execution id this actor was reached by. */
  id: string | undefined;
  sql: Sql;
  engine: Engine;
  lifecycle: StateMachine<StoredStatus, LifecycleEvent>;
  timers: Scheduler<ExecutionTimers>;
  now(): number;
}

/**
 * Creates the actor's (new) execution from an imported journal — a fork's, or a replay test's —
 * and starts its run, which replays it. `keepPermit` only for a replay test (which runs no step).
 */
export async function startImported(
  host: ImportHost,
  snapshot: ForkSnapshot,
  options: {
    id: string;
    version: number;
    digest: string;
    retention: number;
    keepPermit?: boolean;
    /** How long each run may take (the fork's `timeout` or the workflow's); null: no deadline. */
    timeoutMs?: number | null;
  },
): Promise<void> {
  const { engine } = host;
  const input = new Uint8Array(snapshot.input);
  importJournal(
    engine.replay,
    snapshot,
    () => {
      insertExecution(host.sql, {
        id: options.id,
        workflow: snapshot.workflow,
        version: options.version,
        mode: "workflow",
        input: engine.blobs.store("input", input),
        digest: options.digest,
        retentionMs: options.retention,
        now: host.now(),
        priorRuns: engine.priorRuns(),
        timeoutMs: options.timeoutMs ?? null,
      });
      const row = host.engine.row();
      if (row) armDeadline(host.timers, row.run, row.deadline_at);
      host.lifecycle.send("start");
    },
    { keepPermit: options.keepPermit ?? false },
  );
  await engine.startHeartbeat();
  engine.kick();
}

/**
 * A replay test (`baton/testing`): this actor's execution from a recorded journal, at the
 * recorded version — as the executions the recording stands for would replay, their concurrency
 * permit included.
 *
 * @throws BatonError `EXECUTION_CONFLICT` (the execution exists), `UNKNOWN_WORKFLOW`.
 */
export async function startRecording(
  host: ImportHost,
  hooks: TestHooks | undefined,
  registry: WorkflowRegistry,
  snapshot: ForkSnapshot,
): Promise<void> {
  const { id } = host;
  // Only under a replay test's hooks, which keep every step body from running.
  if (!hooks?.replayOnly) throw new Error("baton/testing: not a replay test.");
  if (!id || host.engine.row()) {
    throw new BatonError("EXECUTION_CONFLICT", `Execution "${id}" already exists.`, { id });
  }
  if (!registry.get(snapshot.workflow)) {
    throw new BatonError(
      "UNKNOWN_WORKFLOW",
      `No workflow named "${snapshot.workflow}" is registered on this Execution actor.`,
      { workflow: snapshot.workflow },
    );
  }
  await startImported(host, snapshot, {
    id,
    version: snapshot.version,
    digest: "replay",
    retention: retentionMs(DEFAULT_RETENTION),
    keepPermit: true,
  });
}
