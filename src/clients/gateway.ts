import { newWorkersRpcResponse, RpcTarget } from "capnweb";
import type { CheckpointActor, SaveOptions } from "../../actors/checkpoint-actor.ts";
import type { ExecutionActor } from "../../actors/execution-actor.ts";
import { type ExecutionIndex, INDEX_SHARD, type ListQuery } from "../../actors/execution-index.ts";
import type { AcquireOptions, Lease, LockActor } from "../../actors/lock-actor.ts";
import {
  type DisconnectedEvent,
  isTerminalEvent,
  type LiveEvent,
} from "../execution/live-events.ts";
import type { ExecutionResult, StartOptions, Value } from "../execution/types.ts";
import { findNamespace, requireNamespace } from "../foundation/bindings.ts";
import { type Duration, parseDuration } from "../foundation/duration.ts";
import { BatonError, checkId, invalidArgument, isBatonError } from "../foundation/errors.ts";
import { liveProgress } from "./live.ts";

/** Live subscriptions one session may hold at once (each holds a WebSocket to an actor). */
const MAX_SUBSCRIPTIONS = 16;
/** Events a subscription may have waiting for the client before it is dropped. */
const MAX_BACKLOG = 1000;

import type { AnyWorkflow, InputOf, OutputOf } from "../workflow/workflow.ts";

/** How the gateway tells callers it may serve from anonymous ones. */
export type GatewayAuth<Env> =
  /**
   * A bearer token kept in a Worker secret (`wrangler secret put BATON_TOKEN`), named here.
   * Callers send `Authorization: Bearer <token>`, or (browsers, whose WebSockets cannot set
   * headers) `?token=<token>` on the URL. Compared in constant time.
   */
  | { secret: string }
  /** Your own check (a session cookie, a JWT, mTLS ...); `true` lets the request through. */
  | { authorize: (request: Request, env: Env) => boolean | Promise<boolean> }
  /** No authentication at all: only for local development or a private network. */
  | { anonymous: true };

/** Options of {@link gateway}. */
export interface GatewayOptions<Env, W extends readonly AnyWorkflow[]> {
  /**
   * The workflows callers may start by name (typed as `api.workflows.<name>`). Calls by
   * execution id (`status`, `cancel`, `subscribe`, ...) and `list` reach every execution of the
   * executions binding, whatever its workflow: scope callers in `authorize` if they must not.
   */
  workflows: W;
  /** Who may call. Required: there is no anonymous default. */
  auth: GatewayAuth<Env>;
  /** Names of the bindings in the Worker's env (defaults shown). */
  bindings?: {
    /** Default `"Executions"`. */
    executions?: string;
    /** Default `"Locks"`. */
    locks?: string;
    /** Default `"Checkpoints"`. */
    checkpoints?: string;
    /** Default `"ExecutionIndex"`. */
    index?: string;
  };
  /** Where the capnweb endpoint is served (WebSocket and HTTP batch). Default `"/rpc"`. */
  path?: string;
  /**
   * Prefix of the live-progress WebSocket route `<prefix>/executions/<id>/live`. Default `""`.
   */
  livePrefix?: string;
  /**
   * Browser origins allowed to call (their `Origin` header). Requests from other origins get
   * 403; requests without an `Origin` (Node, other servers) are not affected. Set it whenever
   * `authorize` relies on cookies, which a browser sends from any site. Default: any origin.
   */
  origins?: readonly string[];
}

/** A gateway: call `fetch` from your Worker's fetch handler. */
export interface Gateway<Env> {
  /**
   * Serves the gateway's routes; returns `null` for any other path (serve it yourself).
   * Unauthorized requests get 401 before any actor is reached.
   */
  fetch(request: Request, env: Env): Promise<Response | null>;
}

/** One workflow through the gateway, typed by its definition. */
export interface WorkflowApi<I, O> {
  /** Starts it as execution `options.id` (idempotent for the same input). */
  start(input: I, options: StartOptions): Promise<GatewayInfo>;
  /** Starts it and waits for its result (`timeout` bounds the wait). */
  execute(input: I, options: StartOptions & { timeout?: Duration }): Promise<ExecutionResult<O>>;
  /** The result of execution `id` of this workflow. */
  result(id: string, options?: { timeout?: Duration }): Promise<ExecutionResult<O>>;
}

