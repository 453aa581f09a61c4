import type { RpcSessionOptions } from "capnweb";
import type { ExecutionActor } from "../../../actors/execution-actor.ts";
import { findNamespace } from "../../foundation/bindings.ts";
import { checkId, invalidArgument, isBatonError } from "../../foundation/errors.ts";
import type { AnyWorkflow } from "../../workflow/workflow.ts";
import { liveProgress } from "../live.ts";
import { BatonApi } from "./api.ts";
import { authenticate, checkAuth, type GatewayAuth } from "./auth.ts";
import { type GatewayLimits, type ResolvedLimits, resolveLimits } from "./limits.ts";
import { type GatewayPolicy, Policy } from "./policy.ts";
import { type GatewayBindings, GatewaySession } from "./session.ts";
import { serveBatch, serveWebSocket } from "./transport.ts";

/** Options of {@link gateway}. */
export interface GatewayOptions<Env, W extends readonly AnyWorkflow[], P = true> {
  /**
   * The workflows callers may reach, by definition: they start them by name (typed as
   * `api.workflows.<name>`), and calls by execution id (`status`, `cancel`, `subscribe` ...) and
   * `list` reach only executions of these workflows.
   */
  workflows: W;
  /** Who may call. Required: there is no anonymous default. */
  auth: GatewayAuth<Env, P>;
  /**
   * Per-call authorization: asked before every call reaches an actor, with the principal
   * `authorize` returned (see {@link GatewayPolicy}). Without it, every authenticated caller may
   * do everything the defaults allow (executions of the served workflows only, checked once the
   * execution is read; never Baton's own lock names and checkpoint scopes).
   */
  can?: GatewayPolicy<P>;
  /** Budgets of a session (see {@link GatewayLimits} for the defaults). */
  limits?: GatewayLimits;
  /** Names of the bindings in the Worker's env (defaults shown). */
  bindings?: GatewayBindings;
  /** Where the capnweb endpoint is served (WebSocket and HTTP batch). Default `"/rpc"`. */
  path?: string;
  /**
   * Prefix of the live-progress WebSocket route `<prefix>/executions/<id>/live`. Default `""`.
   */
  livePrefix?: string;
  /**
   * Browser origins allowed to call (their `Origin` header). Requests from other origins get
   * 403; requests without an `Origin` (Node, other servers) are not affected. Set it whenever
   * `authorize` relies on cookies, which a browser sends from any site. Without it, CORS answers
   * allow any origin (`*`, never an echo of the caller's) and carry no credentials.
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

/**
 * A Cap'n Web gateway: serves {@link BatonApi} at `path` (WebSocket and HTTP batch) and the
 * live-progress WebSocket at `<livePrefix>/executions/<id>/live`, behind `auth`, with every call
 * checked against `can` and within `limits`.
 *
 * @example
 * ```ts
 * const api = gateway({
 *   workflows: [greet, orderFlow],
 *   auth: { authorize: async (request, env) => (await session(request, env))?.tenant ?? false },
 *   // a tenant reaches only its own executions: their ids start with "<tenant>/"
 *   can: (tenant, operation, target) =>
 *     target.kind === "execution" ? target.id.startsWith(`${tenant}/`)
 *     : target.kind === "list" ? target.query.idPrefix === `${tenant}/`
 *     : false,
 * });
 * export type Api = BatonApi<[typeof greet, typeof orderFlow]>;
 * export default {
 *   async fetch(request, env) {
 *     return (await api.fetch(request, env)) ?? new Response("Not found", { status: 404 });
 *   },
 * };
 * ```
 */
export function gateway<Env, const W extends readonly AnyWorkflow[], P = true>(
  options: GatewayOptions<Env, W, P>,
): Gateway<Env> {
  checkAuth(options?.auth);
  if (!Array.isArray(options.workflows)) {
    invalidArgument(
      "workflows",
      "must be the array of workflows the gateway serves",
      options.workflows,
    );
  }
  if (options.can !== undefined && typeof options.can !== "function") {
    invalidArgument(
      "can",
      "must be a function (principal, operation, target) => boolean",
      options.can,
    );
  }
  const limits = resolveLimits(options.limits);
  const served = [...new Set(options.workflows.map((wf) => wf.name))];
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
      const cors = corsHeaders(origin, options.origins);
      // A browser's CORS preflight carries no credentials: answer it before authentication.
      if (request.method === "OPTIONS") {
        return new Response(null, {
          status: 204,
          headers: {
            ...cors,
            "Access-Control-Allow-Methods": "POST, GET, OPTIONS",
            "Access-Control-Allow-Headers": "Authorization, Content-Type",
            "Access-Control-Max-Age": "86400",
          },
        });
      }
      const who = await authenticate(request, env, options.auth);
      if ("refused" in who) return withHeaders(who.refused, cors);
      const policy = new Policy<P>(served, who.principal, options.can);
      if (liveMatch) {
        return withHeaders(await serveLive(env, options, policy, limits, liveMatch[1] ?? ""), cors);
      }
      const batch = request.method === "POST";
      const session = new GatewaySession<P>(env, options.bindings, policy, limits, batch);
      const api = new BatonApi(session as GatewaySession);
      if (batch) return withHeaders(await serveBatch(request, api, limits, SESSION), cors);
      if (request.headers.get("Upgrade")?.toLowerCase() === "websocket") {
        return serveWebSocket(api, limits, SESSION);
      }
      return Response.json(
        {
          code: "INVALID_ARGUMENT",
          message: "This endpoint takes Cap'n Web over a WebSocket or an HTTP batch (POST).",
        },
        { status: 400, headers: cors },
      );
    },
  };
}

