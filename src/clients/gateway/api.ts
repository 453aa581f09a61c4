// Workers' own RpcTarget, which capnweb uses on Workers too: the declarations need no capnweb.
import { RpcTarget } from "cloudflare:workers";
import type { ExecutionIndex } from "../../../actors/execution-index.ts";
import type { LiveEvent } from "../../execution/live-events.ts";
import type { ExecutionResult, StartOptions, Value } from "../../execution/types.ts";
import { type Duration, parseDuration } from "../../foundation/duration.ts";
import { BatonError, checkId, invalidArgument, isBatonError } from "../../foundation/errors.ts";
import { INDEX_SHARD, type ListQuery } from "../../protocol/listing.ts";
import type { AnyWorkflow, InputOf, OutputOf } from "../../workflow/workflow.ts";
import { liveProgress } from "../live.ts";
import type { GatewayInfo, GatewaySession } from "./session.ts";
import { type GatewaySubscription, Subscription } from "./subscription.ts";
import { CheckpointsApi, LocksApi, SchedulesApi } from "./targets.ts";

/** One workflow through the gateway, typed by its definition. */
export interface WorkflowApi<I, O> {
  /** Starts it as execution `options.id` (idempotent for the same input). */
  start(input: I, options: StartOptions): Promise<GatewayInfo>;
  /** Starts it and waits for its result (`timeout`: the execution's deadline, which ends the wait). */
  execute(input: I, options: StartOptions & { timeout?: Duration }): Promise<ExecutionResult<O>>;
  /** The result of execution `id` of this workflow. */
  result(id: string, options?: { timeout?: Duration }): Promise<ExecutionResult<O>>;
}

/** One entry per workflow with a literal name (a name typed only as `string` cannot be a key). */
export type WorkflowApis<W extends readonly AnyWorkflow[]> = {
  [K in W[number] as string extends K["name"] ? never : K["name"]]: WorkflowApi<
    InputOf<K>,
    OutputOf<K>
  >;
};

/**
 * The API a gateway serves to capnweb clients. Clients import its type only. Every call is
 * checked against the gateway's policy before it reaches an actor (see {@link GatewayPolicy}).
 *
 * @example
 * ```ts
 * // Node or browser
 * import { newWebSocketRpcSession } from "capnweb";
 * import type { Api } from "../src/worker"; // export type Api = BatonApi<typeof workflows>
 * const api = newWebSocketRpcSession<Api>("wss://example.com/rpc?token=...");
 * const run = await api.workflows.greet.start({ name: "Ada" }, { id: "greet-1" });
 * await api.subscribe(run.id, (event) => console.log(event.type));
 * ```
 */
export class BatonApi<W extends readonly AnyWorkflow[] = readonly AnyWorkflow[]> extends RpcTarget {
  readonly #session: GatewaySession;
  /** One target per served workflow, made once per session. */
  readonly #workflows: Record<string, WorkflowTarget> = {};

  /** Made by the gateway, one per session. @internal */
  constructor(session: GatewaySession) {
    super();
    this.#session = session;
    for (const name of session.policy.served) {
      this.#workflows[name] = new WorkflowTarget(name, session);
    }
  }

  /** The served workflows by name: `api.workflows.greet.start(input, { id })`. */
  get workflows(): WorkflowApis<W> {
    return this.#workflows as unknown as WorkflowApis<W>;
  }

  /**
   * The state of execution `id`. Within one session, `status()` calls for the same execution
   * that overlap share one call to its actor (a batch of them costs one), unless a call that
   * changes that execution was made between them: a read made after a write never sees the
   * state from before it.
   */
  async status(id: string): Promise<GatewayInfo> {
    this.#session.count();
    return await this.#session.status(id);
  }

  /**
   * The result of execution `id` (untyped; `workflows.<name>.result` is typed). Waits at most
   * `timeout`, and never longer than the gateway's `maxResultWait` (then `RESULT_TIMEOUT`).
   */
  async result(id: string, options: { timeout?: Duration } = {}): Promise<ExecutionResult<Value>> {
    this.#session.count();
    await this.#session.allow("execution.result", id);
    return this.#session.bounded(await this.#session.result(id, options?.timeout), "The result");
  }

