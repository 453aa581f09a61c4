import { BatonError, invalidArgument } from "../foundation/errors.ts";
import {
  StepFailedError,
  type StepOptions,
  type Workflow,
  type WorkflowContext,
  type WorkflowOptions,
  workflow,
} from "./workflow.ts";

/** What an `onFailure` handler of a pipeline receives. */
export interface PipelineFailure<I> {
  executionId: string;
  /** Name and 0-based position of the step that failed. */
  failedStep: string;
  failedIndex: number;
  error: { name: string; message: string; code?: string };
  /** Outputs of the steps that completed, by name. */
  stepOutputs: Record<string, unknown>;
  input: I;
  /** The Execution actor's env (bindings). */
  env: unknown;
}

type PipelineStep = {
  name: string;
  run: (input: never, prev: never, ctx: WorkflowContext) => unknown;
  options: StepOptions;
};

/**
 * A sequential pipeline in the style of `@workkit/workflow`: each step gets the workflow input,
 * the previous step's output and the context; every step is a journaled `step.do` on Baton's
 * engine (retries, replay, compensation). A failure at step k stops the pipeline — no later step
 * runs — runs `onFailure` (journaled, once), and fails the execution with an error that names
 * step k. A pipeline is a workflow: register it on an Execution actor as it is.
 *
 * @example
 * ```ts
 * export const orderFlow = pipeline<{ orderId: string; amount: number }>("order-flow", { retries: { limit: 3, delay: "1s" } })
 *   .step("reserve", async (input) => reserve(input.orderId))
 *   .step("charge", async (input, reservation) => charge(input.amount, reservation.id))
 *   .step("ship", async (input, charge) => ship(input.orderId, charge.id))
 *   .onFailure(async ({ failedStep, stepOutputs }) => {
 *     if (stepOutputs.reserve) await release(stepOutputs.reserve);
 *   });
 * ```
 */
export class Pipeline<N extends string, I, O> implements Workflow<N, I, O> {
  readonly name: N;
  readonly version: number;
  readonly options: Readonly<WorkflowOptions>;
  readonly schema: undefined;
  readonly fn: Workflow<N, I, O>["fn"];
  readonly #steps: readonly PipelineStep[];
  readonly #onFailure: ((failure: PipelineFailure<I>) => unknown) | undefined;

  /** Made by {@link pipeline}; each `.step()` returns a new one. @internal */
  constructor(
    name: N,
    options: WorkflowOptions,
    steps: readonly PipelineStep[],
    onFailure?: (failure: PipelineFailure<I>) => unknown,
  ) {
    const definition = workflow(name, options, async (input: I, step, ctx) => {
      const outputs: Record<string, unknown> = {};
      let prev: unknown;
      for (const [index, s] of this.#steps.entries()) {
        try {
          prev = await step.do(s.name, s.options, () =>
            (s.run as (i: I, p: unknown, c: WorkflowContext) => unknown)(input, prev, ctx),
          );
          outputs[s.name] = prev;
        } catch (cause) {
          const e = cause as { name?: string; message?: string; code?: string };
          const failure: PipelineFailure<I> = {
            executionId: ctx.executionId,
            failedStep: s.name,
            failedIndex: index,
            error: {
              name: e?.name ?? "Error",
              message: e?.message ?? String(cause),
              ...(e?.code ? { code: e.code } : {}),
            },
            stepOutputs: { ...outputs },
            input,
            env: ctx.env,
          };
          if (this.#onFailure) {
            const handler = this.#onFailure;
            try {
              await step.do("$onFailure", { retries: { limit: 2, delay: "1s" } }, async () => {
                await handler(failure);
                return true;
              });
            } catch {
              // Recorded in the journal as a failed "$onFailure" step; the failure that counts
              // is step k's.
            }
          }
          // The execution's error names step k: `error.step` is its name, the message its position.
          throw new StepFailedError(s.name, (cause as { attempt?: number })?.attempt ?? 1, {
            name: failure.error.name,
            code: "STEP_FAILED",
            message: `Pipeline "${name}" failed at step ${index + 1} of ${this.#steps.length} ("${s.name}"): ${failure.error.message}`,
          });
        }
      }
      return prev as O;
    });
    this.name = name;
    this.version = definition.version;
    this.options = definition.options;
    this.schema = undefined;
    this.fn = definition.fn as Workflow<N, I, O>["fn"];
    this.#steps = steps;
    this.#onFailure = onFailure;
  }

