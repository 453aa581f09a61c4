import type { CancelOptions, RestartOptions } from "../../actors/execution/control.ts";
import type { ExecutionActor } from "../../actors/execution-actor.ts";
import type {
  EventReceipt,
  ExecutionInfo,
  ExecutionResult,
  JournalEntry,
  StartOptions,
  Value,
} from "../execution/types.ts";
import type { Duration } from "../foundation/duration.ts";
import { BatonError, checkId, invalidArgument } from "../foundation/errors.ts";
import type { AnyWorkflow, InputOf, OutputOf, WorkflowSource } from "../workflow/workflow.ts";

/** The workflows an Execution actor class registers (from its `workflows` list). */
export type WorkflowsOf<A> = A extends { readonly workflows: ReadonlyArray<infer W> }
  ? W extends AnyWorkflow
    ? W
    : never
  : never;

/** The workflow of a registry with a given name. */
export type WorkflowNamed<W extends AnyWorkflow, N extends string> = W extends { readonly name: N }
  ? W
  : never;

/** Any Execution actor, whatever its env and workflows (what the clients accept). */
export type AnyExecutionActor = ExecutionActor<never>;
type Stub = DurableObjectStub<AnyExecutionActor>;

/**
 * A handle on one execution: its id and typed methods. Get one from
 * {@link ExecutionsClient.start} or {@link ExecutionsClient.get}.
 */
export class ExecutionHandle<O = Value> {
  /** The execution id. */
  readonly id: string;
  readonly #connect: () => Stub;

  /** `connect` makes a stub per call, so a handle outlives a reset of the actor. @internal */
  constructor(connect: () => Stub, id: string) {
    this.#connect = connect;
    this.id = id;
  }

  /** Status, current step, step count, timestamps, attempts. */
  status(): Promise<ExecutionInfo> {
    return this.#connect().status() as Promise<ExecutionInfo>;
  }

  /**
   * Waits for the outcome: `{ ok: true, value }` or `{ ok: false, error: { code, message, step, attempt } }`.
   *
   * @throws BatonError `RESULT_TIMEOUT` if still unfinished after `timeout`.
   */
  result(options: { timeout?: Duration } = {}): Promise<ExecutionResult<O>> {
    return this.#connect().result(options) as Promise<ExecutionResult<O>>;
  }

  /** The per-step audit trail (pages of up to 1000 entries from position `from`). */
  journal(options: { from?: number; limit?: number } = {}): Promise<JournalEntry[]> {
    return this.#connect().journal(options) as Promise<JournalEntry[]>;
  }

  /** Sends an event to the execution's `waitForEvent` of that type (buffered if none waits yet). */
  sendEvent(
    type: string,
    payload?: Value,
    options: { dedupeKey?: string } = {},
  ): Promise<EventReceipt> {
    return this.#connect().sendEvent(type, payload, options) as Promise<EventReceipt>;
  }

  pause(): Promise<ExecutionInfo> {
    return this.#connect().pause() as Promise<ExecutionInfo>;
  }

  resume(): Promise<ExecutionInfo> {
    return this.#connect().resume() as Promise<ExecutionInfo>;
  }

  /**
   * Cancels: in-flight steps see their abort signal, and the compensations of completed steps
   * run (unless `compensate: false`); idempotent.
   */
  cancel(options: CancelOptions = {}): Promise<ExecutionInfo> {
    return this.#connect().cancel(options) as Promise<ExecutionInfo>;
  }

  /**
   * Runs the workflow again with the same input: from the start, or `from` a step (the steps
   * before it keep their outcomes).
   *
   * @example
   * ```ts
   * await run.restart({ from: { name: "charge" } }); // "lookup" before it is not run again
   * ```
   * @throws BatonError `STEP_NOT_FOUND` when `from` names no step of the journal.
   */
  restart(options: RestartOptions = {}): Promise<ExecutionInfo> {
    return this.#connect().restart(options) as Promise<ExecutionInfo>;
  }

  /** Deletes the execution and its stored state now (a running one is cancelled first, without compensations). */
  delete(): Promise<void> {
    return this.#connect().delete() as Promise<void>;
  }
}