  /** Sends an event to execution `id`. */
  async sendEvent(id: string, type: string, payload?: Value, options: { dedupeKey?: string } = {}) {
    this.#session.count();
    return await this.#session.write(id, "execution.sendEvent", (stub) =>
      stub.sendEvent(type, payload, options ?? {}),
    );
  }

  /** The journal of execution `id`, a page at a time. */
  async journal(id: string, options: { from?: number; limit?: number } = {}) {
    this.#session.count();
    await this.#session.allow("execution.journal", id);
    return this.#session.bounded(
      await this.#session.call(id, (stub) => stub.journal(options ?? {}), true),
      "The journal page",
    );
  }

  async pause(id: string): Promise<GatewayInfo> {
    this.#session.count();
    return await this.#session.write(id, "execution.pause", (stub) => stub.pause());
  }

  async resume(id: string): Promise<GatewayInfo> {
    this.#session.count();
    return await this.#session.write(id, "execution.resume", (stub) => stub.resume());
  }

  async cancel(id: string): Promise<GatewayInfo> {
    this.#session.count();
    return await this.#session.write(id, "execution.cancel", (stub) => stub.cancel());
  }

  async restart(id: string): Promise<GatewayInfo> {
    this.#session.count();
    return await this.#session.write(id, "execution.restart", (stub) => stub.restart());
  }

  /**
   * Executions newest first, filtered, a page at a time (needs the ExecutionIndex binding).
   * Only the workflows this gateway serves are listed: without a `workflow` filter, the query
   * is narrowed to them.
   */
  async list(query: ListQuery = {}) {
    this.#session.count();
    if (typeof query !== "object" || query === null) {
      invalidArgument("query", "must be an object", query);
    }
    for (const name of query.workflow === undefined ? [] : [query.workflow].flat()) {
      checkId(name, "workflow");
    }
    const narrowed: ListQuery = {
      ...query,
      workflow: query.workflow ?? this.#session.policy.served,
    };
    await this.#session.policy.check("executions.list", { kind: "list", query: narrowed });
    return await this.#session.ns<ExecutionIndex>("index").getByName(INDEX_SHARD).list(narrowed);
  }

  /**
   * Calls `callback` with execution `id`'s live events, in order: `initial_state`, `progress`
   * events, then one terminal event. Over the WebSocket transport only (an HTTP batch ends, and
   * its callback with it, when the batch returns). Ends at the terminal event, on `close()`, or
   * when the session ends.
   *
   * @throws BatonError `LIMIT_EXCEEDED` past the session's (or the execution's) subscriptions.
   */
  async subscribe(
    id: string,
    callback: (event: LiveEvent) => void | Promise<void>,
  ): Promise<GatewaySubscription> {
    const session = this.#session;
    session.count();
    if (typeof callback !== "function") invalidArgument("callback", "must be a function", callback);
    if (session.batch) {
      invalidArgument(
        "subscribe",
        "needs a WebSocket session (an HTTP batch ends, and its callback with it, when it returns)",
        id,
      );
    }
    checkId(id, "Execution id");
    if (session.subscriptions >= session.limits.subscriptionsPerSession) {
      throw new BatonError(
        "LIMIT_EXCEEDED",
        `A session holds at most ${session.limits.subscriptionsPerSession} live subscriptions; close() some first.`,
        { limit: session.limits.subscriptionsPerSession },
      );
    }
    // Counted before the await, so subscribe() calls sent together cannot pass the cap.
    session.subscriptions++;
    let ws: WebSocket | null = null;
    try {
      await session.allow("execution.subscribe", id);
      const response = await liveProgress(
        new Request("https://baton.internal/live", { headers: { Upgrade: "websocket" } }),
        session.ns("executions"),
        id,
      );
      ws = response.webSocket;
      if (response.status !== 101 || !ws) {
        const body = (await response.json().catch(() => ({}))) as {
          code?: string;
          message?: string;
        };
        throw new BatonError(
          (body.code as "EXECUTION_NOT_FOUND") ?? "INVALID_ARGUMENT",
          body.message ?? `Cannot subscribe to execution "${id}".`,
          { id },
        );
      }
      // A stub passed as a parameter is released when this call returns: keep a copy.
      const listener = (callback as { dup?: () => typeof callback }).dup?.() ?? callback;
      return new Subscription(ws, listener, id, () => session.subscriptions--);
    } catch (error) {
      session.subscriptions--;
      try {
        ws?.close(1011, "Subscription failed.");
      } catch {
        // Not open.
      }
      throw error;
    }
  }

  /** Locks: the Lock actor's operations, by lock name. */
  get locks(): LocksApi {
    return new LocksApi(this.#session);
  }

  /** Checkpoints: the Checkpoint actor's operations, by scope. */
  get checkpoints(): CheckpointsApi {
    return new CheckpointsApi(this.#session);
  }

  /** Schedules of the workflows this gateway serves: list, get, pause, resume, trigger. */
  get schedules(): SchedulesApi {
    return new SchedulesApi(this.#session);
  }
}

/** One workflow's typed operations. */
class WorkflowTarget extends RpcTarget {
  readonly #name: string;
  readonly #session: GatewaySession;

  constructor(name: string, session: GatewaySession) {
    super();
    this.#name = name;
    this.#session = session;
  }

  async start(input: Value, options: StartOptions) {
    this.#session.count();
    return await this.#start(input, options);
  }

  async #start(input: Value, options: StartOptions) {
    const id = idOf(options);
    try {
      return await this.#session.write(
        id,
        "execution.start",
        (stub) => stub.start(this.#name, input, options),
        this.#name,
      );
    } catch (error) {
      // The id is taken: say so without telling what runs under it (its workflow, its input).
      if (!isBatonError(error, "EXECUTION_CONFLICT")) throw error;
      throw new BatonError(
        "EXECUTION_CONFLICT",
        `Execution "${id}" already exists with another workflow or input. Use a new id, or the same workflow and input to get the existing execution.`,
        { id },
      );
    }
  }

  /** `start`, then the result (two calls, so a status() made after it sees the start). */
  async execute(input: Value, options: StartOptions & { timeout?: Duration }) {
    this.#session.count();
    const id = idOf(options);
    await this.#start(input, options);
    await this.#session.allow("execution.result", id, this.#name);
    // `timeout` is the execution's deadline too: wait a little past it for its outcome.
    const wait = options.timeout === undefined ? undefined : parseDuration(options.timeout) + 2_000;
    return this.#session.bounded(await this.#session.result(id, wait), "The result");
  }

  async result(id: string, options: { timeout?: Duration } = {}) {
    this.#session.count();
    // Authorized first: a caller learns nothing about an execution it may not reach.
    const workflow = await this.#session.allow("execution.result", checkId(id, "Execution id"));
    if (workflow !== this.#name) {
      throw new BatonError(
        "EXECUTION_CONFLICT",
        `Execution "${id}" runs another workflow than "${this.#name}".`,
        { id },
      );
    }
    return this.#session.bounded(await this.#session.result(id, options?.timeout), "The result");
  }
}

function idOf(options: StartOptions): string {
  if (typeof options !== "object" || options === null) {
    invalidArgument("options", "must be { id, retention?, timeout? }", options);
  }
  return checkId(options.id, "id");
}
