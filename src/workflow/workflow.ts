import { type Duration, parseDuration } from "../foundation/duration.ts";
import { BatonError, invalidArgument } from "../foundation/errors.ts";
import type { SqlStatements } from "../foundation/sql-types.ts";
import type { StandardSchemaV1 } from "../foundation/standard-schema.ts";

/**
 * What a transactional step's body gets (`step.transaction`): the Execution actor's own SQLite,
 * inside the transaction that also writes the step's journal entry.
 */
export type TransactionSql = SqlStatements;

/**
 * How a step retries. `limit` counts **retries**, as in Cloudflare Workflows: `limit: 3` means up
 * to 4 attempts; `limit: 0` means one attempt.
 */
export interface RetryPolicy {
  /** Retries after the first attempt. Default 5. */
  limit?: number;
  /**
   * Wait before the first retry. Default "10 seconds". Or a function of the failed attempt and
   * its error that returns the wait before the next attempt (as Cloudflare Workflows' dynamic
   * delay): then `backoff` and `maxDelay` do not apply.
   *
   * @example
   * ```ts
   * // Honour the API's Retry-After; otherwise 5 s more per attempt.
   * retries: { limit: 4, delay: ({ ctx, error }) => (error as { retryAfter?: number }).retryAfter ?? ctx.attempt * 5_000 }
   * ```
   */
  delay?: Duration | RetryDelayFunction;
  /** How the wait grows: constant (delay), linear (delay × n), exponential (delay × 2^(n-1)). Default exponential. */
  backoff?: "constant" | "linear" | "exponential";
  /** Cap on any one wait. Default "1 hour". */
  maxDelay?: Duration;
}

/** A retry delay computed from the attempt that failed (`ctx`) and its `error`. */
export type RetryDelayFunction = (input: {
  ctx: StepAttempt;
  error: Error;
}) => Duration | Promise<Duration>;

/** A step's retry and timeout configuration with the defaults applied, as its attempts see it. */
export interface StepConfig {
  retries: {
    limit: number;
    /** The first retry's wait in ms; absent when the delay is a function. */
    delay?: number;
    backoff: NonNullable<RetryPolicy["backoff"]>;
    maxDelay: number;
  };
  /** The per-attempt timeout in ms, if any. */
  timeout?: number;
}

/** Options of one `step.do`. */
export interface StepOptions<T = unknown> {
  retries?: RetryPolicy;
  /** Per-attempt timeout: an attempt that overruns fails with `STEP_TIMEOUT` and its signal aborts. */
  timeout?: Duration;
  /**
   * Saga compensation: undoes this step's effect. When the execution fails for good, or is
   * cancelled, the compensations of its completed steps run in reverse order, each journaled (it
   * runs once, even across evictions) and retried per `compensationRetries`.
   */
  compensate?: (output: T, attempt: StepAttempt, cause: CompensationCause) => unknown;
  /** Retries of the compensation. Default: 3 retries, 1 second apart. */
  compensationRetries?: RetryPolicy;
  /** Per-attempt timeout of the compensation. Default: none. */
  compensationTimeout?: Duration;
}

/** What a compensation learns of the step it undoes and of why the execution stops. */
export interface CompensationCause {
  /** The failure, or the cancel (a `CANCELLED` BatonError), that made the compensations run. */
  error: Error;
  /** The compensated step's name and occurrence (from 1), as its attempts saw them. */
  step: { name: string; count: number };
  /** The compensated step's configuration. */
  config: StepConfig;
}

/** What a step's function receives on each attempt (a superset of Workflows' step context). */
export interface StepAttempt {
  /** 1 for the first attempt, then 2, 3 ... Recoveries after a crash count as attempts. */
  attempt: number;
  /**
   * The step's name, and how many times a step of this name was called so far in this run,
   * this call included (1 for the first): Cloudflare Workflows' `ctx.step`.
   */
  step: { name: string; count: number };
  /** The step's retry and timeout configuration, defaults applied. */
  config: StepConfig;
  /**
   * Stable for this step occurrence across retries, replays, evictions and restarts; unique per
   * (execution, step name, occurrence). Pass it to payment and messaging APIs.
   */
  idempotencyKey: string;
  /** Aborted when the attempt times out or the execution is cancelled. */
  signal: AbortSignal;
  /**
   * An unguessable secret of this step occurrence: the same across retries, replays, evictions
   * and restarts (like `idempotencyKey`), and derived from the execution's own secret, which is
   * never journaled or shown. Use it where a predictable key
   * would grant something: a lock's waiter id, a one-time callback token. It is not journaled
   * unless you return it. With `label`, the execution's secret for that label instead (another
   * step's secret is `secret(itsIdempotencyKey)`).
   *
   * @example
   * ```ts
   * const reserved = await step.do("reserve", async (attempt) => {
   *   const got = await locks(env.Locks).acquire("sku-7", {
   *     owner: "reserve", ttl: "1m", wait: "30s", waiterId: await attempt.secret(),
   *   });
   *   return got.acquired ? got.lease.fence : null; // journal the fence, never the lease's token
   * });
   * ```
   */
  secret(label?: string): Promise<string>;
  /** The error of the previous attempt, if this is a retry. */
  previousError?: StepError;
}