/** What `status()` returns, through the gateway. */
export type GatewayInfo = Awaited<ReturnType<ExecutionActor["status"]>>;

/** The live subscription `subscribe()` returns; `close()` (or disposing it) ends it. */
export interface GatewaySubscription {
  close(): void;
}

/** One entry per workflow with a literal name (a name typed only as `string` cannot be a key). */
type WorkflowApis<W extends readonly AnyWorkflow[]> = {
  [K in W[number] as string extends K["name"] ? never : K["name"]]: WorkflowApi<
    InputOf<K>,
    OutputOf<K>
  >;
};

/**
 * The API a gateway serves to capnweb clients. Clients import its type only:
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
  readonly #env: Record<string, unknown>;
  /** One target per served workflow, made once per session. */
  readonly #workflows: Record<string, WorkflowTarget> = {};
  readonly #bindings: Required<NonNullable<GatewayOptions<unknown, W>["bindings"]>>;
  /** status() calls in flight, by execution id (see {@link BatonApi.status}). */
  readonly #reads = new Map<string, Promise<GatewayInfo>>();
  readonly #stubs = new Map<string, DurableObjectStub<ExecutionActor<never>>>();
  /** Calls that change an execution, in flight, by id: a later status() waits for all of them. */
  readonly #writes = new Map<string, Promise<unknown>>();
  readonly #batch: boolean;
  #subscriptions = 0;

  /** `batch`: the session is an HTTP batch (no subscriptions). */
  constructor(env: unknown, options: GatewayOptions<unknown, W>, batch = false) {
    super();
    this.#batch = batch;
    this.#env = (env ?? {}) as Record<string, unknown>;
    const session: WorkflowSession = {
      call: (id, fn) => this.#call(id, fn, true),
      write: (id, change) => this.#write(id, change),
    };
    for (const { name } of options.workflows) {
      this.#workflows[name] = new WorkflowTarget(name, session);
    }
    this.#bindings = {
      executions: options.bindings?.executions ?? "Executions",
      locks: options.bindings?.locks ?? "Locks",
      checkpoints: options.bindings?.checkpoints ?? "Checkpoints",
      index: options.bindings?.index ?? "ExecutionIndex",
    };
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
    checkId(id, "Execution id");
    let read = this.#reads.get(id);
    if (!read) {
      const write = this.#writes.get(id);
      const readNow = () => this.#call(id, (stub) => stub.status(), true);
      read = write ? write.then(readNow, readNow) : readNow();
      this.#reads.set(id, read);
      const done = read;
      void done.then(
        () => this.#reads.get(id) === done && this.#reads.delete(id),
        () => this.#reads.get(id) === done && this.#reads.delete(id),
      );
    }
    return await read;
  }

  /** The result of execution `id` (untyped; `workflows.<name>.result` is typed). */
  async result(id: string, options: { timeout?: Duration } = {}): Promise<ExecutionResult<Value>> {
    const left = timeLeft(options?.timeout);
    return (await this.#call(
      id,
      async (stub) => (await stub.result(left())) as ExecutionResult<Value>,
      true,
    )) as ExecutionResult<Value>;
  }

  /** Sends an event to execution `id`. */
  async sendEvent(id: string, type: string, payload?: Value, options: { dedupeKey?: string } = {}) {
    return await this.#write(id, (stub) => stub.sendEvent(type, payload, options ?? {}));
  }

  /** The journal of execution `id`, a page at a time. */
  async journal(id: string, options: { from?: number; limit?: number } = {}) {
    return await this.#call(id, (stub) => stub.journal(options ?? {}), true);
  }

  async pause(id: string): Promise<GatewayInfo> {
    return await this.#write(id, (stub) => stub.pause());
  }

  async resume(id: string): Promise<GatewayInfo> {
    return await this.#write(id, (stub) => stub.resume());
  }

  async cancel(id: string): Promise<GatewayInfo> {
    return await this.#write(id, (stub) => stub.cancel());
  }

  async restart(id: string): Promise<GatewayInfo> {
    return await this.#write(id, (stub) => stub.restart());
  }

  /** Executions newest first, filtered, a page at a time (needs the ExecutionIndex binding). */
  async list(query: ListQuery = {}) {
    return await this.#ns<ExecutionIndex>("index")
      .getByName(INDEX_SHARD)
      .list(query ?? {});
  }

  /**
   * Calls `callback` with execution `id`'s live events, in order: `initial_state`, `progress`
   * events, then one terminal event. Over the WebSocket transport only (an HTTP batch ends, and
   * its callback with it, when the batch returns). Ends at the terminal event, on `close()`, or
   * when the session ends.
   */
  async subscribe(
    id: string,
    callback: (event: LiveEvent) => void | Promise<void>,
  ): Promise<GatewaySubscription> {
    if (typeof callback !== "function") invalidArgument("callback", "must be a function", callback);
    if (this.#batch) {
      invalidArgument(
        "subscribe",
        "needs a WebSocket session (an HTTP batch ends, and its callback with it, when it returns)",
        id,
      );
    }
    if (this.#subscriptions >= MAX_SUBSCRIPTIONS) {
      invalidArgument(
        "subscribe",
        `allows at most ${MAX_SUBSCRIPTIONS} live subscriptions per session; close() some first`,
        id,
      );
    }
    // Counted before the await, so subscribe() calls sent together cannot pass the cap.
    this.#subscriptions++;
    let ws: WebSocket | null = null;
    try {
      const response = await liveProgress(
        new Request("https://baton.internal/live", { headers: { Upgrade: "websocket" } }),
        this.#executions(),
        checkId(id, "Execution id"),
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
      return new Subscription(ws, listener, id, () => this.#subscriptions--);
    } catch (error) {
      this.#subscriptions--;
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
    return new LocksApi(() => this.#ns<LockActor>("locks"));
  }

  /** Checkpoints: the Checkpoint actor's operations, by scope. */
  get checkpoints(): CheckpointsApi {
    return new CheckpointsApi(() => this.#ns<CheckpointActor>("checkpoints"));
  }

  #executions(): DurableObjectNamespace<ExecutionActor<never>> {
    return this.#ns<ExecutionActor<never>>("executions");
  }

  #execution(id: string): DurableObjectStub<ExecutionActor<never>> {
    // A session tends to call the same executions again: keep their stubs (a bounded few).
    let stub = this.#stubs.get(id);
    if (!stub) {
      stub = this.#executions().getByName(checkId(id, "Execution id"));
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
  async #call<T>(
    id: string,
    fn: (stub: DurableObjectStub<ExecutionActor<never>>) => Promise<T>,
    read = false,
  ): Promise<T> {
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
   * Makes the call `change` on execution `id`: status() calls made after it read anew, once it
   * and every change before it in this session have settled.
   */
  async #write<T>(
    id: string,
    change: (stub: DurableObjectStub<ExecutionActor<never>>) => Promise<T>,
  ): Promise<T> {
    checkId(id, "Execution id");
    this.#reads.delete(id);
    const call = this.#call(id, change);
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
    return await call;
  }

  #ns<T extends Rpc.DurableObjectBranded>(
    kind: "executions" | "locks" | "checkpoints" | "index",
  ): DurableObjectNamespace<T> {
    const binding = this.#bindings[kind];
    return requireNamespace<T>(
      this.#env,
      binding,
      `This gateway has no ${kind} binding (looked for "${binding}" in the Worker's env).`,
      { kind, binding },
    );
  }
}

/** One workflow's typed operations. */
class WorkflowTarget extends RpcTarget {
  readonly #name: string;
  readonly #session: WorkflowSession;

  constructor(name: string, session: WorkflowSession) {
    super();
    this.#name = name;
    this.#session = session;
  }

  async start(input: Value, options: StartOptions) {
    return await this.#session.write(idOf(options), (stub) =>
      stub.start(this.#name, input, options),
    );
  }

  /** `start`, then the result (two calls, so a status() made after it sees the start). */
  async execute(input: Value, options: StartOptions & { timeout?: Duration }) {
    const id = idOf(options);
    const left = timeLeft(options.timeout);
    await this.#session.write(id, (stub) => stub.start(this.#name, input, options));
    return await this.#session.call(
      id,
      async (stub) => (await stub.result(left())) as ExecutionResult<Value>,
    );
  }

  async result(id: string, options: { timeout?: Duration } = {}) {
    const left = timeLeft(options?.timeout);
    return await this.#session.call(id, async (stub) => {
      const info = await stub.status();
      if (info.workflow !== this.#name) {
        throw new BatonError(
          "EXECUTION_CONFLICT",
          `Execution "${id}" runs workflow "${info.workflow}", not "${this.#name}".`,
          { id, workflow: info.workflow },
        );
      }
      return await stub.result(left());
    });
  }
}

