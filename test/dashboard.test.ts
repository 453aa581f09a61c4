/**
 * The dashboard's Worker side inside workerd: its page and assets, authentication, the guards
 * against other sites, its JSON API over the real actors (bad input for every route), its policy
 * and read-only mode, and the live-progress WebSocket. The page itself is tested in Chromium
 * (test/browser/).
 */
import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { forDisplay, toJsonSafe } from "../src/dashboard/display.ts";
import { checkpoints, dashboard, executions, locks } from "../src/index.ts";
import { eventually, executionStub, uniqueName } from "./helpers.ts";
import { greet } from "./workflows.ts";

const client = () => executions(env.TestExecutions);
const TOKEN = "test-token";
const own = { "X-Baton-Dashboard": "1" };
const authed = { ...own, Authorization: `Bearer ${TOKEN}` };

/** A call to the token dashboard's API. */
function api(path: string, init: RequestInit & { headers?: Record<string, string> } = {}) {
  return SELF.fetch(`http://127.0.0.1/t/dashboard/api${path}`, {
    ...init,
    headers: { ...authed, ...init.headers },
  });
}

async function json<T = Record<string, unknown>>(response: Response): Promise<T> {
  return (await response.json()) as T;
}

describe("dashboard: page and assets", () => {
  it("serves the page shell with a CSP, its hashed assets, and nothing else", async () => {
    const page = await SELF.fetch("http://127.0.0.1/t/dashboard/executions/anything");
    expect(page.status).toBe(200);
    expect(page.headers.get("Content-Type")).toMatch(/^text\/html/);
    const csp = page.headers.get("Content-Security-Policy") ?? "";
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(page.headers.get("X-Content-Type-Options")).toBe("nosniff");
    const html = await page.text();
    const script = /src="([^"]+\.js)"/.exec(html)?.[1];
    const style = /href="([^"]+\.css)"/.exec(html)?.[1];
    expect(script).toMatch(/^\/t\/dashboard\/assets\/app\.[0-9a-f]{12}\.js$/);
    const js = await SELF.fetch(`http://127.0.0.1${script}`);
    expect(js.headers.get("Content-Type")).toMatch(/^text\/javascript/);
    expect(js.headers.get("Cache-Control")).toContain("immutable");
    expect((await js.text()).length).toBeGreaterThan(1000);
    const css = await SELF.fetch(`http://127.0.0.1${style}`);
    expect(css.headers.get("Content-Type")).toMatch(/^text\/css/);
    await css.body?.cancel();
    expect((await SELF.fetch("http://127.0.0.1/t/dashboard/assets/app.0.js")).status).toBe(404);
    const post = await SELF.fetch("http://127.0.0.1/t/dashboard", { method: "POST", body: "x" });
    expect(post.status).toBe(405);
    expect(await json(post)).toMatchObject({ code: "METHOD_NOT_ALLOWED" });
    // Paths that only start like the mount are not the dashboard's.
    const other = await SELF.fetch("http://127.0.0.1/t/dashboardx");
    expect(other.headers.get("Content-Security-Policy")).toBeNull();
    await other.body?.cancel();
  });

  it("refuses bad options with INVALID_ARGUMENT", () => {
    const bad = (options: unknown) => () => dashboard(options as never);
    expect(bad({})).toThrow(/auth must be/);
    expect(bad({ auth: { anonymous: false } })).toThrow(/auth must be/);
    expect(bad({ auth: { secret: "T" }, path: "dashboard" })).toThrow(/path must/);
    expect(bad({ auth: { secret: "T" }, path: "/dash/" })).toThrow(/path must/);
    expect(bad({ auth: { secret: "T" }, executions: {} })).toThrow(/executions must/);
    expect(bad({ auth: { secret: "T" }, executions: { X: "all" } })).toThrow(/executions.X/);
    expect(bad({ auth: { secret: "T" }, executions: { X: [42] } })).toThrow(/executions.X/);
    expect(bad({ auth: { secret: "T" }, bindings: { index: "" } })).toThrow(/bindings.index/);
    expect(bad({ auth: { secret: "T" }, can: "yes" })).toThrow(/can must/);
  });
});

