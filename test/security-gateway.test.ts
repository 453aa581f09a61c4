import { env, SELF } from "cloudflare:test";
import { newHttpBatchRpcSession, newWebSocketRpcSession, type RpcStub } from "capnweb";
import { afterEach, describe, expect, it } from "vitest";
import { checkTreeSize } from "../src/clients/gateway/size.ts";
import { executions } from "../src/index.ts";
import {
  advance,
  eventually,
  executionStub,
  expectBatonError,
  randomBytes,
  uniqueName,
} from "./helpers.ts";
import type { GreetApi, TestApi } from "./worker.ts";
import { counted, greet } from "./workflows.ts";

const BASE = "https://baton.test";

async function ws<T extends object = TestApi>(
  path: string,
  headers: Record<string, string>,
): Promise<RpcStub<T>> {
  const response = await SELF.fetch(`${BASE}${path}`, {
    headers: { Upgrade: "websocket", ...headers },
  });
  expect(response.status).toBe(101);
  const socket = response.webSocket as WebSocket;
  socket.accept();
  return newWebSocketRpcSession<T>(socket) as unknown as RpcStub<T>;
}

const realFetch = globalThis.fetch;
afterEach(() => {
  globalThis.fetch = realFetch;
});

function batch(path: string, headers: Record<string, string>): RpcStub<TestApi> {
  globalThis.fetch = ((input: RequestInfo | URL, init?: RequestInit) =>
    SELF.fetch(input as Request, init)) as typeof fetch;
  return newHttpBatchRpcSession<TestApi>(new Request(`${BASE}${path}`, { headers }));
}

const tenant = (name: string) => ({ "X-Tenant": name });
const token = { Authorization: "Bearer test-token" };

/** Resolves with the rejection's `code` (or "resolved"). */
async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  return promise.then(
    () => "resolved",
    (error: unknown) => (error as { code?: string }).code,
  );
}

/** A greet execution waiting for its approval, started directly on the actor. */
async function waitingGreet(id: string) {
  const stub = env.TestExecutions.getByName(id);
  await stub.start("greet", { name: "T" }, { id });
  await advance(stub, 1_000);
  await eventually(
    () => stub.status(),
    (s) => s.status === "waiting",
  );
  return stub;
}

describe("gateway policy: a tenant sees and steers only its own executions", () => {
  it("refuses another tenant's execution on every method, and changes nothing", async () => {
    const acme = await ws("/tenant/rpc", tenant("acme"));
    const globex = await ws("/tenant/rpc", tenant("globex"));
    const id = `acme/${uniqueName("order")}`;
    await acme.workflows.greet.start({ name: "A" }, { id });
    const stub = env.TestExecutions.getByName(id);
    await advance(stub, 1_000);
    expect((await acme.status(id)).status).toBe("waiting");
    const attempts = [
      globex.status(id),
      globex.result(id, { timeout: "10ms" }),
      globex.journal(id),
      globex.sendEvent(id, "approve", { ok: true }),
      globex.pause(id),
      globex.resume(id),
      globex.cancel(id),
      globex.restart(id),
      globex.subscribe(id, () => {}),
      globex.workflows.greet.result(id),
      // Not EXECUTION_CONFLICT naming its workflow: nothing is told before the policy says yes.
      globex.workflows.counted.result(id),
      globex.workflows.greet.start({ name: "A" }, { id }),
      globex.workflows.counted.start({ n: 1, probe: "p" }, { id: `acme/${uniqueName("x")}` }),
    ];
    for (const attempt of attempts) expect(await codeOf(attempt)).toBe("FORBIDDEN");
    const live = await SELF.fetch(`${BASE}/tenant/executions/${encodeURIComponent(id)}/live`, {
      headers: { Upgrade: "websocket", ...tenant("globex") },
    });
    expect(live.status).toBe(403);
    expect((await stub.status()).status).toBe("waiting");
    expect((await stub.journal()).map((e) => e.name)).toEqual(["hello", "pause", "approval"]);
    // Its own tenant still steers it.
    await acme.sendEvent(id, "approve", { ok: true });
    expect((await acme.workflows.greet.result(id, { timeout: "250ms" })).ok).toBe(true);
    acme[Symbol.dispose]();
    globex[Symbol.dispose]();
  });

  it("lists a tenant's executions only under its own prefix; locks and scopes likewise", async () => {
    const acme = await ws("/tenant/rpc", tenant("acme"));
    const globex = await ws("/tenant/rpc", tenant("globex"));
    const mine = `globex/${uniqueName("g")}`;
    const theirs = `acme/${uniqueName("a")}`;
    await globex.workflows.greet.start({ name: "G" }, { id: mine });
    await acme.workflows.greet.start({ name: "A" }, { id: theirs });
    const page = await eventually(
      () => globex.list({ idPrefix: "globex/" }),
      (p) => p.executions.some((e) => e.id === mine),
    );
    expect(page.executions.every((e) => e.id.startsWith("globex/"))).toBe(true);
    expect(await codeOf(globex.list({}))).toBe("FORBIDDEN");
    expect(await codeOf(globex.list({ idPrefix: "acme/" }))).toBe("FORBIDDEN");
    expect(await codeOf(globex.locks.acquire("acme/lock", { owner: "g", ttl: "1m" }))).toBe(
      "FORBIDDEN",
    );
    const own = await globex.locks.acquire(`globex/${uniqueName("lock")}`, {
      owner: "g",
      ttl: "1m",
    });
    expect(own.acquired).toBe(true);
    expect(await codeOf(globex.checkpoints.load("acme/cp", "doc"))).toBe("FORBIDDEN");
    acme[Symbol.dispose]();
    globex[Symbol.dispose]();
  });

  it("refuses a request whose authorize returns nothing (401), before any actor", async () => {
    const response = await SELF.fetch(`${BASE}/tenant/rpc`, { headers: { Upgrade: "websocket" } });
    expect(response.status).toBe(401);
  });
});

