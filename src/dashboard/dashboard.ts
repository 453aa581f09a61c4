import { authenticate, checkAuth, type GatewayAuth } from "../clients/gateway/auth.ts";
import type { GatewayPolicy } from "../clients/gateway/policy.ts";
import { invalidArgument } from "../foundation/errors.ts";
import type { AnyWorkflow } from "../workflow/workflow.ts";
import { DashboardApi, type DashboardConfig } from "./api.ts";
import { DASHBOARD_CSS, DASHBOARD_HASH, DASHBOARD_JS } from "./assets.generated.ts";

/** Options of {@link dashboard}. */
export interface DashboardOptions<Env, P = true> {
  /**
   * Who may use it, as for the gateway: `{ secret: "BATON_TOKEN" }` (a bearer token the page asks
   * for once and keeps for the browser tab), `{ authorize(request, env) }` (your own check: a
   * session, Cloudflare Access), or — explicitly, for local development — `{ anonymous: true }`,
   * which is served only to requests for loopback host names (`localhost`, `127.0.0.1`, `[::1]`)
   * from loopback addresses. Keep `wrangler dev` on a loopback address then: headers are all it
   * can tell a caller by, and a machine on your network can forge them.
   */
  auth: GatewayAuth<Env, P>;
  /** Where it is mounted. Default `"/dashboard"`. */
  path?: string;
  /**
   * The Execution actor bindings to show, each with the workflows it runs (definitions or
   * names), or `"*"` for the one that runs any other. Default `{ Executions: "*" }`. An
   * execution is opened on the binding of its workflow (as the ExecutionIndex lists it).
   */
  executions?: Readonly<Record<string, "*" | readonly (AnyWorkflow | string)[]>>;
  /**
   * Bindings of the ExecutionIndex (the executions list), the Lock actor, the Checkpoint actor
   * and the Schedule actor (defaults shown). A view whose binding is not in the env says so
   * instead.
   */
  bindings?: { index?: string; locks?: string; checkpoints?: string; schedules?: string };
  /**
   * Per-call authorization, with the principal `authorize` returned: the same operations and
   * targets as the gateway's policy (`executions.list`, `execution.status`, `execution.cancel`
   * ...). Anything but `true` refuses the call with 403 `FORBIDDEN`.
   */
  can?: GatewayPolicy<P>;
  /** No actions (events, pause, resume, cancel, restart): a read-only dashboard. */
  readOnly?: boolean;
  /** The name in the page's header. Default `"Baton"`. */
  title?: string;
}

/** A mounted dashboard: call `fetch` from your Worker's fetch handler. */
export interface Dashboard<Env> {
  /** Serves the dashboard's page, assets and API under its path; `null` for any other path. */
  fetch(request: Request, env: Env): Promise<Response | null>;
}

const PATH = /^\/[A-Za-z0-9._~-]+(\/[A-Za-z0-9._~-]+)*$/;
const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]"]);

/**
 * The Baton dashboard, to mount in your Worker: the executions (filters by workflow, status and
 * time, counts by status), each execution's page (its input and outcome, its steps on a
 * timeline with every attempt, backoff, sleep, wait and child, the journal, live progress) with
 * its actions (send an event, pause, resume, cancel, restart), and views of a lock and of a
 * checkpoint scope. It reads and acts through Baton's own actors' APIs, behind `auth`; the page
 * needs no network beyond your Worker.
 *
 * @example
 * ```ts
 * const admin = dashboard({
 *   auth: { secret: "BATON_TOKEN" },
 *   executions: { Executions: [orderFlow, greet] },
 * });
 * export default {
 *   async fetch(request, env) {
 *     return (await admin.fetch(request, env)) ?? new Response("Not found", { status: 404 });
 *   },
 * } satisfies ExportedHandler<Env>;
 * ```
 * @throws BatonError `INVALID_ARGUMENT` for bad options (an auth that is not one of the three
 *   forms, a path that is not `/name[/name...]`, bindings that are not names).
 */