describe("dashboard: who may call its API", () => {
  it("needs the token (401 without, or with a wrong one)", async () => {
    const none = await SELF.fetch("http://127.0.0.1/t/dashboard/api/session", { headers: own });
    expect(none.status).toBe(401);
    expect(await json(none)).toMatchObject({ code: "UNAUTHORIZED" });
    const wrong = await api("/session", { headers: { Authorization: "Bearer nope" } });
    expect(wrong.status).toBe(401);
    await wrong.body?.cancel();
    const ok = await api("/session");
    expect(ok.status).toBe(200);
    expect(ok.headers.get("Content-Security-Policy")).toContain("default-src 'none'");
    expect(ok.headers.get("Cache-Control")).toBe("no-store");
    expect(none.headers.get("X-Baton-Auth")).toBe("token");
    expect(await json(ok)).toMatchObject({
      title: "Baton",
      readOnly: false,
      namespaces: [
        { binding: "TestExecutions", bound: true },
        { binding: "Orders", workflows: ["order"], bound: true },
      ],
      features: { list: true, locks: true, checkpoints: true },
    });
  });

  it("answers its own page only: no other site's form, fetch or WebSocket", async () => {
    const missing = await api("/session", { headers: { "X-Baton-Dashboard": "" } });
    expect(missing.status).toBe(403);
    expect(await json(missing)).toMatchObject({ code: "FORBIDDEN" });
    const foreign = await api("/session", { headers: { Origin: "https://evil.example" } });
    expect(foreign.status).toBe(403);
    await foreign.body?.cancel();
    const crossSite = await api("/session", { headers: { "Sec-Fetch-Site": "cross-site" } });
    expect(crossSite.status).toBe(403);
    await crossSite.body?.cancel();
    const sameOrigin = await api("/session", {
      headers: { Origin: "http://127.0.0.1", "Sec-Fetch-Site": "same-origin" },
    });
    expect(sameOrigin.status).toBe(200);
    await sameOrigin.body?.cancel();
    // A cancel another site's page makes the browser send, with the token's cookie or not.
    const { id } = executionStub("dash-csrf");
    await client().start(greet, { name: "Ada" }, { id });
    const forged = await SELF.fetch(
      `http://127.0.0.1/t/dashboard/api/executions/${encodeURIComponent(id)}/cancel`,
      {
        method: "POST",
        headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "text/plain" },
      },
    );
    expect(forged.status).toBe(403);
    await forged.body?.cancel();
    expect((await client().get(id).status()).status).not.toBe("cancelled");
  });

  it("serves an anonymous dashboard on loopback host names only", async () => {
    for (const host of ["127.0.0.1", "localhost", "[::1]"]) {
      const ok = await SELF.fetch(`http://${host}/a/dashboard/api/session`, { headers: own });
      expect(ok.status, host).toBe(200);
      await ok.body?.cancel();
    }
    const rebound = await SELF.fetch("http://evil.example/a/dashboard/api/session", {
      headers: own,
    });
    expect(rebound.status).toBe(403);
    expect(((await json(rebound)) as { message: string }).message).toMatch(/anonymous/);
    // A caller on another address, as wrangler dev reports it.
    const lan = await SELF.fetch("http://localhost/a/dashboard/api/session", {
      headers: { ...own, "CF-Connecting-IP": "192.0.2.7" },
    });
    expect(lan.status).toBe(403);
    await lan.body?.cancel();
    const loop = await SELF.fetch("http://localhost/a/dashboard/api/session", {
      headers: { ...own, "CF-Connecting-IP": "127.0.0.1" },
    });
    expect(loop.status).toBe(200);
    await loop.body?.cancel();
  });

  it("asks its policy for every call, and a read-only one refuses actions", async () => {
    const tenant = uniqueName("tenant");
    const mine = `${tenant}/order-1`;
    await client().start(greet, { name: "Ada" }, { id: mine });
    const call = (path: string, init: RequestInit = {}) =>
      SELF.fetch(`http://127.0.0.1/p/dashboard/api${path}`, {
        ...init,
        headers: { ...own, "X-Tenant": tenant },
      });
    expect((await call("/session")).status).toBe(200);
    expect((await call("/executions")).status).toBe(403);
    const listed = await call(`/executions?prefix=${encodeURIComponent(`${tenant}/`)}`);
    expect(listed.status).toBe(200);
    await listed.body?.cancel();
    const read = await call(`/executions/${encodeURIComponent(mine)}`);
    expect(read.status).toBe(200);
    await read.body?.cancel();
    const theirs = await call(`/executions/${encodeURIComponent("other/order-1")}`);
    expect(theirs.status).toBe(403);
    expect(await json(theirs)).toMatchObject({ code: "FORBIDDEN" });
    // Its input and outcome are what execution.result guards.
    const secret = `${tenant}/secret/order-2`;
    await client().start(greet, { name: "Secret" }, { id: secret });
    const hidden = await json(await call(`/executions/${encodeURIComponent(secret)}`));
    expect(hidden).toMatchObject({
      hidden: true,
      details: { info: { id: secret }, input: { $omitted: expect.any(String) }, result: null },
    });
    expect(JSON.stringify(hidden)).not.toContain("Secret");
    const cancel = await call(`/executions/${encodeURIComponent(mine)}/cancel`, { method: "POST" });
    expect(cancel.status).toBe(403);
    expect(await json(cancel)).toMatchObject({ code: "FORBIDDEN", message: /read-only/ });
    // A view whose actor is not bound says so (the session tells the page first).
    const session = await json(await call("/session"));
    expect(session).toMatchObject({ readOnly: true, features: { checkpoints: false } });
    expect((await call("/locks/x")).status).toBe(403);
  });
});