/** What a workflow's target needs from its session. */
interface WorkflowSession {
  /** A read: retried once on a new stub if the actor behind the old one was reset. */
  call<T>(
    id: string,
    fn: (stub: DurableObjectStub<ExecutionActor<never>>) => Promise<T>,
  ): Promise<T>;
  write<T>(
    id: string,
    change: (stub: DurableObjectStub<ExecutionActor<never>>) => Promise<T>,
  ): Promise<T>;
}

/**
 * `result()` options for a wait bounded by `timeout` in all: a read retried on a new stub waits
 * only for the time left, not for `timeout` again.
 */
function timeLeft(timeout: Duration | undefined): () => { timeout?: number } {
  if (timeout === undefined) return () => ({});
  const end = Date.now() + parseDuration(timeout);
  return () => ({ timeout: Math.max(0, end - Date.now()) });
}

function idOf(options: StartOptions): string {
  if (typeof options !== "object" || options === null) {
    invalidArgument("options", "must be { id, retention? }", options);
  }
  return checkId(options.id, "id");
}

/** A live subscription: relays the execution's WebSocket events to the client's callback. */
class Subscription extends RpcTarget {
  readonly #ws: WebSocket;
  readonly #listener: (event: LiveEvent) => unknown;
  readonly #executionId: string;
  readonly #onEnd: () => void;
  #closed = false;
  #ended = false;
  #backlog = 0;