/**
 * A handle on a tracked execution: one that outside code runs and reports (the seed
 * `ExecutionState` API), with the same status, journal and result views.
 */
export class TrackedExecution {
  readonly id: string;
  readonly #connect: () => Stub;

  /** `connect` makes a stub per call, so a handle outlives a reset of the actor. @internal */
  constructor(connect: () => Stub, id: string) {
    this.#connect = connect;
    this.id = id;
  }

  /** Starts tracking (idempotent for the same name and total). */
  start(
    name: string,
    options: { totalSteps?: number; retention?: Duration } = {},
  ): Promise<ExecutionInfo> {
    return this.#connect().track(name, { ...options, id: this.id }) as Promise<ExecutionInfo>;
  }

  /** A step finished. */
  progress(step: string, options: { index?: number; output?: Value } = {}): Promise<ExecutionInfo> {
    return this.#connect().progress(step, options) as Promise<ExecutionInfo>;
  }

  complete(result?: Value): Promise<ExecutionInfo> {
    return this.#connect().complete(result) as Promise<ExecutionInfo>;
  }

  fail(error: string | { message: string; code?: string }): Promise<ExecutionInfo> {
    return this.#connect().fail(error) as Promise<ExecutionInfo>;
  }

  cancel(): Promise<ExecutionInfo> {
    return this.#connect().cancel() as Promise<ExecutionInfo>;
  }

  status(): Promise<ExecutionInfo> {
    return this.#connect().status() as Promise<ExecutionInfo>;
  }

  result(options: { timeout?: Duration } = {}): Promise<ExecutionResult> {
    return this.#connect().result(options) as Promise<ExecutionResult>;
  }

  journal(): Promise<JournalEntry[]> {
    return this.#connect().journal() as Promise<JournalEntry[]>;
  }
}

/**
 * The typed client of an Execution actor namespace. Only registered workflows can be started,
 * with their input type; results carry their output type.
 */
export class ExecutionsClient<W extends AnyWorkflow> {
  readonly #connect: (id: string) => Stub;

  /** `target`: an Execution actor namespace, or a `BatonService` reached by a service binding. */
  constructor(target: DurableObjectNamespace<AnyExecutionActor> | ExecutionService) {
    this.#connect = connector<Stub>(target, "execution");
  }

  /**
   * Starts a registered workflow (by definition or by name) as execution `options.id`. Idempotent
   * per id: the same workflow and input return the same execution.
   */
  start<F extends W>(
    workflow: F,
    input: InputOf<F>,
    options: StartOptions,
  ): Promise<ExecutionHandle<OutputOf<F>>>;
  start<N extends W["name"]>(
    workflow: N,
    input: InputOf<WorkflowNamed<W, N>>,
    options: StartOptions,
  ): Promise<ExecutionHandle<OutputOf<WorkflowNamed<W, N>>>>;
  async start(
    workflow: AnyWorkflow | string,
    input: unknown,
    options: StartOptions,
  ): Promise<ExecutionHandle<never>> {
    const name = typeof workflow === "string" ? workflow : workflow?.name;
    const stub = this.#stub(options?.id);
    const connect = () => this.#stub(options.id);
    await stub.start(name, input as Value, options);
    return new ExecutionHandle(connect, options.id);
  }

  /**
   * Starts a registered workflow and waits for its result in one round trip (as `start` then
   * `result`). Idempotent per id like `start`: running it again returns the same execution's result.
   * `timeout` is the execution's deadline ({@link StartOptions.timeout}): the answer comes by then,
   * a timed-out one as `{ ok: false, error: { code: "EXECUTION_TIMEOUT" } }`, and nothing is left
   * running. (For an execution started earlier without a deadline it only bounds the wait:
   * `RESULT_TIMEOUT`.)
   *
   * @example
   * ```ts
   * const result = await executions(env.Executions).execute(greet, { name: "Ada" }, { id: "greet-2", timeout: "30s" });
   * ```
   */
  execute<F extends W>(
    workflow: F,
    input: InputOf<F>,
    options: StartOptions & { timeout?: Duration },
  ): Promise<ExecutionResult<OutputOf<F>>>;
  execute<N extends W["name"]>(
    workflow: N,
    input: InputOf<WorkflowNamed<W, N>>,
    options: StartOptions & { timeout?: Duration },
  ): Promise<ExecutionResult<OutputOf<WorkflowNamed<W, N>>>>;
  execute(
    workflow: AnyWorkflow | string,
    input: unknown,
    options: StartOptions & { timeout?: Duration },
  ): Promise<ExecutionResult<never>> {
    const name = typeof workflow === "string" ? workflow : workflow?.name;
    return this.#stub(options?.id).execute(name, input as Value, options) as Promise<
      ExecutionResult<never>
    >;
  }

