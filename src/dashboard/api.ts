import type { ExecutionActor } from "../../actors/execution-actor.ts";
import { checkpoints } from "../clients/checkpoints.ts";
import type { GatewayOperation, GatewayPolicy, GatewayTarget } from "../clients/gateway/policy.ts";
import { executionIndex } from "../clients/listing.ts";
import { liveProgress } from "../clients/live.ts";
import { locks } from "../clients/locks.ts";
import { schedules } from "../clients/schedules.ts";
import type { JournalEntry } from "../execution/types.ts";
import { findNamespace } from "../foundation/bindings.ts";
import { BatonError, checkId, type ErrorCode, isBatonError } from "../foundation/errors.ts";
import type { IndexCounts, IndexedStatus, ListQuery } from "../protocol/listing.ts";
import { DISPLAY_STEP_BYTES, forDisplay } from "./display.ts";

/** A dashboard's options, checked and with their defaults. */
export interface DashboardConfig<P> {
  namespaces: { binding: string; workflows: "*" | string[] }[];
  index: string;
  locks: string;
  checkpoints: string;
  schedules: string;
  can: GatewayPolicy<P> | undefined;
  readOnly: boolean;
  title: string;
}

type ExecutionStub = DurableObjectStub<ExecutionActor<never>>;
type Namespace = DurableObjectNamespace<ExecutionActor<never>>;

/** Journal entries one execution page shows at most (the rest: `truncated`). */
const JOURNAL_ENTRIES = 5000;
/** Largest request body the API reads (an event's type and payload). */
const BODY_BYTES = 1024 * 1024 + 4096;
const ACTIONS = ["pause", "resume", "cancel", "restart"] as const;
/** The counts of a filter that leaves no workflow shown. */
const NO_COUNTS: IndexCounts = {
  total: 0,
  byStatus: {
    pending: 0,
    running: 0,
    paused: 0,
    completed: 0,
    failed: 0,
    cancelled: 0,
    timed_out: 0,
  },
  byWorkflow: {},
};
const STATUS_BY_CODE: Partial<Record<ErrorCode, number>> = {
  INVALID_ARGUMENT: 400,
  INVALID_DURATION: 400,
  INVALID_INPUT: 400,
  PAYLOAD_TOO_LARGE: 413,
  LIMIT_EXCEEDED: 429,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  EXECUTION_NOT_FOUND: 404,
  CHECKPOINT_NOT_FOUND: 404,
  EXECUTION_FINISHED: 409,
  EXECUTION_CONFLICT: 409,
  INVALID_TRANSITION: 409,
  CONFLICT: 409,
  SCHEDULE_NOT_FOUND: 404,
  SCHEDULE_CONFLICT: 409,
};

/** The dashboard's JSON API (and its live-progress WebSocket), behind its authentication. */
export class DashboardApi<Env, P> {
  readonly #config: DashboardConfig<P>;

  constructor(config: DashboardConfig<P>) {
    this.#config = config;
  }

  /** Answers `route` (the path after `<mount>/api`) for an authenticated principal. */
  async serve(request: Request, env: Env, principal: P, route: string): Promise<Response> {
    try {
      return await this.#route(request, env, principal, route);
    } catch (error) {
      if (isBatonError(error)) {
        const status = STATUS_BY_CODE[error.code as ErrorCode] ?? 500;
        return Response.json({ code: error.code, message: error.message }, { status });
      }
      console.error("baton dashboard: a request failed", error);
      return Response.json(
        { code: "INTERNAL", message: "The request failed; see the Worker's logs." },
        { status: 500 },
      );
    }
  }

  async #route(request: Request, env: Env, principal: P, route: string): Promise<Response> {
    const url = new URL(request.url);
    let parts: string[];
    try {
      parts = route.split("/").slice(1).map(decodeURIComponent);
    } catch {
      throw new BatonError("INVALID_ARGUMENT", "The path has a malformed %-escape.");
    }
    const [head, id, action, extra] = parts;
    const get = request.method === "GET";
    const post = request.method === "POST";
    const allow = (operation: GatewayOperation, target: GatewayTarget) =>
      this.#allow(principal, operation, target);

