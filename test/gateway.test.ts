import { env, SELF } from "cloudflare:test";
import { newHttpBatchRpcSession, newWebSocketRpcSession, type RpcStub } from "capnweb";
import { afterEach, describe, expect, it } from "vitest";
import { gateway, type Lease, type LiveEvent } from "../src/index.ts";
import {
  advance,
  eventually,
  executionStub,
  probe,
  resetExecution,
  reviveByHeartbeat,
  uniqueName,
} from "./helpers.ts";
import type { TestApi } from "./worker.ts";

const BASE = "https://baton.test";
const TOKEN = "test-token";
const auth = { Authorization: `Bearer ${TOKEN}` };

/** A capnweb session over a WebSocket to the test gateway (through SELF). */
async function wsSession(headers: Record<string, string> = auth): Promise<RpcStub<TestApi>> {
  const response = await SELF.fetch(`${BASE}/test/rpc`, {
    headers: { Upgrade: "websocket", ...headers },
  });
  expect(response.status).toBe(101);
  const ws = response.webSocket as WebSocket;
  ws.accept();
  return newWebSocketRpcSession<TestApi>(ws);
}

const realFetch = globalThis.fetch;
afterEach(() => {
  globalThis.fetch = realFetch;
});

/** A capnweb HTTP-batch session to the test gateway: its fetch goes to SELF. */
function batchSession(headers: Record<string, string> = auth): RpcStub<TestApi> {
  globalThis.fetch = ((input: RequestInfo | URL, init?: RequestInit) =>
    SELF.fetch(input as Request, init)) as typeof fetch;
  return newHttpBatchRpcSession<TestApi>(new Request(`${BASE}/test/rpc`, { headers }));
}

/** Rejects with an error whose own `code` (kept by capnweb) is `code`. */
async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, `expected ${code}`).toBeDefined();
  expect((error as { code?: string }).code, String((error as Error)?.message)).toBe(code);
}

