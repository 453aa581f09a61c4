/**
 * End to end from Node: starts the dev Worker (`wrangler dev` on 127.0.0.1, fresh state), runs the
 * Node client example against its gateway over a capnweb WebSocket session, and stops the server
 * (no process left behind).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, followOrder } from "../../examples/node-client/main.ts";
import { type DevServer, groupAlive, startDevServer } from "../../scripts/wrangler-dev.ts";

let server: DevServer;
const output: string[] = [];

beforeAll(async () => {
  server = await startDevServer({
    config: "wrangler.toml",
    vars: { BATON_TOKEN: "dev-token" }, // what `npm run dev` passes
    log: (line) => output.push(line),
  });
}, 120_000);

afterAll(async () => {
  const pid = server?.pid;
  await server?.stop();
  if (pid !== undefined) expect(groupAlive(pid), "wrangler/workerd left running").toBe(false);
}, 30_000);

describe("the Node client against `wrangler dev`", () => {
  it("starts a workflow through the gateway, follows its live events, gets its result", async () => {
    const api = connect(`ws://127.0.0.1:${server.port}/rpc`, "dev-token");
    try {
      const lines: string[] = [];
      const id = `e2e-${Date.now()}`;
      const { events, result } = await followOrder(api, id, (line) => lines.push(line));
      const kinds = events.map((e) => (e.type === "progress" ? `progress:${e.step}` : e.type));
      expect(kinds[0]).toBe("initial_state");
      expect(kinds.slice(-3)).toEqual(["progress:charge", "progress:ship", "completed"]);
      expect(kinds.filter((k) => k === "completed")).toHaveLength(1);
      expect(result).toMatchObject({
        ok: true,
        value: { orderId: id, tracking: `trk-${id}`, approvedBy: "node-client" },
      });
      expect((await api.list({ workflow: "order" })).executions.map((e) => e.id)).toContain(id);
    } finally {
      api[Symbol.dispose]();
    }
  }, 60_000);

  it("refuses a caller without the token (401)", async () => {
    const response = await fetch(`${server.url}/rpc`, { method: "POST", body: "[]" });
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ code: "UNAUTHORIZED" });
  });
});