export function dashboard<Env, P = true>(options: DashboardOptions<Env, P>): Dashboard<Env> {
  checkAuth(options?.auth);
  const path = options.path ?? "/dashboard";
  if (typeof path !== "string" || !PATH.test(path)) {
    invalidArgument(
      "path",
      'must look like "/dashboard" (letters, digits, "._~-", no trailing /)',
      path,
    );
  }
  const config = resolveConfig(options);
  const api = new DashboardApi<Env, P>(config);
  const anonymous = "anonymous" in options.auth;
  const assets = {
    js: `${path}/assets/app.${DASHBOARD_HASH}.js`,
    css: `${path}/assets/app.${DASHBOARD_HASH}.css`,
  };
  return {
    async fetch(request, env) {
      const url = new URL(request.url);
      if (url.pathname !== path && !url.pathname.startsWith(`${path}/`)) return null;
      const rest = url.pathname.slice(path.length);
      if (rest.startsWith("/api/")) {
        const refused = crossSite(request, url) ?? (anonymous ? notLoopback(request, url) : null);
        if (refused) return refused;
        // The token in a header only (the page's WebSocket offers it as a subprotocol), never
        // in the URL, which logs keep.
        const auth = await authenticate(withBearer(request), env, options.auth, {
          urlToken: false,
        });
        if ("refused" in auth) {
          // Tells the page whether to ask for a token or to say the hook refused.
          const refusal = secure(auth.refused);
          refusal.headers.set("X-Baton-Auth", "secret" in options.auth ? "token" : "hook");
          return refusal;
        }
        const answer = secure(
          await api.serve(request, env, auth.principal, rest.slice("/api".length)),
        );
        if (answer.status !== 101) answer.headers.set("Cache-Control", "no-store");
        return answer;
      }
      if (request.method !== "GET" && request.method !== "HEAD") {
        return secure(
          Response.json(
            { code: "METHOD_NOT_ALLOWED", message: "The dashboard's pages are read with GET." },
            { status: 405, headers: { Allow: "GET, HEAD" } },
          ),
        );
      }
      if (url.pathname === assets.js) return asset(DASHBOARD_JS, "text/javascript");
      if (url.pathname === assets.css) return asset(DASHBOARD_CSS, "text/css");
      if (rest.startsWith("/assets/")) {
        return secure(new Response("Not found", { status: 404 }));
      }
      // Any other path is a page of the app (its router reads the URL): the shell, no data.
      return secure(
        new Response(shell(path, config.title, assets), {
          headers: { "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store" },
        }),
      );
    },
  };
}

function resolveConfig<Env, P>(options: DashboardOptions<Env, P>): DashboardConfig<P> {
  const executions = options.executions ?? { Executions: "*" };
  if (
    typeof executions !== "object" ||
    executions === null ||
    Object.keys(executions).length === 0
  ) {
    invalidArgument("executions", "must name at least one Execution actor binding", executions);
  }
  const namespaces: DashboardConfig<P>["namespaces"] = [];
  for (const [binding, workflows] of Object.entries(executions)) {
    if (workflows === "*") {
      namespaces.push({ binding, workflows: "*" });
      continue;
    }
    if (!Array.isArray(workflows)) {
      invalidArgument(`executions.${binding}`, 'must be "*" or a list of workflows', workflows);
    }
    const names = workflows.map((w) => (typeof w === "string" ? w : w?.name));
    if (!names.every((n) => typeof n === "string" && n.length > 0)) {
      invalidArgument(`executions.${binding}`, "must list workflows or their names", workflows);
    }
    namespaces.push({ binding, workflows: names as string[] });
  }
  const bindings = options.bindings ?? {};
  for (const [key, value] of Object.entries(bindings)) {
    if (value !== undefined && (typeof value !== "string" || value.length === 0)) {
      invalidArgument(`bindings.${key}`, "must be the name of a binding", value);
    }
  }
  if (options.can !== undefined && typeof options.can !== "function") {
    invalidArgument("can", "must be a function (principal, operation, target)", options.can);
  }
  return {
    namespaces,
    index: bindings.index ?? "ExecutionIndex",
    locks: bindings.locks ?? "Locks",
    checkpoints: bindings.checkpoints ?? "Checkpoints",
    schedules: bindings.schedules ?? "Schedules",
    can: options.can,
    readOnly: options.readOnly === true,
    title: typeof options.title === "string" && options.title ? options.title : "Baton",
  };
}