/** A step's error as journaled and reported. */
export interface StepError {
  name: string;
  message: string;
  /** A Baton code (e.g. `STEP_TIMEOUT`), or the error's own `code` if it had a string one. */
  code?: string;
  /** True when it stopped retries at once. */
  nonRetryable?: boolean;
}

/** An event delivered to `step.waitForEvent`. */
export interface WorkflowEvent<T = unknown> {
  type: string;
  payload: T;
  /** When the execution received it (ms since the epoch). */
  receivedAt: number;
}

/** Options of `step.waitForEvent`. */
export interface WaitOptions {
  /** The event type to wait for. */
  type: string;
  /** Give up after this long: the wait throws `EVENT_TIMEOUT`. Default: wait forever. */
  timeout?: Duration;
}

/** The step API a workflow receives. It mirrors Cloudflare Workflows' `step`. */
export interface Step {
  /**
   * Runs `fn` at least once and journals its result exactly once; on replay the journaled result
   * is returned without running `fn`. Failed attempts are retried by alarm timers.
   */
  do<T>(name: string, fn: (attempt: StepAttempt) => T | Promise<T>): Promise<T>;
  do<T>(
    name: string,
    options: StepOptions<NoInfer<T>>,
    fn: (attempt: StepAttempt) => T | Promise<T>,
  ): Promise<T>;
  /** Durable sleep: survives eviction, never wakes early. */
  sleep(name: string, duration: Duration): Promise<void>;
  /** Durable sleep until a time. */
  sleepUntil(name: string, until: Date | number): Promise<void>;
  /**
   * Waits for an event of `type` sent with `sendEvent`. Events sent before the wait are buffered
   * and consumed oldest first; each event resumes at most one wait, once.
   *
   * @throws BatonError `EVENT_TIMEOUT` when `timeout` passes first.
   */
  waitForEvent<T = unknown>(name: string, options: WaitOptions): Promise<WorkflowEvent<T>>;
  /**
   * Marks a checkpoint of this execution: its journal up to here. A new execution can be forked
   * from it (`executions(ns).fork(...)`): it replays the journal up to the checkpoint without
   * running those step bodies, then runs on with the current code.
   */
  checkpoint(name: string): Promise<void>;
  /**
   * Changes a workflow's code safely while executions of the old code still run (a patch, as
   * in Temporal). Resolves `true` where the execution reaches this call on new code (it
   * journals a marker in this place) and `false` when it replays a journal recorded before the
   * patch existed (another step holds this place). The answer is journaled: it never changes
   * for an execution, and later calls with the same id give the first call's answer. Retire a patch in three phases: (1) branch on `patched(id)`; (2) once no
   * execution that started before the patch runs, keep only the new code and call
   * `deprecatePatch(id)` in its place; (3) once no execution that recorded the marker runs,
   * remove that call. See docs/workflows.md (Patches).
   *
   * @example
   * ```ts
   * if (await step.patched("send-sms")) {
   *   await step.do("notify", () => sms(input.phone));
   * } else {
   *   await step.do("notify", () => email(input.address));
   * }
   * ```
   */
  patched(id: string): Promise<boolean>;
  /**
   * Phase 2 of retiring a patch: stands where `step.patched(id)` stood once every execution that
   * started before the patch has ended. A replay of an execution that recorded the marker takes
   * it here; a new execution records nothing, so the call can be removed (phase 3) once the
   * executions that recorded the marker have ended.
   *
   * @example
   * ```ts
   * await step.deprecatePatch("send-sms");
   * await step.do("notify", () => sms(input.phone));
   * ```
   */
  deprecatePatch(id: string): Promise<void>;
  /**
   * A transactional step: `body` runs synchronously against this Execution actor's own SQLite
   * (tables your Execution actor subclass creates in `migrations`), inside one transaction with
   * the step's journal entry. Its writes and its journal entry commit together or not at all, so
   * its effect happens exactly once, with no idempotency key; on replay its journaled result is
   * returned without running it. A body that throws rolls back and fails the step (no retry); a
   * body that returns a promise is refused with `ASYNC_TRANSACTION`. Baton's own tables
   * (`_baton_*`) are out of its reach.
   *
   * @example
   * ```ts
   * const balance = await step.transaction("credit", (sql) => {
   *   sql.run("UPDATE accounts SET balance = balance + ? WHERE id = ?", input.amount, input.account);
   *   return sql.value<number>("SELECT balance FROM accounts WHERE id = ?", input.account);
   * });
   * ```
   */
  transaction<T>(name: string, body: (sql: TransactionSql) => T): Promise<T>;
  /**
   * Runs another registered workflow as a child execution (its own Execution actor, id
   * `<this id>/<name>/<occurrence>`, so a replay never starts it twice) and returns its output;
   * a failed child throws its error. The child reports back when it ends. The parent waits for
   * every child it started before it completes; failing or cancelling the parent cancels its
   * unfinished children.
   */
  child<W extends AnyWorkflow>(name: string, workflow: W, input: InputOf<W>): Promise<OutputOf<W>>;
  /**
   * Fans out to many children at once and returns every outcome, in declaration order, whether
   * it succeeded or not (allSettled semantics): `{ ok: true, value }` or `{ ok: false, error }`.
   */
  children<W extends AnyWorkflow>(
    name: string,
    runs: ReadonlyArray<{ workflow: W; input: InputOf<W> }>,
  ): Promise<Array<ChildResult<OutputOf<W>>>>;
}