  /**
   * Forks a new execution (`options.id`) from checkpoint `checkpoint` of execution `from`: it
   * replays `from`'s journal up to the checkpoint without running those step bodies, then runs
   * on with the newest registered version of the workflow. `from` is unaffected.
   *
   * @example
   * ```ts
   * // in the workflow: await step.checkpoint("after-import");
   * const retry = await executions(env.Executions).fork(report, "run-41", "after-import", { id: "run-41b" });
   * ```
   * @throws BatonError `CHECKPOINT_NOT_FOUND`, `EXECUTION_NOT_FOUND` (source gone), `EXECUTION_CONFLICT`.
   */
  async fork<F extends W>(
    workflow: F,
    from: string,
    checkpoint: string,
    options: StartOptions,
  ): Promise<ExecutionHandle<OutputOf<F>>> {
    const snapshot = await this.#stub(from).exportCheckpoint(checkpoint);
    if (snapshot.workflow !== workflow?.name) {
      throw new BatonError(
        "INVALID_ARGUMENT",
        `Execution "${from}" runs workflow "${snapshot.workflow}", not "${String(workflow?.name)}".`,
        { workflow: snapshot.workflow },
      );
    }
    await this.#stub(options?.id).importFork(snapshot, { ...options, from });
    return new ExecutionHandle(() => this.#stub(options.id), options.id);
  }

  /** A handle on an existing execution (typed by its workflow when given). */
  get<F extends W>(workflow: F, id: string): ExecutionHandle<OutputOf<F>>;
  get(id: string): ExecutionHandle;
  get(workflowOrId: AnyWorkflow | string, maybeId?: string): ExecutionHandle<never> {
    const id = checkId(typeof workflowOrId === "string" ? workflowOrId : maybeId, "Execution id");
    return new ExecutionHandle(() => this.#stub(id), id);
  }

  /** A handle to report a tracked execution. */
  tracked(id: string): TrackedExecution {
    checkId(id, "Execution id");
    return new TrackedExecution(() => this.#stub(id), id);
  }

  /** The execution's stub; a malformed id is refused before it can reach another object. */
  #stub(id: string): Stub {
    return this.#connect(checkId(id, "Execution id"));
  }
}

/**
 * The typed client for an Execution actor namespace.
 *
 * @example
 * ```ts
 * const run = await executions(env.Executions).start(greet, { name: "Ada" }, { id: "greet-1" });
 * await run.sendEvent("approve", { ok: true });
 * const result = await run.result(); // { ok: true, value } | { ok: false, error }
 * if (result.ok) console.log(result.value.hello); // typed from greet's return type
 * ```
 */
export function executions<
  A extends Rpc.DurableObjectBranded & {
    readonly workflows: readonly (AnyWorkflow | WorkflowSource)[];
  },
>(ns: DurableObjectNamespace<A>): ExecutionsClient<WorkflowsOf<A>>;
/**
 * The typed client over a `BatonService` reached by a service binding; pass the service
 * class as the type argument (`import type` is enough).
 *
 * @example
 * ```ts
 * import type { Platform } from "../platform/worker";
 * const run = await executions<Platform>(env.PLATFORM).start("fulfil", { orderId }, { id: orderId });
 * ```
 */
export function executions<P extends { readonly __executionActor?: unknown }>(
  service: ExecutionService,
): ExecutionsClient<WorkflowsOf<NonNullable<P["__executionActor"]>>>;
export function executions(
  target: DurableObjectNamespace<AnyExecutionActor> | ExecutionService,
): ExecutionsClient<never> {
  return new ExecutionsClient(target as DurableObjectNamespace<AnyExecutionActor>);
}

/** A service binding to a `BatonService` (anything with its `execution(id)` method). */
export interface ExecutionService {
  execution(id: string): unknown;
}

/**
 * A function that reaches one actor by name: `getByName` on a namespace, or the matching method
 * of a `BatonService` (its RPC promise pipelines the calls made on it).
 */
export function connector<S>(
  target: unknown,
  method: "execution" | "lock" | "checkpointScope" | "indexShard",
): (name: string) => S {
  const t = target as { getByName?: (name: string) => unknown } & Record<string, unknown>;
  // A service binding (`Fetcher`) answers every property name with an RPC method, `getByName`
  // included, so it is told apart by its tag before the namespace check.
  const isService = Object.prototype.toString.call(t) === "[object Fetcher]";
  if (!isService && typeof t?.getByName === "function") {
    return (name) => checkedStub(t.getByName?.(name) as object, EXPECTED[method]) as S;
  }
  if (typeof t?.[method] === "function")
    return (name) => checkedStub((t[method] as (n: string) => object)(name), null) as S;
  return invalidArgument(
    "Baton client target",
    `must be a Durable Object namespace, or a service binding to a BatonService (with ${method}())`,
    typeof target,
  );
}

/** The actor class each kind of client needs behind its binding. */
const EXPECTED = {
  execution: "ExecutionActor",
  lock: "LockActor",
  checkpointScope: "CheckpointActor",
  indexShard: "ExecutionIndex",
} as const;

/**
 * `stub`, whose calls fail with `CONFIGURATION_ERROR` naming the fix when the object behind it is
 * not an `expected` (a binding to another class: the platform only says that the receiver does
 * not implement the method), and with `PAYLOAD_TOO_LARGE` naming the limit when a value is over
 * what one RPC message carries (the platform's error has no code).
 */
function checkedStub(stub: object, expected: string | null): object {
  return new Proxy(stub, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      // Not `then`: a stub must not become thenable.
      if (typeof value !== "function" || typeof property !== "string" || property === "then") {
        return value;
      }
      // Reflect.apply: on an RPC stub, `value.apply` would be a remote property, not Function's.
      return (...args: unknown[]) =>
        Promise.resolve(Reflect.apply(value as (...a: unknown[]) => unknown, target, args)).catch(
          (error: unknown) => {
            throw (
              tooLarge(error, property) ??
              (expected === null ? undefined : wrongClass(error, expected, property)) ??
              error
            );
          },
        );
    },
  });
}

