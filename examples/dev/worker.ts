/**
 * The local dev Worker (`npm run dev`). It binds the actors listed in wrangler.toml and serves
 * the examples:
 *
 * - `GET /` — JSON: the bound actors and the routes below.
 * - `POST /reminders/:user` with JSON `{ "text": "...", "after": "30s" }` — add a reminder.
 * - `GET /reminders/:user` — list a user's reminders.
 */
import { isBatonError } from "../../src/index.ts";
import { Reminders } from "../reminders/reminders.ts";

export { Reminders };

export interface Env {
  Reminders: DurableObjectNamespace<Reminders>;
}

const ROUTES = ["GET /", "POST /reminders/:user", "GET /reminders/:user"];

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
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
      return Response.json({ error: "not found", routes: ROUTES }, { status: 404 });
    } catch (error) {
      if (isBatonError(error)) {
        return Response.json({ code: error.code, message: error.message }, { status: 400 });
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
