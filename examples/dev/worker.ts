/**
 * The local dev Worker (`npm run dev`). It binds the actors listed in wrangler.toml and serves
 * the examples:
 *
 * - `GET /` — a page linking to the dashboard (JSON for non-browsers: the bound actors and the
 *   routes below).
 * - `/dashboard` — the Baton dashboard: executions, their timelines, live progress, actions, locks
 *   and checkpoints. Under `npm run dev` it opens without a token (see `dashboards` below);
 *   deployed, it asks for `BATON_TOKEN`.
 * - `/rpc` — the Cap'n Web gateway (WebSocket or HTTP batch) serving the order workflow, locks,
 *   checkpoints and listing to browsers and Node (examples/node-client); token `BATON_TOKEN`
 *   (`npm run dev` passes `dev-token`; deployed, a secret).
 * - `GET /executions/:id/live` — an execution's live progress (WebSocket), same token.
 *
 * Local examples of the typed client inside a Worker (REST, JSON). They are open only when the
 * Worker runs locally: `npm run dev` passes `--var BATON_LOCAL_DEV:true`, which is never in
 * wrangler.toml, so a copy deployed with `wrangler deploy` answers them only with the token
 * (`Authorization: Bearer <BATON_TOKEN>`), and 401 without it.
 *
 * - `POST /reminders/:user` with JSON `{ "text": "...", "after": "30s" }` — add a reminder.
 * - `GET /reminders/:user` — list a user's reminders.
 * - `POST /orders` with JSON `{ orderId, items, amount }` — start the order workflow.
 * - `GET /orders/:id`, `GET /orders/:id/journal`, `GET /orders/:id/result` — follow it.
 * - `POST /orders/:id/approve` with JSON `{ approved, by }` — send the approval event.
 * - `POST /playground` with JSON `{ id?, steps: [...] }` — start a playground execution, whose
 *   steps its input spells out (examples/playground): to try the dashboard.
 * - `POST /schedules` with JSON `{ id, cron | every, timezone?, steps?: [...] }` — schedule
 *   playground executions (the dashboard's Schedules view shows, pauses and triggers them).
 */
import {
  type BatonApi,
  BatonError,
  type CheckpointActor,
  checkId,
  dashboard,
  type ExecutionIndex,
  executions,
  gateway,
  isBatonError,
  type LockActor,
  type ScheduleActor,
  schedules,
} from "../../src/index.ts";
import { type Order, Orders, orderFlow, Payments } from "../orders/orders.ts";
import { type Playground, PlaygroundExecutions, playground } from "../playground/playground.ts";
import { Reminders } from "../reminders/reminders.ts";

// Baton's Lock and Checkpoint actors and the execution index, bound as they are.
export {
  CheckpointActor as Checkpoints,
  ExecutionIndex,
  LockActor as Locks,
  ScheduleActor as Schedules,
} from "../../src/index.ts";
export { Orders, Payments, PlaygroundExecutions, Reminders };

export interface Env {
  Reminders: DurableObjectNamespace<Reminders>;
  Orders: DurableObjectNamespace<Orders>;
  Payments: DurableObjectNamespace<Payments>;
  Playground: DurableObjectNamespace<PlaygroundExecutions>;
  Locks: DurableObjectNamespace<LockActor>;
  Checkpoints: DurableObjectNamespace<CheckpointActor>;
  ExecutionIndex: DurableObjectNamespace<ExecutionIndex>;
  /** Schedules of playground executions (they start them on the Playground binding). */
  Schedules: DurableObjectNamespace<ScheduleActor>;
  /** The gateway's token (`npm run dev` passes a local value; a secret in production). */
  BATON_TOKEN: string;
  /** `"true"` only under `npm run dev` (a command-line var): opens the local example routes. */
  BATON_LOCAL_DEV?: string;
}

/** The Cap'n Web gateway: the order workflow, locks, checkpoints and listing, behind a token. */
const api = gateway({
  workflows: [orderFlow],
  auth: { secret: "BATON_TOKEN" },
  bindings: { executions: "Orders" },
});