describe("Cap'n Web gateway", () => {
  it("serves the typed workflow API over a WebSocket session", async () => {
    const api = await wsSession();
    const p = probe();
    const { id } = executionStub("gw-ws");
    const started = await api.workflows.counted.start({ n: 3, probe: p.name }, { id });
    expect(started).toMatchObject({ id, workflow: "counted" });
    const result = await api.workflows.counted.result(id, { timeout: "5s" });
    // Typed: `value` is the counted workflow's output (a number).
    if (result.ok) expect(result.value + 0).toBe(3);
    expect(result).toMatchObject({ ok: true, value: 3 });
    expect((await api.status(id)).status).toBe("completed");
    expect((await api.journal(id)).map((e) => e.name)).toEqual(["s0", "s1", "s2"]);
    const executed = await api.workflows.counted.execute(
      { n: 1, probe: p.name },
      { id: executionStub("gw-exec").id, timeout: "5s" },
    );
    expect(executed).toMatchObject({ ok: true, value: 0 });
    api[Symbol.dispose]();
  });

  it("subscribes a callback to live progress: the same ordered events as the WebSocket", async () => {
    const api = await wsSession();
    const p = probe();
    const { id } = executionStub("gw-sub");
    await api.workflows.gated.start({ probe: p.name }, { id });
    await eventually(
      () => p.stub.counts(),
      (c) => c.b === 1,
    );
    const events: LiveEvent[] = [];
    using _subscription = await api.subscribe(id, (event) => {
      events.push(event);
    });
    await eventually(
      async () => events.length,
      (n) => n >= 1,
    );
    await p.stub.openGate("b");
    await eventually(
      async () => events.at(-1)?.type,
      (type) => type === "completed",
    );
    expect(events.map((e) => (e.type === "progress" ? `progress:${e.step}` : e.type))).toEqual([
      "initial_state",
      "progress:b",
      "progress:c",
      "completed",
    ]);
    await expectCode(
      api.subscribe(executionStub("gw-none").id, () => {}),
      "EXECUTION_NOT_FOUND",
    );
    api[Symbol.dispose]();
  });

  it("tells a subscriber when its stream breaks (the actor was reset), and refuses over batch", async () => {
    const api = await wsSession();
    const p = probe();
    const { id } = executionStub("gw-cut");
    await api.workflows.gated.start({ probe: p.name }, { id });
    await eventually(
      () => p.stub.counts(),
      (c) => c.b === 1,
    );
    const events: LiveEvent[] = [];
    await api.subscribe(id, (event) => {
      events.push(event);
    });
    await eventually(
      async () => events.length,
      (n) => n >= 1,
    );
    await resetExecution(id);
    await eventually(
      async () => events.at(-1)?.type,
      (type) => type === "disconnected",
    );
    expect(events.map((e) => e.type)).toEqual(["initial_state", "disconnected"]);
    // Subscribing again gives the current state first.
    const again: LiveEvent[] = [];
    await api.subscribe(id, (event) => {
      again.push(event);
    });
    await eventually(
      async () => again[0]?.type,
      (type) => type === "initial_state",
    );
    await p.stub.openGate("b");
    await reviveByHeartbeat(id);
    await eventually(
      async () => again.at(-1)?.type,
      (type) => type === "completed",
    );
    api[Symbol.dispose]();
    await expectCode(
      batchSession().subscribe(id, () => {}),
      "INVALID_ARGUMENT",
    );
  });

  it("serves calls over HTTP batch: several in one request", async () => {
    const p = probe();
    const { id } = executionStub("gw-batch");
    const first = batchSession();
    await first.workflows.counted.execute({ n: 2, probe: p.name }, { id, timeout: "5s" });
    const api = batchSession();
    const [status, journal, result] = await Promise.all([
      api.status(id),
      api.journal(id),
      api.result(id),
    ]);
    expect(status.status).toBe("completed");
    expect(journal).toHaveLength(2);
    expect(result).toMatchObject({ ok: true, value: 1 });
  });

  it("never answers a status() made after a change in the same batch with the state before it", async () => {
    const { id, stub } = executionStub("gw-order");
    const setup = await wsSession();
    await setup.workflows.greet.start({ name: "Ada" }, { id });
    setup[Symbol.dispose]();
    await advance(stub, 1_000);
    await eventually(
      () => stub.status(),
      (s) => s.status === "waiting",
    );
    const api = batchSession();
    const [before, again, , after] = await Promise.all([
      api.status(id),
      api.status(id),
      api.sendEvent(id, "approve", { ok: true }),
      api.status(id),
    ]);
    expect(before.status).toBe("waiting");
    expect(again.status).toBe("waiting");
    expect(after.status).not.toBe("waiting");
    // A status() batched right after a start sees the execution (the start went first).
    const p = probe();
    const fresh = executionStub("gw-order-start").id;
    const batch = batchSession();
    const [started, seen] = await Promise.all([
      batch.workflows.counted.start({ n: 1, probe: p.name }, { id: fresh }),
      batch.status(fresh),
    ]);
    expect(started.id).toBe(fresh);
    expect(seen.id).toBe(fresh);
  });

  it("serves the live route, listing, locks and checkpoints", async () => {
    const api = await wsSession();
    const p = probe();
    const { id } = executionStub("gw-more");
    await api.workflows.counted.execute({ n: 1, probe: p.name }, { id, timeout: "5s" });
    const live = await SELF.fetch(`${BASE}/test/executions/${encodeURIComponent(id)}/live`, {
      headers: { Upgrade: "websocket", ...auth },
    });
    expect(live.status).toBe(101);
    live.webSocket?.accept();
    await eventually(
      () => api.list({ workflow: "counted" }),
      (page) => page.executions.some((e) => e.id === id && e.status === "completed"),
    );
    const lock = uniqueName("gw-lock");
    const got = await api.locks.acquire(lock, { owner: "gw", ttl: "10s" });
    expect(got.acquired).toBe(true);
    expect(await api.locks.isLocked(lock)).toBe(true);
    if (got.acquired) await api.locks.release(lock, got.lease);
    expect((await api.locks.status(lock)).holders).toEqual([]);
    expect(await api.locks.abandon(lock, crypto.randomUUID())).toEqual({ outcome: "none" });
    const scope = uniqueName("gw-cp");
    expect(await api.checkpoints.save(scope, "doc", { a: 1 })).toMatchObject({ version: 1 });
    expect((await api.checkpoints.load(scope, "doc")).value).toEqual({ a: 1 });
    expect((await api.checkpoints.list(scope)).map((c) => c.name)).toEqual(["doc"]);
    expect(await api.checkpoints.history(scope, "doc")).toHaveLength(1);
    await api.checkpoints.delete(scope, "doc");
    await expectCode(api.checkpoints.load(scope, "doc"), "CHECKPOINT_NOT_FOUND");
    api[Symbol.dispose]();
  });

  it("refuses anonymous and wrong-token callers with 401, before any actor", async () => {
    const { id } = executionStub("gw-401");
    const body = JSON.stringify(["push", ["pipeline", 0, ["status"], [id]]]);
    const attempts: Array<Record<string, string>> = [
      {},
      { Authorization: "Bearer wrong" },
      { Authorization: `Bearer ${TOKEN}x` },
      { Authorization: TOKEN },
    ];
    for (const headers of attempts) {
      const response = await SELF.fetch(`${BASE}/test/rpc`, { method: "POST", headers, body });
      expect(response.status).toBe(401);
      expect(await response.json()).toMatchObject({ code: "UNAUTHORIZED" });
      const socket = await SELF.fetch(`${BASE}/test/rpc`, {
        headers: { Upgrade: "websocket", ...headers },
      });
      expect(socket.status).toBe(401);
      const live = await SELF.fetch(`${BASE}/test/executions/${id}/live`, {
        headers: { Upgrade: "websocket", ...headers },
      });
      expect(live.status).toBe(401);
    }
    // An unauthorized start never reaches the Execution actor.
    const p = probe();
    const wrong = batchSession({ Authorization: "Bearer wrong" });
    await expect(wrong.workflows.counted.start({ n: 1, probe: p.name }, { id })).rejects.toThrow(
      /401/,
    );
    await expectCode(env.TestExecutions.getByName(id).status(), "EXECUTION_NOT_FOUND");
    // Only a WebSocket upgrade may carry the token in the URL; the scheme is case-insensitive.
    const postWithQuery = await SELF.fetch(`${BASE}/test/rpc?token=${TOKEN}`, {
      method: "POST",
      body,
    });
    expect(postWithQuery.status).toBe(401);
    const lower = await SELF.fetch(`${BASE}/test/rpc`, {
      headers: { Upgrade: "websocket", Authorization: `bearer ${TOKEN}` },
    });
    expect(lower.status).toBe(101);
    lower.webSocket?.accept();
    lower.webSocket?.close();
    // The token may also come as a query parameter (browsers' WebSockets cannot set headers).
    const byQuery = await SELF.fetch(`${BASE}/test/rpc?token=${TOKEN}`, {
      headers: { Upgrade: "websocket" },
    });
    expect(byQuery.status).toBe(101);
    byQuery.webSocket?.accept();
    byQuery.webSocket?.close();
  });

  it("supports an authorize hook and an origin allow-list; answers CORS preflights", async () => {
    const url = `${BASE}/hook/rpc`;
    const denied = await SELF.fetch(url, { headers: { Upgrade: "websocket" } });
    expect(denied.status).toBe(401);
    const allowed = await SELF.fetch(url, {
      headers: { Upgrade: "websocket", "X-Test-User": "ada" },
    });
    expect(allowed.status).toBe(101);
    allowed.webSocket?.accept();
    allowed.webSocket?.close();
    const foreign = await SELF.fetch(url, {
      headers: { Upgrade: "websocket", "X-Test-User": "ada", Origin: "https://evil.example" },
    });
    expect(foreign.status).toBe(403);
    const preflight = await SELF.fetch(url, {
      method: "OPTIONS",
      headers: { Origin: "https://app.example" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("Access-Control-Allow-Headers")).toMatch(/Authorization/);
    // Other paths are not the gateway's: the dev Worker answers them.
    expect((await SELF.fetch(`${BASE}/`)).status).toBe(200);
    // A bad id in the live route's path is a 400, not a crash.
    const badPath = await SELF.fetch(`${BASE}/test/executions/%E0%A4%A/live`, {
      headers: { Upgrade: "websocket", ...auth },
    });
    expect(badPath.status).toBe(400);
  });

  it("refuses an auth configuration that is not exactly one kind", () => {
    for (const auth of [
      undefined,
      {},
      { anonymous: false },
      { secret: "" },
      { secret: "X", anonymous: false },
      { secret: "X", authorize: () => true },
    ]) {
      expect(() =>
        gateway({ workflows: [], auth: auth as unknown as { anonymous: true } }),
      ).toThrowError(/auth must be/);
    }
    expect(() => gateway({ workflows: [], auth: { anonymous: true } })).not.toThrow();
  });

  it("answers bad input to every method with a clear code", async () => {
    const api = await wsSession();
    const p = probe();
    const { id, stub } = executionStub("gw-bad");
    await api.workflows.greet.start({ name: "Ada" }, { id });
    const bad = "" as string;
    const cases: Array<[Promise<unknown>, string]> = [
      [api.status(bad), "INVALID_ARGUMENT"],
      [api.status(42 as unknown as string), "INVALID_ARGUMENT"],
      [api.status("x".repeat(257)), "INVALID_ARGUMENT"],
      [api.result(bad), "INVALID_ARGUMENT"],
      [api.result(id, { timeout: "soon" as "1s" }), "INVALID_DURATION"],
      [api.sendEvent(id, "has space"), "INVALID_ARGUMENT"],
      [api.sendEvent(bad, "go"), "INVALID_ARGUMENT"],
      [api.journal(id, { limit: -1 }), "INVALID_ARGUMENT"],
      [api.pause(bad), "INVALID_ARGUMENT"],
      [api.resume(bad), "INVALID_ARGUMENT"],
      [api.cancel(bad), "INVALID_ARGUMENT"],
      [api.restart(bad), "INVALID_ARGUMENT"],
      [api.status(uniqueName("none")), "EXECUTION_NOT_FOUND"],
      [api.list({ limit: 0 }), "INVALID_ARGUMENT"],
      [api.list({ cursor: "nope" }), "INVALID_ARGUMENT"],
      [api.subscribe(bad, () => {}), "INVALID_ARGUMENT"],
      [api.subscribe(id, "not a function" as unknown as () => void), "INVALID_ARGUMENT"],
      [api.workflows.counted.start({ n: 1, probe: p.name }, { id: bad }), "INVALID_ARGUMENT"],
      [
        api.workflows.counted.start({ n: 1, probe: p.name }, null as unknown as { id: string }),
        "INVALID_ARGUMENT",
      ],
      [api.workflows.counted.start({ n: 1, probe: p.name }, { id }), "EXECUTION_CONFLICT"],
      [api.workflows.counted.result(id), "EXECUTION_CONFLICT"],
      [
        api.workflows.validated.start({ email: "x", count: 1 }, { id: uniqueName("v") }),
        "INVALID_INPUT",
      ],
      [api.locks.acquire(bad, { owner: "o", ttl: "1s" }), "INVALID_ARGUMENT"],
      [api.locks.acquire("l", { owner: "", ttl: "1s" }), "INVALID_ARGUMENT"],
      [api.locks.status(bad), "INVALID_ARGUMENT"],
      [api.locks.isLocked(bad), "INVALID_ARGUMENT"],
      [api.locks.abandon(bad, "w"), "INVALID_ARGUMENT"],
      [api.locks.abandon("l", ""), "INVALID_ARGUMENT"],
      [
        api.locks.renew(
          "l",
          { token: "t", fence: 1, expiresAt: Date.now() + 60_000, owner: "o" },
          "1s",
        ),
        "NOT_HOLDER",
      ],
      [
        api.locks.release("l", {
          token: "t",
          fence: 1,
          expiresAt: Date.now() + 60_000,
          owner: "o",
        }),
        "NOT_HOLDER",
      ],
      [api.checkpoints.save(bad, "n", 1), "INVALID_ARGUMENT"],
      [api.checkpoints.save("s", bad, 1), "INVALID_ARGUMENT"],
      [api.checkpoints.load("s", "missing"), "CHECKPOINT_NOT_FOUND"],
      [api.checkpoints.list(bad), "INVALID_ARGUMENT"],
      [api.checkpoints.history("s", bad), "INVALID_ARGUMENT"],
      [api.checkpoints.delete(bad, "n"), "INVALID_ARGUMENT"],
      [api.journal(bad), "INVALID_ARGUMENT"],
      [api.journal(id, { from: -1 }), "INVALID_ARGUMENT"],
      [api.sendEvent(id, "approve", { ok: true }, { dedupeKey: "" }), "INVALID_ARGUMENT"],
      [
        api.sendEvent(id, "approve", { ok: true }, { dedupeKey: "k".repeat(257) }),
        "INVALID_ARGUMENT",
      ],
      [api.list({ status: "bogus" as "running" }), "INVALID_ARGUMENT"],
      [api.list({ startedAfter: "yesterday" as unknown as number }), "INVALID_ARGUMENT"],
      [api.list({ workflow: "" }), "INVALID_ARGUMENT"],
      [
        api.workflows.counted.execute({ n: 1, probe: p.name }, { id: bad, timeout: "1s" }),
        "INVALID_ARGUMENT",
      ],
      [
        api.workflows.validated.execute({ email: "x", count: 1 }, { id: uniqueName("v") }),
        "INVALID_INPUT",
      ],
      [api.workflows.counted.execute({ n: 1, probe: p.name }, { id }), "EXECUTION_CONFLICT"],
      [api.workflows.counted.result(bad), "INVALID_ARGUMENT"],
      [api.locks.acquire("l", { owner: "o", ttl: "forever" as "1s" }), "INVALID_DURATION"],
      [api.locks.renew("l", { token: 1 } as unknown as Lease, "1s"), "INVALID_ARGUMENT"],
      [api.locks.release("l", null as unknown as Lease), "INVALID_ARGUMENT"],
      [
        api.locks.release(bad, { token: "t", fence: 1, expiresAt: 0, owner: "o" }),
        "INVALID_ARGUMENT",
      ],
      [api.checkpoints.load("s", "n", { version: -1 }), "INVALID_ARGUMENT"],
      [api.checkpoints.save("s", "n", 1, { expectedVersion: -3 }), "INVALID_ARGUMENT"],
      [api.checkpoints.save("s", "n", () => 1), "SERIALIZATION_ERROR"],
    ];
    for (const [call, code] of cases) await expectCode(call, code);
    // Nothing stored changed: the execution still waits, its journal as before.
    await advance(stub, 1_000);
    expect((await api.status(id)).status).toBe("waiting");
    api[Symbol.dispose]();
  });

  it("caps live subscriptions per session, also for subscribe() calls sent together", async () => {
    const api = await wsSession();
    const { id, stub } = executionStub("gw-cap");
    await api.workflows.greet.start({ name: "Ada" }, { id });
    await advance(stub, 1_000);
    // 17 subscribe() calls pipelined at once: exactly 16 get in.
    const outcomes = await Promise.allSettled(
      Array.from({ length: 17 }, () => api.subscribe(id, () => {})),
    );
    const refused = outcomes.filter((o) => o.status === "rejected");
    expect(outcomes.filter((o) => o.status === "fulfilled")).toHaveLength(16);
    expect(refused).toHaveLength(1);
    expect((refused[0] as PromiseRejectedResult).reason).toMatchObject({
      code: "LIMIT_EXCEEDED",
    });
    // Closing one frees a place.
    const first = outcomes[0] as PromiseFulfilledResult<{ close(): void }>;
    await first.value.close();
    const another = await api.subscribe(id, () => {});
    await another.close();
    // A refused subscription to a missing execution does not use up a place.
    for (let i = 0; i < 3; i++) {
      await expectCode(
        api.subscribe(uniqueName("gw-cap-none"), () => {}),
        "EXECUTION_NOT_FOUND",
      );
    }
    const last = await api.subscribe(id, () => {});
    await last.close();
    api[Symbol.dispose]();
  });

  it("keeps a session usable after the actor behind it was reset", async () => {
    const api = await wsSession();
    const { id, stub } = executionStub("gw-reset");
    await api.workflows.greet.start({ name: "Ada" }, { id });
    await advance(stub, 1_000);
    expect((await api.status(id)).status).toBe("waiting");
    await resetExecution(id);
    // Reads go on through a new stub; a write made afterwards reaches the revived actor.
    expect((await api.status(id)).status).toBe("waiting");
    expect((await api.journal(id)).length).toBeGreaterThan(0);
    await api.sendEvent(id, "approve", { ok: true });
    expect((await api.workflows.greet.result(id, { timeout: "5s" })).ok).toBe(true);
    api[Symbol.dispose]();
  });

  it("lets a browser read why it was refused (CORS headers on 401)", async () => {
    const refused = await SELF.fetch(`${BASE}/hook/rpc`, {
      method: "POST",
      headers: { Origin: "https://app.example" },
      body: "[]",
    });
    expect(refused.status).toBe(401);
    expect(refused.headers.get("Access-Control-Allow-Origin")).toBe("https://app.example");
  });
});