/**
 * A request another site made the browser send (a form post, a cross-site WebSocket): refused.
 * Every API call from the page also carries `X-Baton-Dashboard`, a header no other site can add
 * without a CORS preflight, which this handler never grants.
 */
function crossSite(request: Request, url: URL): Response | null {
  const origin = request.headers.get("Origin");
  const site = request.headers.get("Sec-Fetch-Site");
  const websocket = request.headers.get("Upgrade")?.toLowerCase() === "websocket";
  const foreign =
    (origin !== null && origin !== url.origin) ||
    (site !== null && site !== "same-origin" && site !== "none") ||
    (!websocket && request.headers.get("X-Baton-Dashboard") !== "1");
  return foreign
    ? secure(
        Response.json(
          { code: "FORBIDDEN", message: "The dashboard's API answers its own page only." },
          { status: 403 },
        ),
      )
    : null;
}

/**
 * An anonymous dashboard is for local development: not for a host name that resolves elsewhere
 * (a DNS rebinding), nor for a caller on another address as `wrangler dev` reports it
 * (`CF-Connecting-IP`; deployed, Cloudflare sets it).
 */
function notLoopback(request: Request, url: URL): Response | null {
  const caller = request.headers.get("CF-Connecting-IP");
  const local =
    LOOPBACK.has(url.hostname) &&
    (caller === null ||
      caller === "::1" ||
      caller.startsWith("127.") ||
      caller === "::ffff:127.0.0.1");
  return local
    ? null
    : secure(
        Response.json(
          {
            code: "FORBIDDEN",
            message:
              "This dashboard is anonymous, so it answers only on localhost, 127.0.0.1 or [::1]. Give it auth ({ secret } or { authorize }) to serve it elsewhere.",
          },
          { status: 403 },
        ),
      );
}

/**
 * The request as the gateway's `authenticate` reads it: a browser's WebSocket cannot send an
 * Authorization header, so the page offers the token as a WebSocket subprotocol
 * (`baton.bearer.<base64url token>`) instead, which becomes the header here (never the URL).
 */
function withBearer(request: Request): Request {
  const offered = request.headers.get("Sec-WebSocket-Protocol");
  const bearer = offered
    ?.split(",")
    .map((p) => p.trim())
    .find((p) => p.startsWith("baton.bearer."));
  if (!bearer || request.headers.has("Authorization")) return request;
  let token: string;
  try {
    const binary = atob(
      bearer.slice("baton.bearer.".length).replaceAll("-", "+").replaceAll("_", "/"),
    );
    token = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(
      Uint8Array.from(binary, (c) => c.charCodeAt(0)),
    );
  } catch {
    return request;
  }
  // A token a header cannot carry (control characters) is no token: refused like a wrong one.
  if (!/^[\x21-\x7e\u0080-\uffff][\x20-\x7e\u0080-\uffff]*$/.test(token)) return request;
  const headers = new Headers(request.headers);
  try {
    headers.set("Authorization", `Bearer ${token}`);
  } catch {
    return request;
  }
  return new Request(request.url, { method: request.method, headers });
}

/** The security headers of every dashboard response. */
function secure(response: Response): Response {
  if (response.status === 101) return response;
  const headers = new Headers(response.headers);
  headers.set(
    "Content-Security-Policy",
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  );
  headers.set("X-Content-Type-Options", "nosniff");
  headers.set("Referrer-Policy", "no-referrer");
  headers.set("X-Frame-Options", "DENY");
  return new Response(response.body, { status: response.status, headers });
}

function asset(body: string, type: string): Response {
  return secure(
    new Response(body, {
      headers: {
        "Content-Type": `${type}; charset=utf-8`,
        // The name carries the content's hash: a new build is a new name.
        "Cache-Control": "public, max-age=31536000, immutable",
      },
    }),
  );
}

function shell(path: string, title: string, assets: { js: string; css: string }): string {
  const text = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${text(title)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${text(assets.css)}">
</head>
<body data-base="${text(path)}">
<noscript>The Baton dashboard needs JavaScript.</noscript>
<script type="module" src="${text(assets.js)}"></script>
</body>
</html>
`;
}