  constructor(
    ws: WebSocket,
    listener: (event: LiveEvent) => unknown,
    executionId: string,
    onEnd: () => void,
  ) {
    super();
    this.#ws = ws;
    this.#listener = listener;
    this.#executionId = executionId;
    this.#onEnd = onEnd;
    // Calls are chained, so the client sees the events in the order the actor sent them.
    let chain: Promise<unknown> = Promise.resolve();
    const deliver = (event: LiveEvent) => {
      if (++this.#backlog > MAX_BACKLOG) {
        this.#disconnect(chain, "the subscriber fell too far behind");
        return;
      }
      chain = chain
        .then(() => this.#listener(event))
        .then(
          () => this.#backlog--,
          () => this.close(),
        );
    };
    ws.addEventListener("message", (message) => {
      if (this.#closed) return;
      const event = JSON.parse(String(message.data)) as LiveEvent;
      // Delivered (or, past the backlog, replaced by `disconnected`) before the stream counts
      // as ended, so a subscriber too far behind is told even when the last event overflows.
      deliver(event);
      if (isTerminalEvent(event)) this.#ended = true;
    });
    ws.addEventListener("close", () => {
      // Broken before its terminal event (the actor was reset, or redeployed): say so.
      if (!this.#ended && !this.#closed) this.#disconnect(chain, "the live stream was cut");
      else chain = chain.finally(() => this.#release());
    });
    ws.addEventListener("error", () => {
      if (!this.#ended && !this.#closed) this.#disconnect(chain, "the live stream failed");
    });
    ws.accept();
  }

  close(): void {
    if (!this.#closed) {
      try {
        this.#ws.close(1000, "Unsubscribed.");
      } catch {
        // Closed already.
      }
    }
    this.#release();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #disconnect(chain: Promise<unknown>, reason: string): void {
    if (this.#ended) return;
    this.#ended = true;
    const event: DisconnectedEvent = {
      type: "disconnected",
      executionId: this.#executionId,
      reason: `${reason}; subscribe again for the current state.`,
    };
    void chain
      .then(() => this.#listener(event))
      .catch(() => {})
      .finally(() => this.close());
  }

  #release(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#onEnd();
    (this.#listener as Partial<Disposable>)[Symbol.dispose]?.();
  }
}

/** Lock operations through the gateway. */
class LocksApi extends RpcTarget {
  readonly #ns: () => DurableObjectNamespace<LockActor>;
  constructor(ns: () => DurableObjectNamespace<LockActor>) {
    super();
    this.#ns = ns;
  }
  #lock(name: string) {
    return this.#ns().getByName(checkId(name, "Lock name"));
  }
  async acquire(name: string, options: AcquireOptions) {
    return await this.#lock(name).acquire(options);
  }
  async renew(name: string, lease: Lease, ttl: Duration) {
    return await this.#lock(name).renew(lease, ttl);
  }
  async release(name: string, lease: Lease) {
    return await this.#lock(name).release(lease);
  }
  async status(name: string) {
    return await this.#lock(name).status();
  }
  async isLocked(name: string) {
    return await this.#lock(name).isLocked();
  }
  /** For a caller that gave up waiting (see LockActor.abandon): by its waiter id. */
  async abandon(name: string, waiterId: string, options: { release?: boolean } = {}) {
    return await this.#lock(name).abandon(waiterId, options ?? {});
  }
}

/** Checkpoint operations through the gateway. */
class CheckpointsApi extends RpcTarget {
  readonly #ns: () => DurableObjectNamespace<CheckpointActor>;
  constructor(ns: () => DurableObjectNamespace<CheckpointActor>) {
    super();
    this.#ns = ns;
  }
  #scope(scope: string) {
    return this.#ns().getByName(checkId(scope, "Checkpoint scope"));
  }
  async save(scope: string, name: string, value: Value, options: SaveOptions = {}) {
    return await this.#scope(scope).save(name, value, options ?? {});
  }
  async load(scope: string, name: string, options: { version?: number } = {}) {
    return await this.#scope(scope).load(name, options ?? {});
  }
  async list(scope: string) {
    return await this.#scope(scope).list();
  }
  async history(scope: string, name: string) {
    return await this.#scope(scope).history(name);
  }
  async delete(scope: string, name: string) {
    return await this.#scope(scope).delete(name);
  }
}

/**
 * A Cap'n Web gateway: serves {@link BatonApi} at `path` (WebSocket and HTTP batch) and the
 * live-progress WebSocket at `<livePrefix>/executions/<id>/live`, both behind `auth`.
 *
 * @example
 * ```ts
 * const api = gateway({ workflows: [greet, orderFlow], auth: { secret: "BATON_TOKEN" } });
 * export type Api = BatonApi<[typeof greet, typeof orderFlow]>;
 * export default {
 *   async fetch(request, env) {
 *     return (await api.fetch(request, env)) ?? new Response("Not found", { status: 404 });
 *   },
 * };
 * ```
 */
export function gateway<Env, const W extends readonly AnyWorkflow[]>(
  options: GatewayOptions<Env, W>,
): Gateway<Env> {
  checkAuth(options?.auth);
  if (!Array.isArray(options.workflows)) {
    invalidArgument(
      "workflows",
      "must be the array of workflows the gateway serves",
      options.workflows,
    );
  }
  const path = options.path ?? "/rpc";
  const live = new RegExp(`^${escapeRegExp(options.livePrefix ?? "")}/executions/([^/]+)/live$`);
  return {
    async fetch(request: Request, env: Env): Promise<Response | null> {
      const url = new URL(request.url);
      const liveMatch = live.exec(url.pathname);
      if (url.pathname !== path && !liveMatch) return null;
      const origin = request.headers.get("Origin");
      if (origin && options.origins && !options.origins.includes(origin)) {
        return Response.json(
          { code: "FORBIDDEN", message: `Origin ${origin} may not call this gateway.` },
          { status: 403 },
        );
      }
      // A browser's CORS preflight carries no credentials: answer it before authentication.
      if (request.method === "OPTIONS") {
        return new Response(null, {
          status: 204,
          headers: {
            "Access-Control-Allow-Origin": origin ?? "*",
            "Access-Control-Allow-Methods": "POST, GET, OPTIONS",
            "Access-Control-Allow-Headers": "Authorization, Content-Type",
            "Access-Control-Max-Age": "86400",
          },
        });
      }
      const verdict = await authorize(request, env, options.auth);
      if (verdict) {
        // Let a browser page read why it was refused.
        if (origin) {
          verdict.headers.set("Access-Control-Allow-Origin", origin);
          verdict.headers.append("Vary", "Origin");
        }
        return verdict;
      }
      if (liveMatch) {
        const name = options.bindings?.executions ?? "Executions";
        const ns = findNamespace<ExecutionActor<never>>(env, name);
        if (!ns) {
          return Response.json(
            { code: "INVALID_ARGUMENT", message: `No "${name}" binding in the Worker's env.` },
            { status: 500 },
          );
        }
        let id: string;
        try {
          id = decodeURIComponent(liveMatch[1] as string);
        } catch {
          return Response.json(
            { code: "INVALID_ARGUMENT", message: "The execution id in the path is not valid." },
            { status: 400 },
          );
        }
        return liveProgress(request, ns, id);
      }
      return newWorkersRpcResponse(
        request,
        new BatonApi(env, options as GatewayOptions<unknown, W>, request.method === "POST"),
      );
    },
  };
}

/** `null` when the request may go on, else the 401 (or 500, misconfigured) response. */
async function authorize<Env>(
  request: Request,
  env: Env,
  auth: GatewayAuth<Env>,
): Promise<Response | null> {
  if ("anonymous" in auth) return auth.anonymous === true ? null : unauthorized("Not authorized.");
  if ("authorize" in auth) {
    let ok = false;
    try {
      ok = (await auth.authorize(request, env)) === true;
    } catch {
      ok = false;
    }
    return ok ? null : unauthorized("The request is not authorized.");
  }
  const secret = (env as Record<string, unknown>)[auth.secret];
  if (typeof secret !== "string" || secret.length === 0) {
    // The name goes to the log only: a response must not echo configuration.
    console.error(
      `baton gateway: the secret named in auth.secret is not set in the env; set it with \`wrangler secret put <name>\` (or .dev.vars locally). Refusing every call.`,
    );
    return Response.json(
      { code: "UNAUTHORIZED", message: "The gateway's token is not configured." },
      { status: 500 },
    );
  }
  const header = request.headers.get("Authorization");
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  // Only a WebSocket upgrade (browsers cannot set its headers) may carry the token in the URL.
  const websocket = request.headers.get("Upgrade")?.toLowerCase() === "websocket";
  const presented =
    bearer?.[1] ?? (websocket ? new URL(request.url).searchParams.get("token") : null);
  if (!presented) return unauthorized("A token is required: send `Authorization: Bearer <token>`.");
  return (await sameSecret(presented, secret)) ? null : unauthorized("The token is not valid.");
}

function unauthorized(message: string): Response {
  return Response.json(
    { code: "UNAUTHORIZED", message },
    { status: 401, headers: { "WWW-Authenticate": 'Bearer realm="baton"' } },
  );
}

/** Constant-time comparison: both sides are hashed to equal lengths first. */
async function sameSecret(presented: string, secret: string): Promise<boolean> {
  const encoder = new TextEncoder();
  const [a, b] = await Promise.all([
    crypto.subtle.digest("SHA-256", encoder.encode(presented)),
    crypto.subtle.digest("SHA-256", encoder.encode(secret)),
  ]);
  return crypto.subtle.timingSafeEqual(a, b);
}

function checkAuth(auth: unknown): void {
  const a = auth as Record<string, unknown> | undefined;
  const kinds =
    typeof a === "object" && a !== null
      ? [
          typeof a.secret === "string" && a.secret.length > 0,
          typeof a.authorize === "function",
          a.anonymous === true,
        ].filter(Boolean).length
      : 0;
  const ok = kinds === 1 && Object.keys(a as object).length === 1;
  if (!ok) {
    invalidArgument(
      "auth",
      "must be { secret: '<name of a Worker secret>' }, { authorize(request, env) } or, explicitly, { anonymous: true }",
      auth,
    );
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