/** workerd's refusal of a value over the RPC limit (32 MiB), sent or returned. */
const RPC_LIMIT = /RPC arguments or return values are limited to (\d+) ?MiB(?:.*?(\d+) bytes)?/;

/** `PAYLOAD_TOO_LARGE` for workerd's error on a value over the RPC limit; else undefined. */
export function tooLarge(error: unknown, method: string): BatonError | undefined {
  const match = RPC_LIMIT.exec((error as Error)?.message);
  if (!match) return undefined;
  const limit = Number(match[1]) * 1048576;
  const bytes = match[2] ? Number(match[2]) : null;
  return new BatonError(
    "PAYLOAD_TOO_LARGE",
    `A value of ${method}() is over the RPC limit, ${match[1]} MiB (${limit} bytes)${bytes ? `: ${bytes} bytes` : ""}. Pass big data by reference (R2, a checkpoint).`,
    { method, limit, bytes },
    { cause: error },
  );
}

function wrongClass(error: unknown, expected: string, method: string): BatonError | undefined {
  const message = error instanceof Error ? error.message : "";
  if (!/does not implement/i.test(message)) return undefined;
  return new BatonError(
    "CONFIGURATION_ERROR",
    `The Durable Object binding given to this client is not ${/^[AEIOU]/.test(expected) ? "an" : "a"} ${expected}: its class does not implement ${method}(). Check that binding's class_name in wrangler.toml, and that the class extends ${expected}.`,
    { expected, method },
  );
}