    if (head === "session" && parts.length === 1 && get) return Response.json(this.#session(env));
    if (head === "executions" && parts.length === 1 && get) {
      const query = this.#shown(listQuery(url.searchParams, true));
      await allow("executions.list", { kind: "list", query: query ?? {} });
      if (!query) return Response.json({ executions: [], cursor: null });
      return Response.json(await executionIndex(this.#index(env)).list(query));
    }
    if (head === "counts" && parts.length === 1 && get) {
      const query = this.#shown(listQuery(url.searchParams, false));
      await allow("executions.list", { kind: "list", query: query ?? {} });
      if (!query) return Response.json(NO_COUNTS);
      return Response.json(await executionIndex(this.#index(env)).counts(query));
    }
    if (head === "executions" && id !== undefined) {
      checkId(id, "Execution id");
      const target: GatewayTarget = { kind: "execution", id };
      if (parts.length === 2 && get) {
        await allow("execution.status", target);
        // Its input and outcome are what `execution.result` guards (as in the gateway).
        const full = await this.#allows(principal, "execution.result", target);
        const { binding, stub } = await this.#execution(env, id);
        const details = await stub.describe();
        return Response.json({
          binding,
          details: {
            ...details,
            input: full
              ? forDisplay(details.input)
              : { $omitted: "not allowed (execution.result)" },
            result: !full
              ? null
              : details.result?.ok === true
                ? { ...details.result, value: forDisplay(details.result.value) }
                : details.result,
          },
          hidden: !full,
        });
      }
      if (action === "journal" && parts.length === 3 && get) {
        await allow("execution.journal", target);
        const from = integer(url.searchParams.get("from"), "from") ?? 0;
        return Response.json(await journal((await this.#execution(env, id)).stub, from));
      }
      if (action === "live" && parts.length === 3 && get) {
        await allow("execution.subscribe", target);
        return live(request, (await this.#execution(env, id)).namespace, id);
      }
      if (action === "events" && parts.length === 3 && post) {
        this.#writable();
        await allow("execution.sendEvent", target);
        const body = await readJson(request);
        const type = body?.type;
        if (!body || typeof type !== "string") {
          throw new BatonError("INVALID_ARGUMENT", 'Send JSON: { "type": "...", "payload": ... }.');
        }
        const { stub } = await this.#execution(env, id);
        return Response.json(await stub.sendEvent(type, (body.payload ?? null) as never));
      }
      const verb = ACTIONS.find((a) => a === action);
      if (verb && parts.length === 3 && post) {
        this.#writable();
        await allow(`execution.${verb}`, target);
        const { stub } = await this.#execution(env, id);
        return Response.json(await stub[verb]());
      }
    }
    if (head === "schedules") {
      const client = schedules(this.#require(env, this.#config.schedules, "Schedule"));
      if (id === undefined && parts.length === 1 && get) {
        await allow("schedules.list", { kind: "schedules" });
        const cursor = url.searchParams.get("cursor");
        return Response.json(await client.list({ limit: 100, cursor }));
      }
      if (id !== undefined && parts.length === 2 && get) {
        await allow("schedule.get", { kind: "schedule", id });
        const info = await client.get(id);
        return Response.json({ ...info, input: forDisplay(info.input) });
      }
      const verb = (["pause", "resume", "trigger"] as const).find((a) => a === action);
      if (id !== undefined && verb && parts.length === 3 && post) {
        this.#writable();
        await allow(`schedule.${verb}`, { kind: "schedule", id });
        return Response.json(await client[verb](id));
      }
    }
    if (head === "locks" && id !== undefined && parts.length === 2 && get) {
      await allow("lock.status", { kind: "lock", name: id });
      return Response.json(await locks(this.#require(env, this.#config.locks, "Lock")).status(id));
    }
    if (head === "checkpoints" && id !== undefined && get) {
      const client = checkpoints(this.#require(env, this.#config.checkpoints, "Checkpoint"));
      if (parts.length === 2) {
        await allow("checkpoint.list", { kind: "checkpoint", scope: id });
        return Response.json(await client.list(id));
      }
      if (action !== undefined && parts.length === 3) {
        await allow("checkpoint.history", { kind: "checkpoint", scope: id, name: action });
        const from = integer(url.searchParams.get("from"), "from");
        return Response.json(
          await client.history(id, action, {
            ...(from !== undefined ? { fromVersion: from } : {}),
            limit: 100,
          }),
        );
      }
      if (action !== undefined && extra !== undefined && parts.length === 4) {
        await allow("checkpoint.load", { kind: "checkpoint", scope: id, name: action });
        const version = integer(extra, "version");
        const loaded = await client.load(id, action, version !== undefined ? { version } : {});
        return Response.json({ ...loaded, value: forDisplay(loaded.value) });
      }
    }
    return Response.json({ code: "NOT_FOUND", message: "No such dashboard API." }, { status: 404 });
  }

  #session(env: Env) {
    const config = this.#config;
    return {
      title: config.title,
      readOnly: config.readOnly,
      namespaces: config.namespaces.map((n) => ({
        binding: n.binding,
        workflows: n.workflows,
        bound: findNamespace(env, n.binding) !== null,
      })),
      features: {
        list: findNamespace(env, config.index) !== null,
        locks: findNamespace(env, config.locks) !== null,
        checkpoints: findNamespace(env, config.checkpoints) !== null,
        schedules: findNamespace(env, config.schedules) !== null,
      },
    };
  }

  /** Whether the policy (if any) allows it; a policy that throws refuses. */
  async #allows(
    principal: P,
    operation: GatewayOperation,
    target: GatewayTarget,
  ): Promise<boolean> {
    const can = this.#config.can;
    if (!can) return true;
    try {
      return (await can(principal, operation, target)) === true;
    } catch (error) {
      console.error("baton dashboard: the policy threw; the call is refused", error);
      return false;
    }
  }

  async #allow(principal: P, operation: GatewayOperation, target: GatewayTarget): Promise<void> {
    if (!(await this.#allows(principal, operation, target))) {
      throw new BatonError("FORBIDDEN", `The dashboard's policy refused ${operation}.`, {
        operation,
      });
    }
  }

  #writable(): void {
    if (this.#config.readOnly) {
      throw new BatonError("FORBIDDEN", "This dashboard is read-only.");
    }
  }

  #index(env: Env) {
    return this.#require(env, this.#config.index, "ExecutionIndex");
  }

  #require(env: Env, binding: string, what: string) {
    const ns = findNamespace<never>(env, binding);
    if (!ns) {
      throw new BatonError(
        "CONFIGURATION_ERROR",
        `The dashboard needs the ${what} actor bound as "${binding}" (or set its binding in the dashboard's options).`,
        { binding },
      );
    }
    return ns as DurableObjectNamespace<never>;
  }

  /**
   * A list query narrowed to the workflows shown (when every binding lists its workflows), or
   * null when the query's own workflow filter leaves none of them.
   */
  #shown(query: ListQuery): ListQuery | null {
    const { namespaces } = this.#config;
    if (namespaces.some((n) => n.workflows === "*")) return query;
    const shown = new Set(namespaces.flatMap((n) => n.workflows as string[]));
    const asked =
      query.workflow === undefined
        ? [...shown]
        : (Array.isArray(query.workflow) ? query.workflow : [query.workflow]).filter((w) =>
            shown.has(w as string),
          );
    return asked.length ? { ...query, workflow: asked as string[] } : null;
  }

  /**
   * The Execution actor of execution `id`: on the one namespace shown, or, with several, on the
   * one running its workflow (as the ExecutionIndex lists it; the first that lists it).
   */
  async #execution(env: Env, id: string) {
    const { namespaces } = this.#config;
    let chosen = namespaces.length === 1 ? namespaces[0] : undefined;
    if (!chosen) {
      const indexed = findNamespace(env, this.#config.index)
        ? await executionIndex(this.#index(env)).get(id)
        : null;
      if (!indexed) {
        throw new BatonError(
          "EXECUTION_NOT_FOUND",
          `No execution "${id}" in the ExecutionIndex (yet): with several Execution actors shown, the dashboard opens an execution by its workflow, as the index lists it.`,
        );
      }
      chosen =
        namespaces.find((n) => n.workflows !== "*" && n.workflows.includes(indexed.workflow)) ??
        namespaces.find((n) => n.workflows === "*");
      if (!chosen) {
        throw new BatonError(
          "EXECUTION_NOT_FOUND",
          `Execution "${id}" runs workflow "${indexed.workflow}", which this dashboard does not show: add it to the dashboard's \`executions\` option.`,
          { workflow: indexed.workflow },
        );
      }
    }
    const namespace = this.#require(env, chosen.binding, "Execution") as unknown as Namespace;
    const stub: ExecutionStub = namespace.getByName(id);
    return { binding: chosen.binding, namespace, stub };
  }
}

/** The list filters of the query string (`workflow`, `status`, `after`, `before`, `prefix`). */
function listQuery(params: URLSearchParams, paged: boolean): ListQuery {
  const query: ListQuery = {};
  const workflow = params.get("workflow");
  if (workflow) query.workflow = workflow;
  const status = params.get("status");
  if (status) query.status = status.split(",") as IndexedStatus[];
  const prefix = params.get("prefix");
  if (prefix) query.idPrefix = prefix;
  const after = integer(params.get("after"), "after");
  if (after !== undefined) query.startedAfter = after;
  const before = integer(params.get("before"), "before");
  if (before !== undefined) query.startedBefore = before;
  if (paged) {
    const limit = integer(params.get("limit"), "limit");
    if (limit !== undefined) query.limit = limit;
    const cursor = params.get("cursor");
    if (cursor) query.cursor = cursor;
  }
  return query;
}

function integer(text: string | null, name: string): number | undefined {
  if (text === null || text === "") return undefined;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new BatonError("INVALID_ARGUMENT", `${name} must be a whole number, got "${text}".`);
  }
  return n;
}

/** The journal, page by page, up to {@link JOURNAL_ENTRIES}; outputs as the table shows them. */
async function journal(stub: ExecutionStub, start: number) {
  const entries: JournalEntry[] = [];
  // Pages end early when their outputs are large: read on until a page comes back empty.
  for (let from = start; entries.length < JOURNAL_ENTRIES; ) {
    const page = await stub.journal({
      from,
      limit: Math.min(1000, JOURNAL_ENTRIES - entries.length),
    });
    if (page.length === 0) return { entries, truncated: false };
    for (const entry of page) {
      entries.push(
        "output" in entry
          ? { ...entry, output: forDisplay(entry.output, DISPLAY_STEP_BYTES) as never }
          : entry,
      );
    }
    from = (page.at(-1)?.seq ?? from) + 1;
  }
  const more = await stub.journal({ from: (entries.at(-1)?.seq ?? 0) + 1, limit: 1 });
  return { entries, truncated: more.length > 0 };
}

/**
 * The execution's live progress, for the page's WebSocket: authenticated already (the token
 * came as a subprotocol), which is answered with the dashboard's own subprotocol.
 */
async function live(request: Request, namespace: Namespace, id: string): Promise<Response> {
  const headers = new Headers(request.headers);
  headers.delete("Sec-WebSocket-Protocol");
  headers.delete("Authorization");
  const response = await liveProgress(new Request(request.url, { headers }), namespace, id);
  if (response.status !== 101 || !response.webSocket) return response;
  const offered = request.headers.get("Sec-WebSocket-Protocol") ?? "";
  return new Response(null, {
    status: 101,
    webSocket: response.webSocket,
    headers: offered.split(",").some((p) => p.trim() === "baton.dashboard")
      ? { "Sec-WebSocket-Protocol": "baton.dashboard" }
      : {},
  });
}

async function readJson(request: Request): Promise<Record<string, unknown> | null> {
  const tooLarge = () =>
    new BatonError("PAYLOAD_TOO_LARGE", `The request body is over ${BODY_BYTES} bytes.`);
  if (Number(request.headers.get("Content-Length") ?? "0") > BODY_BYTES) throw tooLarge();
  // Read up to the limit, not past it (a body without a length may be anything).
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  const reader = request.body?.getReader();
  for (;;) {
    const chunk = reader ? await reader.read() : { done: true as const, value: undefined };
    if (chunk.done) break;
    bytes += chunk.value.byteLength;
    if (bytes > BODY_BYTES) {
      await reader?.cancel();
      throw tooLarge();
    }
    chunks.push(chunk.value);
  }
  const all = new Uint8Array(bytes);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.byteLength;
  }
  const text = new TextDecoder().decode(all);
  try {
    const body = JSON.parse(text) as unknown;
    return typeof body === "object" && body !== null ? (body as Record<string, unknown>) : null;
  } catch {
    throw new BatonError("INVALID_ARGUMENT", "The request body must be JSON.");
  }
}