/** The outcome of one child execution. */
export type ChildResult<T> =
  | { ok: true; id: string; value: T }
  | {
      ok: false;
      id: string;
      error: { code: string; message: string; name: string; step: string | null };
    };

/** What a workflow function receives besides its input and the step API. */
export interface WorkflowContext<Env = unknown> {
  executionId: string;
  workflow: string;
  version: number;
  /** The Execution actor's env (bindings). */
  env: Env;
  /** When the execution was created (ms since the epoch): stored once, the same on every replay. */
  createdAt: number;
  /** The Execution actor's `ctx.waitUntil` (work that is not a step: logs, metrics). */
  waitUntil(promise: Promise<unknown>): void;
}

/** Options of a workflow definition. */
export interface WorkflowOptions {
  /** Version of the code; an execution records the version it started on. Default 1. */
  version?: number;
  /** Defaults for every step's retries. */
  retries?: RetryPolicy;
  /** Default per-attempt timeout of every step. */
  stepTimeout?: Duration;
  /**
   * A deadline for every execution of this workflow (a start's `timeout` overrides it): one not
   * ended this long after it started ends `timed_out` with `EXECUTION_TIMEOUT`, compensated as
   * on cancel. Default: none.
   */
  executionTimeout?: Duration;
  /** How long a finished execution's state is kept. Default "7 days". */
  retention?: Duration;
  /**
   * At most `limit` running executions of this workflow per key (for example per customer); the
   * rest wait in start order. Built on a Lock actor semaphore (bound in the Execution actor's env
   * under `binding`): an execution takes a permit before its first step and returns it when it
   * ends. The permit is a lease of `ttl` (default 24 hours, the maximum): an execution that runs
   * longer loses it, and the next waiting execution starts.
   */
  concurrency?: {
    limit: number;
    /** The key; default: one key for all executions of the workflow. */
    key?: (input: never) => string;
    /** Name of the Lock actor namespace binding in the Execution actor's env (a Durable Object binding; a service binding is not supported here). */
    binding: string;
    ttl?: Duration;
    /** How long an execution waits for a permit per attempt before retrying (default 1 hour). */
    wait?: Duration;
  };
}

/** A workflow's function. */
export type WorkflowFunction<I, O, Env = unknown> = (
  input: I,
  step: Step,
  ctx: WorkflowContext<Env>,
) => Promise<O>;

declare const types: unique symbol;

/** A workflow definition: a name, a version, options and a function. Register it on an Execution actor. */
export interface Workflow<N extends string = string, I = unknown, O = unknown> {
  readonly name: N;
  readonly version: number;
  readonly options: Readonly<WorkflowOptions>;
  readonly schema: StandardSchemaV1 | undefined;
  readonly fn: WorkflowFunction<never, O, never>;
  /** Type-level only: the input `start` accepts and the output `result` gives. */
  readonly [types]?: { input: I; output: O };
}