describe("dashboard: its API over the actors", () => {
  it("lists and counts executions, describes one, reads its journal", async () => {
    const prefix = uniqueName("dash-list");
    const ids = [`${prefix}/a`, `${prefix}/b`];
    for (const id of ids) {
      await client().start(greet, { name: id, tags: new Map([["k", 1n]]) } as never, { id });
    }
    await eventually(
      async () => json<{ executions: { id: string }[] }>(await api(`/executions?prefix=${prefix}`)),
      (page) => page.executions.length === 2,
    );
    const page = await json<{ executions: { id: string }[]; cursor: string | null }>(
      await api(`/executions?prefix=${prefix}&limit=1`),
    );
    expect(page.executions).toHaveLength(1);
    expect(page.cursor).not.toBeNull();
    const next = await json<{ executions: { id: string }[] }>(
      await api(
        `/executions?prefix=${prefix}&limit=1&cursor=${encodeURIComponent(page.cursor ?? "")}`,
      ),
    );
    expect([...page.executions, ...next.executions].map((e) => e.id).sort()).toEqual(ids.sort());
    const counts = await json(await api(`/counts?prefix=${prefix}&workflow=greet`));
    expect(counts).toMatchObject({ total: 2, byWorkflow: { greet: 2 } });

    const described = await json(await api(`/executions/${encodeURIComponent(ids[0] ?? "")}`));
    expect(described).toMatchObject({
      binding: "TestExecutions",
      details: {
        info: { id: ids[0], workflow: "greet" },
        // Values JSON cannot hold are tagged, not lost.
        input: { name: ids[0], tags: { $map: [["k", { $bigint: "1" }]] } },
        result: null,
        parent: null,
      },
    });
    const journal = await json<{ entries: { name: string; kind: string }[]; truncated: boolean }>(
      await api(`/executions/${encodeURIComponent(ids[0] ?? "")}/journal`),
    );
    expect(journal.truncated).toBe(false);
    expect(journal.entries[0]).toMatchObject({ name: "hello", kind: "do" });
    // From a position on: the part of the journal that may still change.
    const tail = await json<{ entries: { seq: number }[] }>(
      await api(`/executions/${encodeURIComponent(ids[0] ?? "")}/journal?from=1`),
    );
    expect(tail.entries.map((e) => e.seq)).toEqual(
      journal.entries.slice(1).map((e) => (e as never as { seq: number }).seq),
    );
    // Only the workflows this dashboard shows are listed.
    expect(await json(await api(`/executions?prefix=${prefix}&workflow=not-shown-here`))).toEqual({
      executions: [],
      cursor: null,
    });
    expect(await json(await api(`/counts?prefix=${prefix}&workflow=not-shown-here`))).toMatchObject(
      {
        total: 0,
      },
    );
  });

  it("sends events, pauses, resumes, cancels and restarts, each with its result or code", async () => {
    const { id } = executionStub("dash-act");
    await client().start(greet, { name: "Ada" }, { id });
    const path = `/executions/${encodeURIComponent(id)}`;
    const post = (action: string, body?: unknown) =>
      api(`${path}/${action}`, {
        method: "POST",
        ...(body === undefined
          ? {}
          : { body: typeof body === "string" ? body : JSON.stringify(body) }),
      });
    expect(await json(await post("pause"))).toMatchObject({ status: "paused" });
    expect(await json(await post("resume"))).not.toMatchObject({ status: "paused" });
    const sent = await post("events", { type: "approve", payload: { ok: true } });
    expect(sent.status).toBe(200);
    expect(await json(sent)).toMatchObject({ duplicate: false });
    expect(await json(await post("cancel"))).toMatchObject({ status: "cancelled" });
    const late = await post("events", { type: "approve", payload: {} });
    expect(late.status).toBe(409);
    expect(await json(late)).toMatchObject({ code: "EXECUTION_FINISHED" });
    // Cancel is idempotent: again, it answers the cancelled state.
    expect(await json(await post("cancel"))).toMatchObject({ status: "cancelled" });
    expect(await json(await post("restart"))).toMatchObject({ run: 2 });
  });

  it("refuses bad input on every route with a code, and changes nothing", async () => {
    const { id } = executionStub("dash-bad");
    await client().start(greet, { name: "Ada" }, { id });
    const path = `/executions/${encodeURIComponent(id)}`;
    const expectCode = async (response: Promise<Response>, status: number, code: string) => {
      const r = await response;
      expect(r.status, code).toBe(status);
      expect(await json(r)).toMatchObject({ code });
    };
    await expectCode(api("/executions?status=bogus"), 400, "INVALID_ARGUMENT");
    await expectCode(api("/executions?limit=0"), 400, "INVALID_ARGUMENT");
    await expectCode(api("/executions?limit=abc"), 400, "INVALID_ARGUMENT");
    await expectCode(api("/executions?after=-5"), 400, "INVALID_ARGUMENT");
    await expectCode(api("/executions?cursor=nonsense"), 400, "INVALID_ARGUMENT");
    await expectCode(api("/counts?after=1.5"), 400, "INVALID_ARGUMENT");
    await expectCode(api("/executions/%E0%A4%A"), 400, "INVALID_ARGUMENT");
    await expectCode(api(`${path}/journal?from=-1`), 400, "INVALID_ARGUMENT");
    // A body without a length, larger than the limit: refused as it streams in.
    const big = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 40; i++) controller.enqueue(new Uint8Array(64 * 1024).fill(32));
        controller.close();
      },
    });
    await expectCode(
      api(`${path}/events`, { method: "POST", body: big, duplex: "half" } as RequestInit & {
        headers?: Record<string, string>;
      }),
      413,
      "PAYLOAD_TOO_LARGE",
    );
    await expectCode(api(`/executions/${"x".repeat(300)}`), 400, "INVALID_ARGUMENT");
    await expectCode(api(`/executions/${encodeURIComponent("a\u0000b")}`), 400, "INVALID_ARGUMENT");
    await expectCode(api("/executions/no-such-execution"), 404, "EXECUTION_NOT_FOUND");
    await expectCode(api("/executions/no-such-execution/journal"), 404, "EXECUTION_NOT_FOUND");
    await expectCode(
      api(`${path}/events`, { method: "POST", body: "not json" }),
      400,
      "INVALID_ARGUMENT",
    );
    await expectCode(
      api(`${path}/events`, { method: "POST", body: "[1]" }),
      400,
      "INVALID_ARGUMENT",
    );
    await expectCode(
      api(`${path}/events`, { method: "POST", body: JSON.stringify({ payload: 1 }) }),
      400,
      "INVALID_ARGUMENT",
    );
    await expectCode(
      api(`${path}/events`, {
        method: "POST",
        body: JSON.stringify({ type: "approve", payload: "x".repeat(1_100_000) }),
      }),
      413,
      "PAYLOAD_TOO_LARGE",
    );
    await expectCode(api(`${path}/explode`, { method: "POST" }), 404, "NOT_FOUND");
    await expectCode(api(`${path}/cancel`), 404, "NOT_FOUND"); // GET is not an action
    await expectCode(api("/nothing"), 404, "NOT_FOUND");
    await expectCode(api("/locks/concurrency:x"), 403, "FORBIDDEN");
    await expectCode(api("/checkpoints/state:x"), 403, "FORBIDDEN");
    await expectCode(api("/checkpoints/scope-1/name/abc"), 400, "INVALID_ARGUMENT");
    await expectCode(api("/checkpoints/scope-1/name/3"), 404, "CHECKPOINT_NOT_FOUND");
    // Nothing was changed by any of it: no event was taken, the execution still runs.
    const journal = await client().get(id).journal();
    expect(journal.some((e) => e.kind === "wait" && e.status === "completed")).toBe(false);
    expect((await client().get(id).status()).status).not.toBe("cancelled");
  });

  it("shows a lock and a checkpoint scope", async () => {
    const name = uniqueName("dash-lock");
    const got = await locks(env.Locks).acquire(name, { owner: "worker-a", ttl: "1m" });
    expect(got.acquired).toBe(true);
    expect(await json(await api(`/locks/${name}`))).toMatchObject({
      locked: true,
      holders: [{ owner: "worker-a", fence: 1 }],
      queue: 0,
    });
    const scope = uniqueName("dash-scope");
    await checkpoints(env.Checkpoints).save(scope, "cart", { items: new Set(["a"]) });
    await checkpoints(env.Checkpoints).save(scope, "cart", { items: new Set(["a", "b"]) });
    expect(await json(await api(`/checkpoints/${scope}`))).toMatchObject([
      { name: "cart", version: 2 },
    ]);
    const history = await json<{ version: number }[]>(await api(`/checkpoints/${scope}/cart`));
    expect(history.map((v) => v.version)).toEqual([1, 2]);
    expect(await json(await api(`/checkpoints/${scope}/cart/1`))).toMatchObject({
      version: 1,
      value: { items: { $set: ["a"] } },
    });
  });

  it("opens an execution on the Execution actor of its workflow, by the index", async () => {
    const orderId = uniqueName("dash-order");
    await executions(env.Orders).start(
      "order",
      { orderId, items: ["pen"], amount: 1 },
      { id: orderId },
    );
    const described = await eventually(
      () => api(`/executions/${orderId}`).then((r) => json(r)),
      (d) => d.binding === "Orders",
    );
    expect(described).toMatchObject({ details: { info: { workflow: "order" } } });
    // Not in the index, and two Execution actors shown: the dashboard cannot tell which.
    const unknown = await api("/executions/never-indexed");
    expect(unknown.status).toBe(404);
    expect(await json(unknown)).toMatchObject({ code: "EXECUTION_NOT_FOUND" });
  });
});

