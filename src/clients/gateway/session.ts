import type { ExecutionActor } from "../../../actors/execution-actor.ts";
import type { ExecutionInfo, ExecutionResult, Value } from "../../execution/types.ts";
import { requireNamespace } from "../../foundation/bindings.ts";
import { type Duration, parseDuration } from "../../foundation/duration.ts";
import { BatonError, checkId, isBatonError } from "../../foundation/errors.ts";
import type { ResolvedLimits } from "./limits.ts";
import type { GatewayOperation, Policy } from "./policy.ts";
import { checkTreeSize } from "./size.ts";

/** What `status()` returns, through the gateway: the execution's state. */
export type GatewayInfo = ExecutionInfo;

type ExecutionStub = DurableObjectStub<ExecutionActor<never>>;

/** Names of the bindings a gateway uses in the Worker's env. */
export interface GatewayBindings {
  /** Default `"Executions"`. */
  executions?: string;
  /** Default `"Locks"`. */
  locks?: string;
  /** Default `"Checkpoints"`. */
  checkpoints?: string;
  /** Default `"ExecutionIndex"`. */
  index?: string;
  /** Default `"Schedules"`. */
  schedules?: string;
}

/**
 * The state of one gateway session (a WebSocket, or one HTTP batch), shared by the targets it
 * serves: its stubs, the order of its reads and writes per execution, the workflow of each
 * execution it touched (for the policy), and its counters against the limits.
 */
export class GatewaySession<P = unknown> {
  readonly policy: Policy<P>;
  readonly limits: ResolvedLimits;
  /** The session is an HTTP batch (no subscriptions). */
  readonly batch: boolean;
  readonly #env: Record<string, unknown>;
  readonly #bindings: Required<GatewayBindings>;
  /** status() calls in flight, by execution id (see {@link BatonApi.status}). */
  readonly #reads = new Map<string, Promise<GatewayInfo>>();
  readonly #stubs = new Map<string, ExecutionStub>();
  /** Calls that change an execution, in flight, by id: a later status() waits for all of them. */
  readonly #writes = new Map<string, Promise<unknown>>();
  /** The workflow each execution this session touched runs (it never changes for an id). */
  readonly #workflows = new Map<string, string>();
  /** Per id: resolves once the session's latest write to it has been issued to the actor. */
  readonly #issued = new Map<string, Promise<void>>();
  subscriptions = 0;
  #waits = 0;
  #calls = 0;