/** The static method through which a {@link WorkflowSource} gives its workflow definition. */
export const asWorkflow: unique symbol = Symbol.for("baton.asWorkflow") as never;

/**
 * Something the registry turns into a workflow: a class with a static `[asWorkflow]()`, such as
 * Baton's `WorkflowEntrypoint` subclasses (Cloudflare Workflows' class shape).
 */
export interface WorkflowSource {
  [asWorkflow](): AnyWorkflow;
}

/** Any workflow. */
// biome-ignore lint/suspicious/noExplicitAny: variance escape for heterogeneous registries.
export type AnyWorkflow = Workflow<string, any, any>;
/** The input a workflow's `start` accepts. */
export type InputOf<W> = W extends Workflow<string, infer I, unknown> ? I : never;
/** The output a workflow's execution produces. */
export type OutputOf<W> = W extends Workflow<string, unknown, infer O> ? O : never;

const NAME = /^[A-Za-z0-9][\w.:-]{0,127}$/;

/**
 * Defines a workflow. Register it on your Execution actor; start it with the typed client.
 *
 * @example
 * ```ts
 * export const greet = workflow("greet", async (input: { name: string }, step) => {
 *   const hello = await step.do("hello", async ({ idempotencyKey }) => `Hello, ${input.name}`);
 *   await step.sleep("pause", "1 second");
 *   const approval = await step.waitForEvent<{ ok: boolean }>("approval", { type: "approve", timeout: "1 hour" });
 *   return { hello, approved: approval.payload.ok };
 * });
 *
 * // With input validated by any Standard Schema validator (zod here), options and a version:
 * export const charge = workflow(
 *   "charge",
 *   { input: z.object({ amount: z.number().positive() }), version: 2, retries: { limit: 3, delay: "1s" } },
 *   async ({ amount }, step) => step.do("charge", () => pay(amount)),
 * );
 * ```
 */
export function workflow<const N extends string, I, O>(
  name: N,
  fn: WorkflowFunction<I, O>,
): Workflow<N, I, O>;
export function workflow<const N extends string, S extends StandardSchemaV1, O>(
  name: N,
  options: WorkflowOptions & { input: S },
  fn: WorkflowFunction<StandardSchemaV1.InferOutput<S>, O>,
): Workflow<N, StandardSchemaV1.InferInput<S>, O>;
export function workflow<const N extends string, I, O>(
  name: N,
  options: WorkflowOptions & { input?: undefined },
  fn: WorkflowFunction<I, O>,
): Workflow<N, I, O>;
export function workflow(
  name: string,
  optionsOrFn:
    | (WorkflowOptions & { input?: StandardSchemaV1 })
    | WorkflowFunction<unknown, unknown>,
  maybeFn?: WorkflowFunction<unknown, unknown>,
): AnyWorkflow {
  const fn = typeof optionsOrFn === "function" ? optionsOrFn : maybeFn;
  const { input: schema, ...options } = typeof optionsOrFn === "function" ? {} : optionsOrFn;
  if (typeof name !== "string" || !NAME.test(name)) {
    invalidArgument(
      "Workflow name",
      "must be 1-128 characters of letters, digits and . _ : - (starting with a letter or digit)",
      name,
    );
  }
  if (typeof fn !== "function") invalidArgument(`Workflow "${name}"`, "needs a function", fn);
  const version = options.version ?? 1;
  if (!Number.isSafeInteger(version) || version < 1) {
    invalidArgument(`Workflow "${name}" version`, "must be a positive integer", version);
  }
  if (options.executionTimeout !== undefined) {
    // A bad deadline is found where it is written, not at the first start.
    const ms = parseDuration(options.executionTimeout);
    if (ms <= 0 || ms > 365 * 86_400_000) {
      invalidArgument(
        `Workflow "${name}" executionTimeout`,
        "must be more than 0 and at most 365 days",
        options.executionTimeout,
      );
    }
  }
  if (schema !== undefined && typeof schema?.["~standard"]?.validate !== "function") {
    invalidArgument(
      `Workflow "${name}" input`,
      "must be a Standard Schema (zod, valibot ...)",
      schema,
    );
  }
  return Object.freeze({ name, version, options: Object.freeze(options), schema, fn: fn as never });
}