describe("dashboard: live progress", () => {
  it("opens the live WebSocket with the token as a subprotocol, never in the URL", async () => {
    const { id } = executionStub("dash-live");
    await client().start(greet, { name: "Ada" }, { id });
    const url = `http://127.0.0.1/t/dashboard/api/executions/${encodeURIComponent(id)}/live`;
    const denied = await SELF.fetch(url, {
      headers: { Upgrade: "websocket", "Sec-WebSocket-Protocol": "baton.dashboard" },
    });
    expect(denied.status).toBe(401);
    await denied.body?.cancel();
    // Never in the URL, where logs would keep it.
    const inUrl = await SELF.fetch(`${url}?token=${TOKEN}`, { headers: { Upgrade: "websocket" } });
    expect(inUrl.status).toBe(401);
    await inUrl.body?.cancel();
    // A "token" a header cannot carry is refused like a wrong one, not a crash.
    const crafted = await SELF.fetch(url, {
      headers: {
        Upgrade: "websocket",
        "Sec-WebSocket-Protocol": "baton.dashboard, baton.bearer.YQpi",
      },
    });
    expect(crafted.status).toBe(401);
    await crafted.body?.cancel();
    const bearer = btoa(TOKEN).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
    const response = await SELF.fetch(url, {
      headers: {
        Upgrade: "websocket",
        "Sec-WebSocket-Protocol": `baton.dashboard, baton.bearer.${bearer}`,
      },
    });
    expect(response.status).toBe(101);
    expect(response.headers.get("Sec-WebSocket-Protocol")).toBe("baton.dashboard");
    const socket = response.webSocket;
    if (!socket) throw new Error("no WebSocket");
    const first = new Promise<{ type: string }>((resolve) =>
      socket.addEventListener("message", (m) => resolve(JSON.parse(String(m.data)))),
    );
    socket.accept();
    expect(await first).toMatchObject({ type: "initial_state" });
    socket.close();
    // Another site's page cannot open it, token or not.
    const foreign = await SELF.fetch(url, {
      headers: {
        Upgrade: "websocket",
        Origin: "https://evil.example",
        "Sec-WebSocket-Protocol": `baton.dashboard, baton.bearer.${bearer}`,
      },
    });
    expect(foreign.status).toBe(403);
    await foreign.body?.cancel();
  });

  it("a bad execution id is refused before any actor is reached", async () => {
    const r = await api(`/executions/${encodeURIComponent("a\u0001")}/live`, {
      headers: { Upgrade: "websocket" },
    });
    expect(r.status).toBe(400);
    expect(await json(r)).toMatchObject({ code: "INVALID_ARGUMENT" });
    const gone = await api("/executions/never-started/live", { headers: { Upgrade: "websocket" } });
    expect(gone.status).toBe(404);
    await gone.body?.cancel();
  });
});

