import type { CompensationCause, StepAttempt, StepConfig } from "../workflow/workflow.ts";
import type { ResolvedPolicy } from "./retry.ts";

/** A compensation registered by a completed step of this run (saga), with its journal position. */
export interface Compensation {
  seq: number;
  name: string;
  /** The step's occurrence of its name, from 1 (Workflows' `ctx.step.count`). */
  count: number;
  /** The step's own configuration. */
  config: StepConfig;
  output: unknown;
  fn: CompensationFn;
  policy: ResolvedPolicy;
  /** The compensation's per-attempt timeout in ms, if any. */
  timeoutMs?: number | undefined;
}

/** A compensation's body. */
export type CompensationFn = (
  output: unknown,
  attempt: StepAttempt,
  cause: CompensationCause,
) => unknown;

/**
 * One pass of the workflow function over the journal. A run is replaced, never revived: once it
 * is dead (the execution ended, was cancelled or restarted, or the actor lost it), every step
 * call of it parks forever, so stale code never writes to the journal again.
 */
export class Run {
  dead = false;
  /** The next journal position in call order. */
  seq = 0;
  /** How often each step name was called so far (the occurrence in idempotency keys). */
  readonly occurrences = new Map<string, number>();
  readonly controllers = new Set<AbortController>();
  /** Highest journaled seq when the run started: steps above it are new (no lookup needed). */
  readonly journaled: number;
  /** The latest step started by this run. */
  current: string | null = null;
  /** Compensations of this run's completed steps (saga), with their journal positions. */
  readonly compensations: Compensation[] = [];
  /**
   * The run is failing or cancelling: no new step starts and no retry is attempted (steps in the
   * journal still replay), so the compensations see a settled set of completed steps.
   */
  stopping = false;
  /** Step bodies running and journaled outputs being read back, now. */
  busy = 0;
  readonly #idle: Array<() => void> = [];
  /** Child step calls of this run, awaited before it may complete (structured concurrency). */
  readonly children = new Set<Promise<unknown>>();
  /** Cancel mode: replay to the first unfinished step, then compensate and end. */
  readonly cancelling: boolean;
  /** Resolves when a cancel-mode replay reaches its first unfinished step. */
  readonly frontier: Promise<void>;
  reachFrontier: () => void = () => {};

  constructor(journaled: number, cancelling = false) {
    this.journaled = journaled;
    this.cancelling = cancelling;
    this.frontier = new Promise<void>((resolve) => {
      this.reachFrontier = resolve;
    });
  }

  kill(reason: unknown): void {
    this.dead = true;
    for (const controller of this.controllers) controller.abort(reason);
    this.controllers.clear();
  }

  /** Stops new steps and aborts the bodies in flight (they settle, then compensation runs). */
  stop(reason: unknown): void {
    this.stopping = true;
    for (const controller of this.controllers) controller.abort(reason);
  }

  /** Counts work that settles soon (a body, a read-back) until it has settled. */
  track<T>(work: Promise<T>): Promise<T> {
    this.busy++;
    return work.finally(this.#done);
  }

  readonly #done = (): void => {
    if (--this.busy === 0 && this.#idle.length > 0) {
      for (const resolve of this.#idle.splice(0)) resolve();
    }
  };

  /** Resolves when no body runs and no journaled output is being read back. */
  async quiesce(): Promise<void> {
    for (;;) {
      if (this.busy > 0) await new Promise<void>((resolve) => this.#idle.push(resolve));
      // A macrotask turn: replayed steps resolve and their callers go on to their next call.
      await new Promise<void>((resolve) => setTimeout(resolve, 0));
      if (this.busy === 0 || this.dead) return;
    }
  }
}

/** A promise that never settles: what a step call of a dead (or parked) run returns. */
export const never = <T>(): Promise<T> => new Promise<T>(() => {});
export const noop = (): void => {};
