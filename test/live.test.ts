import { env, evictDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { executions, type LiveEvent, liveProgress } from "../src/index.ts";
import {
  advance,
  eventually,
  executionStub,
  probe,
  resetExecution,
  reviveByHeartbeat,
} from "./helpers.ts";
import { counted, gated, greet } from "./workflows.ts";

const client = () => executions(env.TestExecutions);

/** A live-progress subscriber: its events in arrival order, and whether the server closed it. */
interface Subscriber {
  events: LiveEvent[];
  closed: Promise<number>;
}

async function subscribe(id: string): Promise<Subscriber> {
  const response = await liveProgress(
    new Request("https://baton.test/live", { headers: { Upgrade: "websocket" } }),
    env.TestExecutions,
    id,
  );
  expect(response.status).toBe(101);
  const ws = response.webSocket as WebSocket;
  const events: LiveEvent[] = [];
  const closed = new Promise<number>((resolve) => {
    ws.addEventListener("close", (event) => resolve(event.code));
  });
  ws.addEventListener("message", (event) => events.push(JSON.parse(event.data as string)));
  ws.accept();
  // initial_state comes first, on connection.
  await eventually(
    async () => events.length,
    (n) => n > 0,
  );
  return { events, closed };
}

const kinds = (events: LiveEvent[]) =>
  events.map((e) => (e.type === "progress" ? `progress:${e.step}` : e.type));

describe("live progress over a hibernatable WebSocket", () => {
  it("sends initial_state, ordered progress, one terminal event, the same to every subscriber", async () => {
    const p = probe();
    const { id } = executionStub("live");
    const run = await client().start(gated, { probe: p.name }, { id });
    await eventually(
      () => p.stub.counts(),
      (c) => c.b === 1,
    );
    const first = await subscribe(id);
    const second = await subscribe(id);
    await p.stub.openGate("b");
    expect(await run.result({ timeout: "5s" })).toMatchObject({ ok: true, value: "abc" });
    expect(await first.closed).toBe(1000);
    expect(await second.closed).toBe(1000);
    expect(kinds(first.events)).toEqual(["initial_state", "progress:b", "progress:c", "completed"]);
    // Every subscriber sees the same events in the same order.
    expect(second.events.slice(1)).toEqual(first.events.slice(1));
    const [initial, b, , done] = first.events;
    expect(initial).toMatchObject({
      type: "initial_state",
      state: { id, status: "running", completedSteps: 1 },
    });
    expect(b).toMatchObject({ type: "progress", executionId: id, stepIndex: 1, output: "b" });
    expect(done).toMatchObject({ type: "completed", executionId: id, result: "abc" });
  });

  it("gives a subscriber of an ended execution its state, then its one terminal event", async () => {
    const p = probe();
    const { id } = executionStub("live-ended");
    const run = await client().start(counted, { n: 2, probe: p.name }, { id });
    await run.result({ timeout: "5s" });
    const late = await subscribe(id);
    expect(await late.closed).toBe(1000);
    expect(kinds(late.events)).toEqual(["initial_state", "completed"]);
    expect(late.events[0]).toMatchObject({ state: { status: "completed", completedSteps: 2 } });
  });

  it("keeps a socket across the actor's eviction (hibernation) and goes on streaming", async () => {
    const { id, stub } = executionStub("live-hibernate");
    const run = await client().start(greet, { name: "Ada" }, { id });
    await advance(stub, 1_000); // past the sleep: now it waits for "approve"
    await eventually(
      () => run.status(),
      (s) => s.status === "waiting",
    );
    const sub = await subscribe(id);
    // Idle subscriber: the actor is evicted; the socket stays open.
    await evictDurableObject(stub);
    // A second subscriber joins the evicted actor: the current state first.
    const joined = await subscribe(id);
    expect(joined.events[0]).toMatchObject({
      type: "initial_state",
      state: { id, status: "waiting" },
    });
    await run.sendEvent("approve", { ok: true });
    expect(await run.result({ timeout: "5s" })).toMatchObject({ ok: true });
    expect(await sub.closed).toBe(1000);
    expect(await joined.closed).toBe(1000);
    expect(kinds(sub.events)).toEqual(["initial_state", "progress:approval", "completed"]);
    expect(sub.events[1]).toMatchObject({
      output: { type: "approve", payload: { ok: true } },
    });
    // Both see the same events after the eviction, in the same order.
    expect(joined.events.slice(1)).toEqual(sub.events.slice(1));
  });

  it("gives a subscriber that joins after a reset the current state first, then the rest", async () => {
    const p = probe();
    const { id } = executionStub("live-reset");
    const run = await client().start(gated, { probe: p.name }, { id });
    await eventually(
      () => p.stub.counts(),
      (c) => c.b === 1,
    );
    await resetExecution(id);
    const sub = await subscribe(id);
    expect(sub.events[0]).toMatchObject({ type: "initial_state", state: { status: "running" } });
    await p.stub.openGate("b");
    await reviveByHeartbeat(id);
    expect(await run.result({ timeout: "5s" })).toMatchObject({ ok: true });
    expect(await sub.closed).toBe(1000);
    expect(kinds(sub.events)).toEqual(["initial_state", "progress:b", "progress:c", "completed"]);
  });

  it("streams a tracked execution's reports; leaves out outputs JSON would not carry", async () => {
    const { id, stub } = executionStub("live-tracked");
    await stub.track("import", { id, totalSteps: 3 });
    const sub = await subscribe(id);
    await stub.progress("read", { index: 0, output: { rows: 2 } });
    await stub.progress("map", { index: 1, output: new Map([["a", 1]]) });
    await stub.progress("big", { index: 2, output: "x".repeat(20_000) });
    await stub.complete({ imported: 2 });
    expect(await sub.closed).toBe(1000);
    expect(sub.events.slice(1)).toMatchObject([
      { type: "progress", step: "read", stepIndex: 0, totalSteps: 3, output: { rows: 2 } },
      { type: "progress", step: "map", stepIndex: 1, outputOmitted: true },
      { type: "progress", step: "big", stepIndex: 2, outputOmitted: true },
      { type: "completed", result: { imported: 2 } },
    ]);
    expect(sub.events[2]).not.toHaveProperty("output");
  });

  it("refuses a plain request (426), an unknown execution (404) and a bad id (400)", async () => {
    const plain = await liveProgress(
      new Request("https://baton.test/live"),
      env.TestExecutions,
      "x",
    );
    expect(plain.status).toBe(426);
    const missing = await liveProgress(
      new Request("https://baton.test/live", { headers: { Upgrade: "websocket" } }),
      env.TestExecutions,
      executionStub("live-none").id,
    );
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ code: "EXECUTION_NOT_FOUND" });
    const bad = await liveProgress(
      new Request("https://baton.test/live", { headers: { Upgrade: "websocket" } }),
      env.TestExecutions,
      "",
    );
    expect(bad.status).toBe(400);
  });
});
