/**
 * The local dev Worker (`npm run dev`). It binds the actors listed in wrangler.toml and serves
 * the examples:
 *
 * - `GET /` — JSON: the bound actors and the routes below.
 * - `POST /reminders/:user` with JSON `{ "text": "...", "after": "30s" }` — add a reminder.
 * - `GET /reminders/:user` — list a user's reminders.
 * - `POST /orders` with JSON `{ orderId, items, amount }` — start the order workflow.
 * - `GET /orders/:id`, `GET /orders/:id/journal`, `GET /orders/:id/result` — follow it.
 * - `POST /orders/:id/approve` with JSON `{ approved, by }` — send the approval event.
 * - `/rpc` — the Cap'n Web gateway (WebSocket or HTTP batch) serving the order workflow, locks,
 *   checkpoints and listing to browsers and Node (examples/node-client); token `BATON_TOKEN`
 *   (`npm run dev` passes `dev-token`; deployed, a secret).
 * - `GET /executions/:id/live` — an execution's live progress (WebSocket), same token.
 */
import {
  type BatonApi,
  type CheckpointActor,
  type ExecutionIndex,
  executions,
  gateway,
  isBatonError,
  type LockActor,
} from "../../src/index.ts";
import { type Order, Orders, orderFlow, Payments } from "../orders/orders.ts";
import { Reminders } from "../reminders/reminders.ts";

// Baton's Lock and Checkpoint actors and the execution index, bound as they are.
export {
  CheckpointActor as Checkpoints,
  ExecutionIndex,
  LockActor as Locks,
} from "../../src/index.ts";
export { Orders, Payments, Reminders };

export interface Env {
  Reminders: DurableObjectNamespace<Reminders>;
  Orders: DurableObjectNamespace<Orders>;
  Payments: DurableObjectNamespace<Payments>;
  Locks: DurableObjectNamespace<LockActor>;
  Checkpoints: DurableObjectNamespace<CheckpointActor>;
  ExecutionIndex: DurableObjectNamespace<ExecutionIndex>;
  /** The gateway's token (`npm run dev` passes a local value; a secret in production). */
  BATON_TOKEN: string;
}

/** The Cap'n Web gateway: the order workflow, locks, checkpoints and listing, behind a token. */
const api = gateway({
  workflows: [orderFlow],
  auth: { secret: "BATON_TOKEN" },
  bindings: { executions: "Orders" },
});

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
  "POST|WS /rpc (capnweb; Authorization: Bearer <BATON_TOKEN>)",
  "WS /executions/:id/live (Authorization: Bearer <BATON_TOKEN>)",
];

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    const served = await api.fetch(request, env);
    if (served) return served;
    try {
      if (url.pathname === "/" && request.method === "GET") {
        return Response.json({ name: "baton-dev", actors: boundActors(env), routes: ROUTES });
      }
      const reminders = /^\/reminders\/([\w.-]{1,64})$/.exec(url.pathname);
      if (reminders?.[1]) {
        const stub = env.Reminders.getByName(reminders[1]);
        if (request.method === "GET") return Response.json(await stub.list());
        if (request.method === "POST") {
          const body = (await request.json()) as { text?: unknown; after?: unknown };
          return Response.json(await stub.add(String(body.text ?? ""), String(body.after ?? "")), {
            status: 201,
          });
        }
      }
      // The REST routes show the typed client inside a Worker, for local development: they
      // check no caller. A deployed Worker puts its own authentication in front of such routes
      // (the gateway above has it built in).
      const orders = executions(env.Orders);
      if (url.pathname === "/orders" && request.method === "POST") {
        const order = (await request.json()) as Order;
        const run = await orders.start(orderFlow, order, { id: String(order.orderId) });
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
          return Response.json(await run.sendEvent("approve", await request.json()));
        }
      }
      return Response.json({ error: "not found", routes: ROUTES }, { status: 404 });
    } catch (error) {
      if (isBatonError(error)) {
        const status = error.code.endsWith("NOT_FOUND")
          ? 404
          : error.code === "RESULT_TIMEOUT"
            ? 408
            : 400;
        return Response.json({ code: error.code, message: error.message }, { status });
      }
      throw error;
    }
  },
} satisfies ExportedHandler<Env>;

/** Names of the Durable Object namespaces bound to this Worker. */
function boundActors(env: Env): string[] {
  return Object.entries(env)
    .filter(([, value]) => typeof (value as { idFromName?: unknown })?.idFromName === "function")
    .map(([name]) => name)
    .sort();
}
