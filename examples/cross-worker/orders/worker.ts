/**
 * The orders Worker: no actors of its own. It reaches the platform's actors through the service
 * binding PLATFORM, typed by `import type` alone. See ../README.md.
 */
import { checkpoints, executions, isBatonError, locks } from "../../../src/index.ts";
import type { Platform } from "../platform/worker.ts";

export interface OrdersEnv {
  PLATFORM: Service<Platform>;
}

const ROUTE = /^\/orders\/([\w.-]{1,64})(?:\/(note|release|result))?$/;

export default {
  async fetch(request: Request, env: OrdersEnv): Promise<Response> {
    const match = ROUTE.exec(new URL(request.url).pathname);
    if (!match?.[1]) return Response.json({ error: "not found" }, { status: 404 });
    const [, orderId, action] = match as unknown as [string, string, string | undefined];
    // Typed from the platform's workflows: "fulfil" and its input are checked at compile time.
    const runs = executions<Platform>(env.PLATFORM);
    const run = runs.get(`order-${orderId}`);
    try {
      switch (`${request.method} ${action ?? ""}`) {
        case "POST ": {
          const { items, hold = false } = (await request.json()) as {
            items: number;
            hold?: boolean;
          };
          const input = { orderId, items, hold };
          if (hold) {
            // Start and return at once; the order waits for POST /orders/:id/release.
            await runs.start("fulfil", input, { id: run.id });
            return Response.json(await run.status(), { status: 202 });
          }
          return Response.json(await runs.execute("fulfil", input, { id: run.id, timeout: "10s" }));
        }
        case "GET ":
          return Response.json(await run.status());
        case "POST release":
          return Response.json(await run.sendEvent("release"));
        case "GET result":
          return Response.json(await run.result({ timeout: "5s" }));
        case "POST note": {
          // A lock and a checkpoint of the platform, from here.
          const note = await request.text();
          const saved = await locks(env.PLATFORM).withLock(
            `order-${orderId}`,
            { owner: "orders", ttl: "10s", wait: "5s" },
            () => checkpoints(env.PLATFORM).save(`order-${orderId}`, "note", note),
          );
          return Response.json(saved);
        }
      }
      return Response.json({ error: "not found" }, { status: 404 });
    } catch (error) {
      // Errors keep their code across the service binding.
      if (isBatonError(error)) {
        const status = error.code.endsWith("NOT_FOUND") ? 404 : 400;
        return Response.json({ code: error.code, message: error.message }, { status });
      }
      throw error;
    }
  },
} satisfies ExportedHandler<OrdersEnv>;