/** The Execution actors the dashboard shows, with the workflows each runs. */
const shown = { Orders: [orderFlow], Playground: [playground] };

/**
 * The dashboard, twice. Under `npm run dev` (BATON_LOCAL_DEV is "true", a command-line var that
 * is never in wrangler.toml) this Worker opts in to local access: the dashboard opens without a
 * token — and dashboard() serves anonymous access on loopback host names only. Anywhere else
 * (a deployed copy) it asks for BATON_TOKEN.
 */
const dashboards = {
  local: dashboard({ auth: { anonymous: true }, executions: shown, title: "Baton (local dev)" }),
  token: dashboard({ auth: { secret: "BATON_TOKEN" }, executions: shown }),
};

/** What a client imports (type only): `newWebSocketRpcSession<DevApi>(url)`. */
export type DevApi = BatonApi<[typeof orderFlow]>;

const ROUTES = [
  "GET /",
  "POST /reminders/:user",
  "GET /reminders/:user",
  "POST /orders",
  "GET /orders/:id",
  "GET /orders/:id/journal",
  "GET /orders/:id/result",
  "POST /orders/:id/approve",
  "POST /playground",
  "POST /schedules",
  "GET /dashboard (the dashboard)",
  "POST|WS /rpc (capnweb; Authorization: Bearer <BATON_TOKEN>)",
  "WS /executions/:id/live (Authorization: Bearer <BATON_TOKEN>)",
];

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    const served =
      (await api.fetch(request, env)) ??
      (await (env.BATON_LOCAL_DEV === "true" ? dashboards.local : dashboards.token).fetch(
        request,
        env,
      ));
    if (served) return served;
    try {
      if (url.pathname === "/" && request.method === "GET") {
        if (request.headers.get("Accept")?.includes("text/html")) return home();
        return Response.json({
          name: "baton-dev",
          local: env.BATON_LOCAL_DEV === "true",
          actors: boundActors(env),
          routes: ROUTES,
        });
      }
      if (!(await localOrToken(request, env))) {
        return Response.json(
          {
            code: "UNAUTHORIZED",
            message:
              "The example routes are open only under `npm run dev`; elsewhere send Authorization: Bearer <BATON_TOKEN>.",
          },
          { status: 401 },
        );
      }
      return await examples(request, env, url);
    } catch (error) {
      if (isBatonError(error)) {
        const status = error.code.endsWith("NOT_FOUND")
          ? 404
          : error.code === "RESULT_TIMEOUT"
            ? 408
            : 400;
        return Response.json({ code: error.code, message: error.message }, { status });
      }
      // Logged here; the caller gets no stack trace.
      console.error("baton-dev: a route failed", error);
      return Response.json(
        { error: "internal", message: "The request failed; see the Worker's log." },
        { status: 500 },
      );
    }
  },
} satisfies ExportedHandler<Env>;