describe("gateway defaults: served workflows only, never Baton's own names", () => {
  it("refuses executions of workflows it does not serve, and lists only its own", async () => {
    const api = await ws<GreetApi>("/greet/rpc", token);
    const other = executionStub("gw-other");
    await executions(env.TestExecutions).start(
      counted,
      { n: 1, probe: uniqueName("p") },
      {
        id: other.id,
      },
    );
    for (const attempt of [
      api.status(other.id),
      api.result(other.id, { timeout: "10ms" }),
      api.cancel(other.id),
      api.journal(other.id),
      api.sendEvent(other.id, "x"),
      api.subscribe(other.id, () => {}),
      api.list({ workflow: "counted" }),
    ]) {
      expect(await codeOf(attempt)).toBe("FORBIDDEN");
    }
    const own = executionStub("gw-own");
    await api.workflows.greet.start({ name: "G" }, { id: own.id });
    const page = await eventually(
      () => api.list({ limit: 1000 }),
      (p) => p.executions.some((e) => e.id === own.id),
    );
    expect(page.executions.every((e) => e.workflow === greet.name)).toBe(true);
    expect(
      await codeOf(api.locks.acquire("concurrency:greet:1:*", { owner: "x", ttl: "1m" })),
    ).toBe("FORBIDDEN");
    expect(await codeOf(api.locks.status("state:some-execution"))).toBe("FORBIDDEN");
    expect(await codeOf(api.checkpoints.load("state:some-execution", "$state"))).toBe("FORBIDDEN");
    expect(await codeOf(api.checkpoints.save("resume-tokens:ab", "x", 1))).toBe("FORBIDDEN");
    expect(await codeOf(api.checkpoints.list("baton:anything"))).toBe("FORBIDDEN");
    api[Symbol.dispose]();
  });

  it("sends errors without internal ids or stacks", async () => {
    const api = await ws("/test/rpc", token);
    const error = await api.status(uniqueName("missing")).then(
      () => undefined,
      (e: unknown) => e as Record<string, unknown>,
    );
    expect(error).toMatchObject({ code: "EXECUTION_NOT_FOUND" });
    // The actor's error carried durableObjectId and remote; the client gets neither.
    expect(Object.keys(error ?? {}).sort()).toEqual(["baton", "code", "details"]);
    expect(String(error?.message)).not.toMatch(/[0-9a-f]{64}/);
    api[Symbol.dispose]();
  });

  it("answers a CORS preflight without echoing an origin it was not told to allow", async () => {
    const preflight = await SELF.fetch(`${BASE}/test/rpc`, {
      method: "OPTIONS",
      headers: { Origin: "https://evil.example" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("Access-Control-Allow-Origin")).toBe("*");
  });
});

describe("gateway budgets", () => {
  it("refuses a batch with too many calls (413) and malformed input (400), never a 500", async () => {
    const push = (id: string) => JSON.stringify(["push", ["pipeline", 0, ["status"], [id]]]);
    const six = Array.from({ length: 6 }, () => push(`acme/${uniqueName("x")}`)).join("\n");
    const tooMany = await SELF.fetch(`${BASE}/tenant/rpc`, {
      method: "POST",
      headers: tenant("acme"),
      body: six,
    });
    expect(tooMany.status).toBe(413);
    expect(await tooMany.json()).toMatchObject({ code: "LIMIT_EXCEEDED" });
    for (const body of ["not capnweb", '["push", 5', '["pull"]', "[]", "{}"]) {
      const bad = await SELF.fetch(`${BASE}/test/rpc`, { method: "POST", headers: token, body });
      expect(bad.status, body).toBe(400);
      expect(await bad.json()).toMatchObject({ code: "INVALID_ARGUMENT" });
    }
    const get = await SELF.fetch(`${BASE}/test/rpc`, { headers: token });
    expect(get.status).toBe(400);
  });

  it("refuses a batch whose answers pass the response budget (413)", async () => {
    const scope = `acme/${uniqueName("cp")}`;
    const api = await ws("/tenant/rpc", tenant("acme"));
    // ~133 KB each over the wire (base64): one fits in 256 KiB, three do not.
    await api.checkpoints.save(scope, "blob", randomBytes(100_000));
    api[Symbol.dispose]();
    const one = batch("/tenant/rpc", tenant("acme"));
    expect((await one.checkpoints.load(scope, "blob")).version).toBe(1);
    const three = batch("/tenant/rpc", tenant("acme"));
    const loads = await Promise.allSettled([
      three.checkpoints.load(scope, "blob"),
      three.checkpoints.load(scope, "blob"),
      three.checkpoints.load(scope, "blob"),
    ]);
    expect(loads.every((l) => l.status === "rejected")).toBe(true);
    expect(String((loads[0] as PromiseRejectedResult).reason)).toMatch(/413/);
  });

  it("refuses calls past a WebSocket session's call budget", async () => {
    const api = await ws("/tenant/rpc", tenant("acme"));
    const id = `acme/${uniqueName("calls")}`;
    await api.workflows.greet.start({ name: "A" }, { id });
    let failed: unknown;
    for (let i = 0; i < 40 && !failed; i++) {
      await api.status(id).catch((error: unknown) => {
        failed = error;
      });
    }
    expect(failed).toMatchObject({ code: "LIMIT_EXCEEDED" });
  });

  it("caps pending result waits per session and bounds each wait; a wait leaves nothing behind", async () => {
    const api = await ws("/tenant/rpc", tenant("acme"));
    const id = `acme/${uniqueName("wait")}`;
    const stub = await waitingGreet(id);
    const waits = await Promise.allSettled([
      api.result(id, { timeout: "1h" }),
      api.result(id),
      api.result(id),
    ]);
    const codes = waits.map((w) => (w.status === "rejected" ? w.reason.code : "resolved")).sort();
    expect(codes).toEqual(["LIMIT_EXCEEDED", "RESULT_TIMEOUT", "RESULT_TIMEOUT"]);
    expect(await stub.resultWaits()).toBe(0);
    // Directly on the actor too: a timed-out result() is forgotten.
    await expectBatonError(stub.result({ timeout: 20 }), "RESULT_TIMEOUT");
    expect(await stub.resultWaits()).toBe(0);
    expect((await stub.status()).status).toBe("waiting");
    api[Symbol.dispose]();
  });

  it("caps live subscribers per execution across sessions and routes (429)", async () => {
    const id = uniqueName("crowd");
    await waitingGreet(id);
    const path = `${BASE}/test/executions/${encodeURIComponent(id)}/live`;
    const open: WebSocket[] = [];
    for (let i = 0; i < 20; i++) {
      const response = await SELF.fetch(path, { headers: { Upgrade: "websocket", ...token } });
      expect(response.status).toBe(101);
      const socket = response.webSocket as WebSocket;
      socket.accept();
      open.push(socket);
    }
    const refused = await SELF.fetch(path, { headers: { Upgrade: "websocket", ...token } });
    expect(refused.status).toBe(429);
    expect(await refused.json()).toMatchObject({ code: "LIMIT_EXCEEDED" });
    const api = await ws("/test/rpc", token);
    expect(await codeOf(api.subscribe(id, () => {}))).toBe("LIMIT_EXCEEDED");
    for (const socket of open) socket.close(1000, "done");
    api[Symbol.dispose]();
  });
});

describe("ids and names are well-formed Unicode without control characters", () => {
  it("never lets a lone surrogate reach another object", async () => {
    const id = `u-${uniqueName("x")}-\uFFFD`;
    const stub = await waitingGreet(id);
    const lone = id.replace("\uFFFD", "\uD800");
    await expectBatonError(
      (async () => executions(env.TestExecutions).get(lone).cancel())(),
      "INVALID_ARGUMENT",
      /well-formed/,
    );
    const api = await ws("/test/rpc", token);
    expect(await codeOf(api.cancel(lone))).toBe("INVALID_ARGUMENT");
    expect(await codeOf(api.status(lone))).toBe("INVALID_ARGUMENT");
    expect(await codeOf(api.locks.status("a\u0000b"))).toBe("INVALID_ARGUMENT");
    expect(await codeOf(api.checkpoints.list("scope\uDC00"))).toBe("INVALID_ARGUMENT");
    expect((await stub.status()).status).toBe("waiting");
    api[Symbol.dispose]();
  });
});

describe("gateway: what the review of this hardening found", () => {
  it("counts every call at the API, however the client sends it (map, stream, spaced)", async () => {
    const prefix = `acme/${uniqueName("count")}`;
    for (let i = 0; i < 6; i++) {
      const id = `${prefix}-${i}`;
      await env.TestExecutions.getByName(id).start("greet", { name: "C" }, { id });
    }
    const setup = await ws("/tenant/rpc", tenant("acme"));
    await eventually(
      () => setup.list({ idPrefix: "acme/", limit: 100 }),
      (page) => page.executions.filter((e) => e.id.startsWith(prefix)).length === 6,
    );
    setup[Symbol.dispose]();
    // One list() and, in the same message, a status() per listed execution (capnweb's map):
    // more calls than the batch's budget of 5, so the map fails.
    const api = batch("/tenant/rpc", tenant("acme"));
    const page = api.list({ idPrefix: "acme/", limit: 10 });
    const statuses = page.executions.map((e) => api.status(e.id));
    expect(await codeOf(statuses)).toBe("LIMIT_EXCEEDED");
    // A batch that plainly makes too many calls is refused before any runs, however written.
    const id = `${prefix}-0`;
    const lines = [
      ...Array.from({ length: 3 }, () =>
        JSON.stringify(["stream", ["pipeline", 0, ["status"], [id]]]),
      ),
      ...Array.from({ length: 3 }, () =>
        JSON.stringify(["push", ["pipeline", 0, ["status"], [id]]]).replace('["push"', '[ "push"'),
      ),
    ];
    const refused = await SELF.fetch(`${BASE}/tenant/rpc`, {
      method: "POST",
      headers: tenant("acme"),
      body: lines.join("\n"),
    });
    expect(refused.status).toBe(413);
    // A body over the message limit is refused unread.
    const huge = await SELF.fetch(`${BASE}/tenant/rpc`, {
      method: "POST",
      headers: tenant("acme"),
      body: "x".repeat(9 * 1024 * 1024),
    });
    expect(huge.status).toBe(413);
  });

  it("keeps a session's writes to one execution in order, whatever its policy takes", async () => {
    for (let round = 0; round < 3; round++) {
      const api = batch("/tenant/rpc", tenant("acme"));
      const id = `acme/${uniqueName("order")}`;
      const stub = await waitingGreet(id);
      // pause, then resume: in that order at the actor, so it ends running.
      await Promise.all([api.pause(id), api.resume(id)]);
      expect((await stub.status()).status).not.toBe("paused");
    }
  });

  it("checks execute's result as a read: a policy may allow starting but not reading", async () => {
    const api = await ws("/tenant/rpc", tenant("acme"));
    const id = `acme/write-only/${uniqueName("w")}`;
    expect(await codeOf(api.workflows.greet.execute({ name: "W" }, { id, timeout: "10ms" }))).toBe(
      "FORBIDDEN",
    );
    expect((await env.TestExecutions.getByName(id).status()).workflow).toBe("greet");
    expect(await codeOf(api.result(id))).toBe("FORBIDDEN");
    api[Symbol.dispose]();
  });

  it("lets a read batched after a start of the same execution see it", async () => {
    const id = uniqueName("start-then-read");
    const api = batch("/test/rpc", token);
    const [started, result] = await Promise.all([
      api.workflows.counted.start({ n: 1, probe: uniqueName("p") }, { id }),
      api.result(id, { timeout: "5s" }),
    ]);
    expect(started.id).toBe(id);
    expect(result.ok).toBe(true);
  });

  it("measures a value of shared references as the tree it is sent as, at a bounded cost", () => {
    let node: unknown = "leaf";
    for (let i = 0; i < 60; i++) node = [node, node]; // 2^60 leaves as a tree
    expect(() => checkTreeSize(node, 1_000_000, "The value")).toThrowError(/over 1000000 bytes/);
    expect(() => checkTreeSize({ a: [1, 2, "three"] }, 1_000, "The value")).not.toThrow();
  });
});