describe("dashboard: values as the page shows them", () => {
  it("tags what JSON cannot hold, survives cycles and shared parts, keeps odd keys", () => {
    const shared: Record<string, unknown> = { n: 1 };
    const cyclic: Record<string, unknown> = { name: "loop" };
    cyclic.self = cyclic;
    const odd = JSON.parse('{"__proto__": 1, "constructor": 2}');
    expect(
      toJsonSafe({ m: new Map([[1n, new Set(["a"])]]), d: new Date(0), u: undefined, x: NaN }),
    ).toEqual({
      m: { $map: [[{ $bigint: "1" }, { $set: ["a"] }]] },
      d: { $date: "1970-01-01T00:00:00.000Z" },
      u: { $undefined: true },
      x: { $number: "NaN" },
    });
    expect(JSON.stringify(toJsonSafe({ a: shared, b: shared }))).toBe('{"a":{"n":1},"b":{"n":1}}');
    expect(toJsonSafe(cyclic)).toEqual({ name: "loop", self: { $cycle: true } });
    expect(JSON.stringify(toJsonSafe(odd))).toBe('{"__proto__":1,"constructor":2}');
    // A value whose parts are shared many times over (2^30 paths): cut short, quickly.
    let dag: unknown = "leaf";
    for (let i = 0; i < 30; i++) dag = [dag, dag];
    const started = Date.now();
    expect(JSON.stringify(toJsonSafe(dag))).toContain("too many parts");
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(forDisplay("x".repeat(300_000))).toEqual({
      $omitted: expect.stringMatching(/bytes of JSON/),
    });
  });
});