  constructor(
    env: unknown,
    bindings: GatewayBindings | undefined,
    policy: Policy<P>,
    limits: ResolvedLimits,
    batch: boolean,
  ) {
    this.#env = (env ?? {}) as Record<string, unknown>;
    this.policy = policy;
    this.limits = limits;
    this.batch = batch;
    this.#bindings = {
      executions: bindings?.executions ?? "Executions",
      locks: bindings?.locks ?? "Locks",
      checkpoints: bindings?.checkpoints ?? "Checkpoints",
      index: bindings?.index ?? "ExecutionIndex",
      schedules: bindings?.schedules ?? "Schedules",
    };
  }

  /** The namespace bound for `kind`. */
  ns<T extends Rpc.DurableObjectBranded>(kind: keyof GatewayBindings): DurableObjectNamespace<T> {
    const binding = this.#bindings[kind];
    return requireNamespace<T>(
      this.#env,
      binding,
      `This gateway has no ${kind} binding (looked for "${binding}" in the Worker's env).`,
      { kind, binding },
    );
  }

  /**
   * Counts one call against the session's budget (`callsPerBatch` for an HTTP batch,
   * `callsPerSession` over a WebSocket). Every method the gateway serves counts, pipelined and
   * nested calls too.
   *
   * @throws BatonError `LIMIT_EXCEEDED` past it.
   */
  count(): void {
    const limit = this.batch ? this.limits.callsPerBatch : this.limits.callsPerSession;
    if (++this.#calls > limit) {
      throw new BatonError(
        "LIMIT_EXCEEDED",
        `This ${this.batch ? "batch" : "session"} has made ${limit} calls, the most it may; ${this.batch ? "send the rest in another batch" : "open a new session"}.`,
        { limit },
      );
    }
  }

  /**
   * Authorizes `operation` on execution `id`: first the policy, by the id (and, for a start,
   * `workflow`), before any actor is reached; then the rule that the execution runs a workflow
   * the gateway serves (one status() per execution and session, to learn it).
   *
   * @throws BatonError `FORBIDDEN`, `EXECUTION_NOT_FOUND`.
   */
  async allow(operation: GatewayOperation, id: string, workflow?: string): Promise<string> {
    checkId(id, "Execution id");
    await this.policy.check(operation, {
      kind: "execution",
      id,
      ...(workflow === undefined ? {} : { workflow }),
    });
    // A read made after a write of this session (a start, say) reaches the actor after it.
    if (workflow === undefined) await this.#issued.get(id);
    const runs = workflow ?? (await this.workflowOf(id));
    this.policy.serves(operation, runs);
    return runs;
  }

  /** `allow` inside a write (which must not wait for its own issuing). */
  async #allowWrite(operation: GatewayOperation, id: string, workflow?: string): Promise<void> {
    await this.policy.check(operation, {
      kind: "execution",
      id,
      ...(workflow === undefined ? {} : { workflow }),
    });
    this.policy.serves(operation, workflow ?? (await this.workflowOf(id)));
  }

  /** The workflow execution `id` runs (it never changes for an id while it exists). */
  async workflowOf(id: string): Promise<string> {
    const known = this.#workflows.get(id);
    if (known !== undefined) return known;
    // Not through the session's ordered reads: this runs inside a write, which they wait for.
    const info = await this.call(id, (stub) => stub.status(), true);
    this.#workflows.set(id, info.workflow);
    return info.workflow;
  }

  /**
   * The state of execution `id`, allowed by the policy. Overlapping status() calls of the session
   * share one call to the actor, unless a change was made between them.
   */
  async status(id: string): Promise<GatewayInfo> {
    checkId(id, "Execution id");
    await this.policy.check("execution.status", { kind: "execution", id });
    const info = await this.#readStatus(id);
    this.policy.serves("execution.status", info.workflow);
    return info;
  }

  #readStatus(id: string): Promise<GatewayInfo> {
    let read = this.#reads.get(id);
    if (!read) {
      const write = this.#writes.get(id);
      const readNow = () => this.call(id, (stub) => stub.status(), true);
      read = (write ? write.then(readNow, readNow) : readNow()).then((info) => {
        this.#workflows.set(id, info.workflow);
        return info;
      });
      this.#reads.set(id, read);
      const done = read;
      const forget = () => this.#reads.get(id) === done && this.#reads.delete(id);
      void done.then(forget, forget);
    }
    return read;
  }

  /**
   * Waits for execution `id`'s result, at most `timeout` and never longer than the gateway's
   * `maxResultWait`; the session waits on at most `pendingResultsPerSession` at once.
   *
   * @throws BatonError `RESULT_TIMEOUT`, `LIMIT_EXCEEDED`.
   */
  async result(id: string, timeout: Duration | undefined): Promise<ExecutionResult<Value>> {
    const wanted = timeout === undefined ? this.limits.maxResultWaitMs : parseDuration(timeout);
    const end = Date.now() + Math.min(wanted, this.limits.maxResultWaitMs);
    if (this.#waits >= this.limits.pendingResultsPerSession) {
      throw new BatonError(
        "LIMIT_EXCEEDED",
        `This session already waits on ${this.#waits} results; the limit is ${this.limits.pendingResultsPerSession}. Wait for some first, or subscribe.`,
        { limit: this.limits.pendingResultsPerSession },
      );
    }
    this.#waits++;
    try {
      // A read retried on a new stub waits only for the time left.
      return (await this.call(
        id,
        async (stub) =>
          (await stub.result({ timeout: Math.max(0, end - Date.now()) })) as ExecutionResult<Value>,
        true,
      )) as ExecutionResult<Value>;
    } finally {
      this.#waits--;
    }
  }

  /**
   * `value`, unless its serialized form would pass the session's response budget (checked
   * before capnweb serializes it, so a value of shared references cannot blow up).
   *
   * @throws BatonError `PAYLOAD_TOO_LARGE`.
   */
  bounded<T>(value: T, what: string): T {
    const limit = this.batch
      ? this.limits.responseBytesPerBatch
      : this.limits.responseBytesPerSession;
    checkTreeSize(value, limit, what);
    return value;
  }

  #execution(id: string): ExecutionStub {
    // A session tends to call the same executions again: keep their stubs (a bounded few).
    let stub = this.#stubs.get(id);
    if (!stub) {
      stub = this.ns<ExecutionActor<never>>("executions").getByName(checkId(id, "Execution id"));
      if (this.#stubs.size >= 256) this.#stubs.clear();
      this.#stubs.set(id, stub);
    }
    return stub;
  }

  /**
   * Calls execution `id`'s actor. A stub that failed with anything but a Baton error (the actor
   * was reset or redeployed, the connection broke) is dropped: the next call gets a new one.
   * A `read` (it changes nothing) is then tried once more, on the new stub.
   */
  async call<T>(id: string, fn: (stub: ExecutionStub) => Promise<T>, read = false): Promise<T> {
    const stub = this.#execution(id);
    try {
      return await fn(stub);
    } catch (error) {
      if (isBatonError(error)) throw error;
      if (this.#stubs.get(id) === stub) this.#stubs.delete(id);
      if (!read) throw error;
      return await fn(this.#execution(id));
    }
  }

  /**
   * Makes the call `change` on execution `id`, once the policy allows `operation` (for a start:
   * of `workflow`). The session's writes to one execution reach its actor in the order they were
   * made (each is issued after the one before it was issued, whatever its authorization took);
   * status() calls made after it read anew, once it and every change before it have settled.
   */
  write<T>(
    id: string,
    operation: GatewayOperation,
    change: (stub: ExecutionStub) => Promise<T>,
    workflow?: string,
  ): Promise<T> {
    checkId(id, "Execution id");
    this.#reads.delete(id);
    const before = this.#issued.get(id) ?? Promise.resolve();
    let issued!: () => void;
    const mine = new Promise<void>((resolve) => {
      issued = resolve;
    });
    this.#issued.set(id, mine);
    void mine.then(() => {
      if (this.#issued.get(id) === mine) this.#issued.delete(id);
    });
    const call = (async () => {
      let pending: Promise<T>;
      try {
        await before;
        await this.#allowWrite(operation, id, workflow);
        pending = this.call(id, change); // issued to the actor now
      } finally {
        issued();
      }
      const result = await pending;
      // Started (or found started with the same input): it runs that workflow.
      if (workflow !== undefined) this.#workflows.set(id, workflow);
      return result;
    })();
    // Settles once this write and every earlier one of the session have; holds no results.
    const earlier = this.#writes.get(id);
    const all: Promise<void> = Promise.allSettled(earlier ? [earlier, call] : [call]).then(
      () => undefined,
    );
    this.#writes.set(id, all);
    const clear = () => {
      if (this.#writes.get(id) === all) this.#writes.delete(id);
    };
    void all.then(clear);
    return call;
  }
}