/** The live route: the policy decides as for `subscribe`, then the actor's WebSocket. */
async function serveLive<Env, P>(
  env: Env,
  options: GatewayOptions<Env, readonly AnyWorkflow[], P>,
  policy: Policy<P>,
  limits: ResolvedLimits,
  encoded: string,
): Promise<Response> {
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
    id = checkId(decodeURIComponent(encoded), "The execution id in the path");
  } catch (error) {
    const message = isBatonError(error)
      ? error.message
      : "The execution id in the path is not valid.";
    return Response.json({ code: "INVALID_ARGUMENT", message }, { status: 400 });
  }
  const session = new GatewaySession<P>(env, options.bindings, policy, limits, false);
  try {
    await session.allow("execution.subscribe", id);
  } catch (error) {
    if (!isBatonError(error)) {
      console.error("baton gateway: the live route could not reach the execution", error);
      return Response.json({ message: "The execution cannot be reached now." }, { status: 502 });
    }
    const status =
      error.code === "EXECUTION_NOT_FOUND" ? 404 : error.code === "FORBIDDEN" ? 403 : 400;
    return Response.json({ code: error.code, message: error.message }, { status });
  }
  // A fresh request: the caller's headers (its token among them) stay at the gateway.
  return liveProgress(
    new Request("https://baton.internal/live", { headers: { Upgrade: "websocket" } }),
    ns,
    id,
  );
}

/**
 * What capnweb sends of an error: Baton errors keep their `code` and `details` (with any
 * internal id removed), other errors only their name and message; never a stack.
 */
const SESSION: RpcSessionOptions = {
  onSendError(error: Error): Error {
    const safe = new Error(error.message);
    safe.name = error.name;
    safe.stack = undefined;
    if (isBatonError(error)) {
      Object.assign(safe, {
        code: error.code,
        baton: true,
        ...(error.details ? { details: scrub(error.details) } : {}),
      });
    }
    return safe;
  },
};

/** Keys that name Baton's or the platform's internals: never sent to a gateway client. */
const INTERNAL_KEYS = new Set(["durableObjectId", "source", "stack", "cause"]);

/**
 * A copy of `details` without internal ids, in nested objects and arrays too; what lies deeper
 * than a few levels (Baton's details never do) is left out.
 */
function scrub(value: object): Record<string, unknown> {
  return clean(value, 0) as Record<string, unknown>;
}

function clean(value: unknown, depth: number): unknown {
  if (typeof value !== "object" || value === null) return value;
  if (depth >= 4) return undefined;
  if (Array.isArray(value)) return value.map((entry) => clean(entry, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, entry] of Object.entries(value)) {
    if (!INTERNAL_KEYS.has(key)) out[key] = clean(entry, depth + 1);
  }
  return out;
}

/**
 * CORS headers: with an `origins` list, the caller's origin when it is on it; without one, `*`
 * (a browser then sends no credentials, and no origin is echoed back).
 */
function corsHeaders(
  origin: string | null,
  origins: readonly string[] | undefined,
): Record<string, string> {
  if (!origins) return { "Access-Control-Allow-Origin": "*" };
  // A listed origin may send credentials (an `authorize` that reads a cookie needs them).
  return origin && origins.includes(origin)
    ? {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        Vary: "Origin",
      }
    : { Vary: "Origin" };
}

function withHeaders(response: Response, headers: Record<string, string>): Response {
  // A 101 (WebSocket) response's headers cannot change; it needs no CORS headers anyway.
  if (response.status === 101) return response;
  const out = new Response(response.body, response);
  for (const [key, value] of Object.entries(headers)) out.headers.set(key, value);
  return out;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