/** The local example routes (REST over the typed clients). */
async function examples(request: Request, env: Env, url: URL): Promise<Response> {
  const reminders = /^\/reminders\/([\w.-]{1,64})$/.exec(url.pathname);
  if (reminders?.[1]) {
    const stub = env.Reminders.getByName(reminders[1]);
    if (request.method === "GET") return Response.json(await stub.list());
    if (request.method === "POST") {
      const body = await readJson<{ text?: unknown; after?: unknown }>(request);
      if (typeof body.text !== "string" || typeof body.after !== "string") {
        throw new BatonError("INVALID_ARGUMENT", 'Send { "text": "...", "after": "30s" }.');
      }
      return Response.json(await stub.add(body.text, body.after), { status: 201 });
    }
  }
  if (url.pathname === "/playground" && request.method === "POST") {
    const body = await readJson<Playground & { id?: unknown }>(request);
    const id = checkId(body.id ?? `play-${crypto.randomUUID()}`, "id");
    const { id: _, ...input } = body;
    const run = await executions(env.Playground).start(playground, input as Playground, { id });
    return Response.json(await run.status(), { status: 201 });
  }
  if (url.pathname === "/schedules" && request.method === "POST") {
    const body = await readJson<{
      id?: unknown;
      cron?: string;
      every?: string;
      timezone?: string;
      steps?: unknown;
    }>(request);
    const info = await schedules(env.Schedules).create({
      id: checkId(body.id, "id", 200),
      workflow: playground,
      input: { steps: (body.steps ?? [{ do: "tick" }]) as Playground["steps"] },
      ...(body.cron === undefined ? {} : { cron: body.cron }),
      ...(body.every === undefined ? {} : { every: body.every as "1 minute" }),
      ...(body.timezone === undefined ? {} : { timezone: body.timezone }),
      binding: "Playground",
    });
    return Response.json(info, { status: 201 });
  }
  const orders = executions(env.Orders);
  if (url.pathname === "/orders" && request.method === "POST") {
    const order = await readJson<Partial<Order>>(request);
    // The id comes from the body: check it before it names an execution ("undefined" is not one).
    const id = checkId(order.orderId, "orderId", 64);
    const run = await orders.start(orderFlow, order as Order, { id });
    return Response.json(await run.status(), { status: 201 });
  }
  const order = /^\/orders\/([\w.-]{1,64})(\/journal|\/result|\/approve)?$/.exec(url.pathname);
  if (order?.[1]) {
    const run = orders.get(orderFlow, order[1]);
    const action = order[2];
    if (!action && request.method === "GET") return Response.json(await run.status());
    if (action === "/journal") return Response.json(await run.journal());
    if (action === "/result") return Response.json(await run.result({ timeout: "10s" }));
    if (action === "/approve" && request.method === "POST") {
      const approval = await readJson<{ approved?: unknown; by?: unknown }>(request);
      if (typeof approval.approved !== "boolean" || typeof approval.by !== "string") {
        throw new BatonError("INVALID_ARGUMENT", 'Send { "approved": true|false, "by": "name" }.');
      }
      return Response.json(
        await run.sendEvent("approve", { approved: approval.approved, by: approval.by }),
      );
    }
  }
  return Response.json({ error: "not found", routes: ROUTES }, { status: 404 });
}

/** The example routes are open under `npm run dev`; elsewhere they need the gateway's token. */
async function localOrToken(request: Request, env: Env): Promise<boolean> {
  if (env.BATON_LOCAL_DEV === "true") return true;
  const token = /^Bearer\s+(\S+)$/i.exec(request.headers.get("Authorization") ?? "")?.[1];
  if (!token || !env.BATON_TOKEN) return false;
  const encoder = new TextEncoder();
  const [a, b] = await Promise.all([
    crypto.subtle.digest("SHA-256", encoder.encode(token)),
    crypto.subtle.digest("SHA-256", encoder.encode(env.BATON_TOKEN)),
  ]);
  return crypto.subtle.timingSafeEqual(a, b);
}

/** The request's JSON body, or `INVALID_ARGUMENT` (a 400) when it is not a JSON object. */
async function readJson<T>(request: Request): Promise<T> {
  let body: unknown;
  try {
    body = await request.json();
  } catch {
    throw new BatonError("INVALID_ARGUMENT", "The request body must be JSON.");
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new BatonError("INVALID_ARGUMENT", "The request body must be a JSON object.");
  }
  return body as T;
}

/** The page at `/` for a browser: where the dashboard is, and the routes. */
function home(): Response {
  const items = ROUTES.map(
    (r) => `<li><code>${r.replace(/[&<>]/g, (c) => `&#${c.charCodeAt(0)};`)}</code></li>`,
  );
  return new Response(
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>baton-dev</title><link rel="icon" href="data:,"></head>
<body><h1>baton-dev</h1><p><a href="/dashboard">Open the dashboard</a></p>
<p>Routes of this Worker:</p><ul>${items.join("")}</ul></body></html>`,
    {
      headers: {
        "Content-Type": "text/html; charset=utf-8",
        "Content-Security-Policy": "default-src 'none'; img-src data:",
      },
    },
  );
}

/** Names of the Durable Object namespaces bound to this Worker. */
function boundActors(env: Env): string[] {
  return Object.entries(env)
    .filter(([, value]) => typeof (value as { idFromName?: unknown })?.idFromName === "function")
    .map(([name]) => name)
    .sort();
}