  /** Adds a step; it receives the input, the previous step's output, and the context. */
  step<T>(
    name: string,
    run: (input: I, prev: O, ctx: WorkflowContext) => T | Promise<T>,
    options: StepOptions<NoInfer<T>> = {},
  ): Pipeline<N, I, Awaited<T>> {
    if (typeof name !== "string" || name.length === 0)
      invalidArgument("Pipeline step name", "must be a non-empty string", name);
    if (this.#steps.some((s) => s.name === name)) {
      invalidArgument("Pipeline step name", `must be unique in pipeline "${this.name}"`, name);
    }
    if (typeof run !== "function")
      invalidArgument(`Pipeline step "${name}"`, "needs a function", run);
    return new Pipeline<N, I, Awaited<T>>(
      this.name,
      this.options,
      [...this.#steps, { name, run: run as PipelineStep["run"], options: options as StepOptions }],
      this.#onFailure,
    );
  }

  /** Runs once (journaled) when a step fails for good, before the execution fails. */
  onFailure(handler: (failure: PipelineFailure<I>) => unknown): Pipeline<N, I, O> {
    if (typeof handler !== "function") invalidArgument("onFailure", "needs a function", handler);
    return new Pipeline<N, I, O>(this.name, this.options, this.#steps, handler);
  }
}

/**
 * Starts a pipeline (see {@link Pipeline}).
 *
 * @example
 * ```ts
 * const flow = pipeline<{ n: number }>("double-then-add").step("double", (i) => i.n * 2).step("add", (_i, d) => d + 1);
 * ```
 */
export function pipeline<I = unknown, const N extends string = string>(
  name: N,
  options: WorkflowOptions = {},
): Pipeline<N, I, undefined> {
  return new Pipeline<N, I, undefined>(name, options, []);
}

/**
 * Sequential tasks in the style of `durable-execution`'s `sequentialTasks`: each task gets the
 * previous task's output (the first gets the workflow input).
 *
 * @example
 * ```ts
 * const resize = sequence("resize", [
 *   { name: "download", run: (url: string) => fetchImage(url) },
 *   { name: "shrink", run: (image: Uint8Array) => shrink(image) },
 * ]);
 * ```
 */
export function sequence<const N extends string, I>(
  name: N,
  tasks: ReadonlyArray<{ name: string; run: (prev: never) => unknown; options?: StepOptions }>,
  options: WorkflowOptions = {},
): Pipeline<N, I, unknown> {
  if (!Array.isArray(tasks) || tasks.length === 0)
    invalidArgument("tasks", "must be a non-empty array", tasks);
  let flow = new Pipeline<N, I, unknown>(name, options, []);
  tasks.forEach((task, index) => {
    flow = flow.step(
      task.name,
      (input, prev) => (task.run as (p: unknown) => unknown)(index === 0 ? input : prev),
      task.options ?? {},
    );
  });
  return flow;
}

/**
 * A looping task in the style of `durable-execution`'s `loopingTask`: runs `body` as journaled
 * steps (`<name>#0`, `<name>#1` ...) on a state until `until(state)` holds, at most
 * `maxIterations` times (then it fails with `LOOP_LIMIT`); `every` sleeps durably between
 * iterations.
 *
 * @example
 * ```ts
 * const poll = loop("poll-job", {
 *   initial: (input: { jobId: string }) => ({ jobId: input.jobId, done: false }),
 *   body: async (state) => ({ ...state, done: await isDone(state.jobId) }),
 *   until: (state) => state.done,
 *   every: "30 seconds",
 *   maxIterations: 100,
 * });
 * ```
 */
export function loop<const N extends string, I, S>(
  name: N,
  spec: {
    initial: (input: I) => S;
    body: (state: S, iteration: number) => S | Promise<S>;
    until: (state: S) => boolean;
    maxIterations: number;
    every?: import("../foundation/duration.ts").Duration;
    step?: StepOptions;
  },
  options: WorkflowOptions = {},
): Workflow<N, I, S> {
  if (!Number.isSafeInteger(spec?.maxIterations) || spec.maxIterations < 1) {
    invalidArgument("maxIterations", "must be a positive integer", spec?.maxIterations);
  }
  return workflow(name, options, async (input: I, step) => {
    let state = spec.initial(input);
    for (let i = 0; i < spec.maxIterations; i++) {
      if (spec.until(state)) return state;
      if (i > 0 && spec.every !== undefined) await step.sleep(`${name}#${i}:wait`, spec.every);
      const current = state;
      state = await step.do(`${name}#${i}`, spec.step ?? {}, () => spec.body(current, i));
    }
    if (spec.until(state)) return state;
    throw new BatonError(
      "LOOP_LIMIT",
      `Loop "${name}" did not finish in ${spec.maxIterations} iterations.`,
      { maxIterations: spec.maxIterations },
    );
  }) as Workflow<N, I, S>;
}
