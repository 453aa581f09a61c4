/**
 * The seam of `baton/testing`: hooks the test kit installs, in the test's own isolate, for the
 * executions it drives — a frozen clock, step mocks, instant sleeps, a record of status changes,
 * replay-only runs. Production never installs any: the registry stays empty, every lookup
 * returns `undefined` at once, and the only module that fills it (`baton/testing`) imports
 * `cloudflare:test`, which exists only inside the Workers vitest integration. The actors'
 * Durable Objects run in the test's isolate there, so the kit and the actors share this module.
 *
 * Hooks are keyed by execution id; an execution also takes the hooks of the execution whose id
 * its own id extends (`<parent>/<step>/<n>`: a child), so a parent and its children share one
 * clock.
 */

/** What a step's attempt does instead of (or before) its body, as the kit decides. */
export type StepOverride =
  | { kind: "return"; value: unknown }
  | { kind: "throw"; error: unknown }
  /** The actor dies during the attempt: before its body runs, or after (its result unjournaled). */
  | { kind: "crash"; after: boolean };

/** The hooks of one execution (and its children). */
export interface TestHooks {
  /** The execution's clock (ms since the epoch) while the kit holds it; moved only by the kit. */
  clock?: number;
  /** What attempt `attempt` of step `name` (its `occurrence`) does, or undefined: run the body. */
  step?(name: string, occurrence: number, attempt: number): StepOverride | undefined;
  /** Tries of each transactional step (`<name>#<occurrence>`), which journal no attempts. */
  transactionTries?: Map<string, number>;
  /** Sleeps (`step.sleep`, `sleepUntil`) end at once. */
  instantSleeps?: boolean;
  /** Status changes, as they happen: `{ execution, from, to, event, at }`. */
  transitions?: Array<{ execution: string; from: string; to: string; event: string; at: number }>;
  /**
   * Replay only (a replay test): a step call past the end of the imported journal parks the run
   * instead of running the step, and `replayEnded` records its position.
   */
  replayOnly?: boolean;
  replayEnded?: number;
  /** The steps the code called past the end of the journal, in call order. */
  replayCalls?: Array<{ name: string; kind: string }>;
  /** Step calls the replay has made (it is still moving while this grows). */
  replayActivity?: number;
  /** The first call made where the recording has a compensation, while the run was not failing. */
  replayCompensated?: { seq: number; name: string; kind: string; recorded: string };
  /**
   * The workflow (a `workflow()` definition) a replay test runs in place of the registered one
   * of the same name and version: the code under test (another version runs the registered one).
   */
  workflow?: unknown;
}

/**
 * The key of the Execution actor's method that gives the kit its inside view (through
 * `runInDurableObject`). A symbol: Workers RPC calls methods by string name only, so no stub — in
 * a test or in production — can call it; only code in the actor's own isolate holding this
 * symbol can.
 */
export const testAccess: unique symbol = Symbol("baton/testing access");

/** What the kit reads and does inside an Execution actor. */
export interface TestAccess {
  /**
   * Whether a run is live in the actor, its work in flight (bodies running, outputs being read
   * back), its next timer, and its clock.
   */
  probe(): { live: boolean; busy: number; nextDue: number | null; now: number };
  /** Runs the timers due on the actor's clock. */
  runDue(): Promise<void>;
  /**
   * Creates this (new) execution from a recorded journal, at the recorded version, and starts
   * its run: a replay test. The journal's types are the engine's (a fork snapshot).
   */
  importRecording(snapshot: never): Promise<unknown>;
}

const registry = new Map<string, TestHooks>();

/** The hooks of execution `id` (or of the execution it is a child of), if the kit set any. */
export function testHooks(id: string | undefined): TestHooks | undefined {
  if (registry.size === 0 || id === undefined) return undefined;
  for (let key = id; ; ) {
    const hooks = registry.get(key);
    if (hooks) return hooks;
    const cut = key.lastIndexOf("/");
    if (cut <= 0) return undefined;
    key = key.slice(0, cut);
  }
}

/**
 * Installs the hooks of execution `id`. For `baton/testing` only.
 *
 * @throws Error if `id` has hooks already (two tests driving one execution would share a clock).
 */
export function installTestHooks(id: string, hooks: TestHooks): TestHooks {
  if (registry.has(id)) {
    throw new Error(
      `baton/testing: execution "${id}" is under test already; dispose() it first (a replay keeps its id for good), or use another id.`,
    );
  }
  registry.set(id, hooks);
  return hooks;
}

/** Removes the hooks of execution `id`, if they are still `hooks`. For `baton/testing` only. */
export function removeTestHooks(id: string, hooks: TestHooks): void {
  if (registry.get(id) === hooks) registry.delete(id);
}
