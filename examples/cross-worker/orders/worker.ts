/**
 * The orders Worker: no actors of its own. It reaches the platform's actors through the service
 * binding PLATFORM, typed by `import type` alone. See ../README.md.
 */
import { checkpoints, executions, isBatonError, locks } from "../../../src/index.ts";
import type { Platform } from "../platform/worker.ts";

export interface OrdersEnv {
  PLATFORM: Service<Platform>;
}

export default {
  async fetch(request: Request, env: OrdersEnv): Promise<Response> {
    const url = new URL(request.url);
    const match = /^\/orders\/([\w.-]{1,64})(\/note)?$/.exec(url.pathname);
    try {
      if (match?.[1] && !match[2] && request.method === "POST") {
        const { items } = (await request.json()) as { items: number };
        // Typed from the platform's workflows: "fulfil" and its input are checked at compile time.
        const result = await executions<Platform>(env.PLATFORM).execute(
          "fulfil",
          { orderId: match[1], items },
          { id: `order-${match[1]}`, timeout: "10s" },
        );
        return Response.json(result);
      }
      if (match?.[1] && !match[2] && request.method === "GET") {
        return Response.json(
          await executions<Platform>(env.PLATFORM).get(`order-${match[1]}`).status(),
        );
      }
      if (match?.[1] && match[2] && request.method === "POST") {
        // A lock and a checkpoint of the platform, from here.
        const note = await request.text();
        const saved = await locks(env.PLATFORM).withLock(
          `order-${match[1]}`,
          { owner: "orders", ttl: "10s", wait: "5s" },
          () => checkpoints(env.PLATFORM).save(`order-${match[1]}`, "note", note),
        );
        return Response.json(saved);
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
