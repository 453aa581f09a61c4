import type { StateMachine } from "../foundation/fsm.ts";
import type { Scheduler } from "../foundation/scheduler/scheduler.ts";
import type { Sql } from "../foundation/sql.ts";
import type { TestHooks } from "../foundation/test-hooks.ts";
import type { ValueStore } from "../foundation/values.ts";
import type { WorkflowRegistry } from "../workflow/workflow.ts";
import type { PermitLease } from "./permits.ts";
import type { LifecycleEvent, StoredStatus } from "./schema.ts";

/**
 * What the engine needs from the actor that hosts it. The engine never reaches the actor (or any
 * client) directly: everything it touches outside its own tables comes through here.
 */
export interface EngineHost {
  readonly sql: Sql;
  readonly values: ValueStore;
  readonly timers: Scheduler<ExecutionTimers>;
  readonly storage: DurableObjectStorage;
  readonly lifecycle: StateMachine<StoredStatus, LifecycleEvent>;
  readonly registry: () => WorkflowRegistry;
  readonly env: unknown;
  /** The binding name of this Execution actor's own namespace (for children and reports). */
  childBinding(): string;
  now(): number;
  /** False while the object has no tables yet (nothing was ever started in it). */
  schemaReady(): boolean;
  /**
   * A step finished in this run (not a replay): live subscribers hear of it. `output` is read
   * only if someone listens; it returns `OMITTED` (live-events.ts) for an output that cannot be shown.
   */
  stepDone(seq: number, step: string, output: () => unknown): void;
  /** The execution reached a terminal state: live subscribers get the terminal event. */
  ended(): void;
  /** Delivers pending index updates now (resolves when done or failed; never rejects). */
  flushIndex(): Promise<void>;
  /** Writes an index outbox entry (the execution's state changed, or it was deleted). */
  recordChange(deleted: boolean): void;
  /** The hooks `baton/testing` installed for this execution; always undefined in production. */
  testHooks(): TestHooks | undefined;
  /** Keeps the actor alive until `promise` settles. */
  waitUntil(promise: Promise<unknown>): void;
  /** Aborts the actor (a test's crash mid-step: its memory is gone, its storage stays). */
  abort(reason: string): void;
}

/** Timer kinds of the Execution actor. */
export type ExecutionTimers = {
  /** Wakes the step at `seq` (backoff over, sleep over, wait timed out). */
  wake: { seq: number };
  /** Run `run`'s deadline (key `deadline:<run>`): ends it `timed_out` unless it has ended. */
  deadline: { run: number };
  /**
   * One timer per execution (key "lifecycle"). While it runs: a heartbeat that brings an evicted
   * or aborted actor back and replays. Once it has ended: retention, deleting its state.
   */
  lifecycle: Record<string, never>;
  /** A finished child tells its parent (retried until the parent has it). */
  report: Record<string, never>;
  /** A failed or cancelled parent cancels an unfinished child (retried). */
  "cancel-child": {
    binding: string;
    childId: string;
    /** False when the parent was cancelled without compensations (absent in older timers). */
    compensate?: boolean;
  };
  /**
   * A parent with unfinished children asks them how they are (every minute at first, then less
   * often, up to hourly): the safety net under their reports.
   */
  "check-children": { interval: number };
  /** Delivers the index outbox to the ExecutionIndex (tried at once; this is the retry). */
  index: Record<string, never>;
  /** Gives a finished execution's concurrency permit back (retried by the scheduler). */
  permit: {
    binding: string;
    lock: string;
    /** The permit's waiter secret. */
    waiter: string;
    /** Only for a permit taken by a version before waiter secrets: its whole lease. */
    lease: PermitLease | null;
    /** Only for an execution started before waiter secrets: its predictable waiter id. */
    legacy?: string;
  };
};

/** How often a running execution's heartbeat checks that its runner is alive. */
export const HEARTBEAT_MS = 30_000;
