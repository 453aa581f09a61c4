/**
 * End to end from Node: starts the dev Worker (`wrangler dev` on 127.0.0.1, fresh state), runs the
 * Node client example against its gateway over a capnweb WebSocket session, and stops the server
 * (no process left behind).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, followOrder } from "../../examples/node-client/main.ts";
import { type DevServer, groupAlive, startDevServer } from "../../scripts/wrangler-dev.ts";
import { main } from "../../src/cli/baton.ts";

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

  it("the baton command lists, reads and steers executions through the gateway", async () => {
    const baton = async (...args: string[]) => {
      const out: string[] = [];
      const err: string[] = [];
      const code = await main(
        [...args, "--url", `${server.url}/rpc`, "--token", "dev-token"],
        (line) => out.push(line),
        (line) => err.push(line),
      );
      return { code, json: out.length ? JSON.parse(out.join("\n")) : null, err: err.join("\n") };
    };
    const api = connect(`ws://127.0.0.1:${server.port}/rpc`, "dev-token");
    const id = `cli-${Date.now()}`;
    try {
      await api.workflows.order.start({ orderId: id, items: ["pen"], amount: 3 }, { id });
    } finally {
      api[Symbol.dispose]();
    }
    const status = await baton("executions", "status", id);
    expect(status).toMatchObject({ code: 0, json: { id, workflow: "order" } });
    const sent = await baton("send-event", id, "approve", '{"approved":true,"by":"cli"}');
    expect(sent.code).toBe(0);
    const result = await baton("executions", "result", id, "--timeout", "20s");
    expect(result.json).toMatchObject({ ok: true, value: { orderId: id, approvedBy: "cli" } });
    const journal = await baton("executions", "journal", id);
    expect(journal.json.map((e: { name: string }) => e.name)).toEqual([
      "reserve",
      "approval",
      "charge",
      "ship",
    ]);
    const listed = await baton("executions", "list", "--workflow", "order", "--limit", "100");
    expect(listed.json.executions.map((e: { id: string }) => e.id)).toContain(id);
    const other = `cli-cancel-${Date.now()}`;
    const second = connect(`ws://127.0.0.1:${server.port}/rpc`, "dev-token");
    try {
      await second.workflows.order.start(
        { orderId: other, items: ["x"], amount: 1 },
        { id: other },
      );
    } finally {
      second[Symbol.dispose]();
    }
    expect((await baton("pause", other)).json.status).toBe("paused");
    expect((await baton("resume", other)).code).toBe(0);
    expect((await baton("cancel", other)).json.status).toBe("cancelled");
    // Errors come back as JSON with their code, and a non-zero exit.
    const missing = await baton("executions", "status", "no-such-order");
    expect(missing.code).toBe(1);
    expect(JSON.parse(missing.err)).toMatchObject({ code: "EXECUTION_NOT_FOUND" });
    const journalPage = await baton("executions", "journal", id, "--from", "1", "--limit", "2");
    expect(journalPage.json.map((e: { name: string }) => e.name)).toEqual(["approval", "charge"]);
    const refused = await main(
      ["executions", "status", id, "--url", `${server.url}/rpc`, "--token", "wrong"],
      () => {},
      (line) => expect(JSON.parse(line)).toMatchObject({ code: "UNAUTHORIZED" }),
    );
    expect(refused).toBe(1);
    // Usage errors: exit 2, the reason and the help on stderr, nothing on stdout.
    const usage = async (...args: string[]) => {
      const out: string[] = [];
      const err: string[] = [];
      const code = await main(
        args,
        (line) => out.push(line),
        (line) => err.push(line),
      );
      return { code, out: out.join("\n"), err: err.join("\n") };
    };
    expect(await usage("executions", "status")).toMatchObject({
      code: 2,
      out: "",
      err: expect.stringContaining('"executions status" needs an execution id'),
    });
    expect(await usage("executions")).toMatchObject({
      code: 2,
      err: expect.stringContaining("needs a subcommand"),
    });
    expect(await usage("cancel", "a", "b")).toMatchObject({
      code: 2,
      err: expect.stringContaining("Too many arguments: b"),
    });
    expect(await usage()).toMatchObject({
      code: 2,
      out: "",
      err: expect.stringContaining("Usage:"),
    });
    expect(await usage("--help")).toMatchObject({
      code: 0,
      out: expect.stringContaining("Usage:"),
    });
  }, 60_000);

  it("refuses a caller without the token (401)", async () => {
    const response = await fetch(`${server.url}/rpc`, { method: "POST", body: "[]" });
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ code: "UNAUTHORIZED" });
  });
});