/**
 * An error that stops a step's retries at once. Any error with an own property
 * `nonRetryable: true` (or `retryable: false`) does the same, and so does any error whose class
 * is named `NonRetryableError` (Cloudflare's own, from `cloudflare:workflows`, included). The
 * constructor takes Cloudflare's arguments too: `new NonRetryableError(message, name?)`.
 *
 * @example
 * ```ts
 * await step.do("charge", async () => {
 *   const res = await fetch(url, { method: "POST" });
 *   if (res.status === 402) throw new NonRetryableError("card declined");
 *   if (!res.ok) throw new Error(`HTTP ${res.status}`); // retried
 * });
 * ```
 */
export class NonRetryableError extends Error {
  readonly nonRetryable = true as const;
  constructor(message: string, nameOrOptions?: string | ErrorOptions) {
    super(message, typeof nameOrOptions === "object" ? nameOrOptions : undefined);
    this.name = typeof nameOrOptions === "string" ? nameOrOptions : "NonRetryableError";
  }
}

/**
 * Thrown into the workflow when a step has failed for good (the workflow may catch it): the
 * step's error with its `code`, the failed `step` and the `attempt` it failed on.
 */
export class StepFailedError extends Error {
  readonly code: string;
  readonly step: string;
  readonly attempt: number;
  constructor(step: string, attempt: number, error: StepError) {
    super(error.message);
    this.name = error.name;
    this.code = error.code ?? "STEP_FAILED";
    this.step = step;
    this.attempt = attempt;
  }
}

/**
 * True if `error` asks not to be retried: a `nonRetryable: true` or `retryable: false` property,
 * or a class (or name) `NonRetryableError`, as Cloudflare's `cloudflare:workflows` one is.
 */
export function isNonRetryable(error: unknown): boolean {
  if (typeof error !== "object" || error === null) return false;
  const e = error as {
    nonRetryable?: unknown;
    retryable?: unknown;
    name?: unknown;
    message?: unknown;
  };
  if (e.nonRetryable === true || e.retryable === false) return true;
  if (e.name === "NonRetryableError") return true;
  // Across RPC an error's name may arrive as a prefix of its message (as Workflows checks too).
  if (typeof e.message === "string" && e.message.startsWith("NonRetryableError")) return true;
  // Cloudflare's class takes a custom name as its second argument: look at the class too.
  for (let p = Object.getPrototypeOf(e); p && p !== Error.prototype; p = Object.getPrototypeOf(p)) {
    if ((p as { constructor?: { name?: unknown } }).constructor?.name === "NonRetryableError") {
      return true;
    }
  }
  return false;
}

/** The delay before retry number `retry` (1-based) under `policy`, in ms. */
export function retryDelay(
  policy: Required<Pick<RetryPolicy, "backoff">> & { delay: number; maxDelay: number },
  retry: number,
): number {
  const factor =
    policy.backoff === "constant" ? 1 : policy.backoff === "linear" ? retry : 2 ** (retry - 1);
  return Math.min(policy.delay * factor, policy.maxDelay);
}

/**
 * A registry of workflows by name and version (for old executions to finish on old code, keep
 * the old version registered next to the new one).
 */
export class WorkflowRegistry {
  readonly #byName = new Map<string, AnyWorkflow[]>();

  constructor(entries: readonly (AnyWorkflow | WorkflowSource)[]) {
    const workflows = entries.map((entry) =>
      typeof (entry as Partial<WorkflowSource>)?.[asWorkflow] === "function"
        ? (entry as WorkflowSource)[asWorkflow]()
        : (entry as AnyWorkflow),
    );
    for (const wf of workflows) {
      if (typeof wf?.name !== "string" || typeof wf.fn !== "function") {
        throw new BatonError(
          "INVALID_ARGUMENT",
          "Every registered workflow must come from workflow(name, fn), or be a class that extends WorkflowEntrypoint.",
        );
      }
      const list = this.#byName.get(wf.name) ?? [];
      if (list.some((w) => w.version === wf.version)) {
        throw new BatonError(
          "INVALID_ARGUMENT",
          `Workflow "${wf.name}" version ${wf.version} is registered twice.`,
          { workflow: wf.name, version: wf.version },
        );
      }
      list.push(wf);
      list.sort((a, b) => b.version - a.version);
      this.#byName.set(wf.name, list);
    }
  }

  /** The newest version of `name`, or a specific version. */
  get(name: string, version?: number): AnyWorkflow | undefined {
    const list = this.#byName.get(name);
    if (!list) return undefined;
    return version === undefined ? list[0] : list.find((w) => w.version === version);
  }

  /** Registered names. */
  names(): string[] {
    return [...this.#byName.keys()].sort();
  }
}
