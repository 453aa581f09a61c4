import { env, SELF } from "cloudflare:test";
import { newWebSocketRpcSession } from "capnweb";
import { describe, expect, it } from "vitest";
import { executions, locks } from "../src/index.ts";
import {
  advance,
  eventually,
  executionStub,
  expectBatonError,
  probe,
  uniqueName,
} from "./helpers.ts";
import type { TestApi } from "./worker.ts";
import { limited, lockedWork, secrets } from "./workflows.ts";

const client = () => executions(env.TestExecutions);

/** The attacker's view of a lock: anyone may read its status. */
const status = (name: string) => env.Locks.getByName(name).status();

async function gatewaySession() {
  const response = await SELF.fetch("https://baton.test/test/rpc", {
    headers: { Upgrade: "websocket", Authorization: "Bearer test-token" },
  });
  const ws = response.webSocket as WebSocket;
  ws.accept();
  return newWebSocketRpcSession<TestApi>(ws);
}

describe("security: lock leases cannot be stolen", () => {
  it("a workflow's lease: its owner (shown by status) claims nothing through acquire or abandon", async () => {
    const p = probe();
    const resource = uniqueName("res");
    const { id } = executionStub("theft");
    await client().start(lockedWork, { probe: p.name, resource, tag: "A" }, { id });
    await eventually(
      () => p.stub.records("critical"),
      (r) => r.length === 1,
    );
    const [holder] = (await status(resource)).holders;
    expect(holder?.owner).toBe(`${id}/lock:${resource}:acquire/0`);
    const owner = holder?.owner as string;
    // Presenting the owner as a waiter id: a new waiter, not the holder (no lease, no token).
    const stolen = await locks(env.Locks).acquire(resource, {
      owner: "thief",
      ttl: "1m",
      waiterId: owner,
    });
    expect(stolen).toMatchObject({ acquired: false, holders: [{ owner }] });
    // Abandoning by the owner releases nothing.
    expect(await locks(env.Locks).abandon(resource, owner)).toBe("none");
    const api = await gatewaySession();
    expect(await api.locks.abandon(resource, owner, { release: true })).toEqual({
      outcome: "none",
    });
    api[Symbol.dispose]();
    expect((await status(resource)).holders).toEqual([holder]);
    await p.stub.openGate("A");
    expect((await client().get(id).result({ timeout: "5s" })).ok).toBe(true);
  });

  it("a concurrency permit: its lock is out of the public API's reach, and its waiter unguessable", async () => {
    const p = probe();
    const customer = uniqueName("cust");
    const name = `concurrency:limited:2:${customer}`;
    const { id } = executionStub("permit-theft");
    await client().start(limited, { probe: p.name, customer, tag: "k" }, { id });
    await eventually(
      () => p.stub.records("in"),
      (r) => r.length === 1,
    );
    await expectBatonError(
      locks(env.Locks).acquire(name, { owner: "thief", ttl: "1m", permits: 2 }),
      "FORBIDDEN",
      /reserved/,
    );
    await expectBatonError(locks(env.Locks).status(name), "FORBIDDEN");
    const api = await gatewaySession();
    await expect(api.locks.status(name)).rejects.toMatchObject({ code: "FORBIDDEN" });
    api[Symbol.dispose]();
    // Even a direct call with the waiter id it used to have (`<id>/$concurrency/run-1`) gets
    // nothing: the real one is a secret of the execution.
    const direct = await env.Locks.getByName(name).abandon(`${id}/$concurrency/run-1`);
    expect(direct).toEqual({ outcome: "none" });
    expect((await status(name)).holders).toHaveLength(1);
    await p.stub.openGate("k");
    expect((await client().get(id).result({ timeout: "5s" })).ok).toBe(true);
    await eventually(
      () => status(name),
      (s) => s.holders.length === 0,
    );
  });

  it("keeps a workflow's lease token out of its journal and its live events", async () => {
    const p = probe();
    const resource = uniqueName("res");
    const { id, stub } = executionStub("no-token");
    await client().start(lockedWork, { probe: p.name, resource, tag: "T" }, { id });
    await eventually(
      () => p.stub.records("critical"),
      (r) => r.length === 1,
    );
    const [acquire] = await stub.journal();
    expect(acquire?.name).toBe(`lock:${resource}:acquire`);
    const output = acquire?.output as { lease: Record<string, unknown>; key: string };
    expect(Object.keys(output.lease).sort()).toEqual(["expiresAt", "fence", "owner"]);
    expect(output.lease.fence).toBe(1);
    await p.stub.openGate("T");
    expect((await client().get(id).result({ timeout: "5s" })).ok).toBe(true);
    // Released by the waiter secret: the lock is free again.
    expect((await status(resource)).holders).toEqual([]);
  });

  it("refuses a waiter id short enough to guess, or one that is the owner", async () => {
    const name = uniqueName("lock");
    const id = crypto.randomUUID();
    await expectBatonError(
      locks(env.Locks).acquire(name, { owner: id, ttl: "1m", waiterId: id }),
      "INVALID_ARGUMENT",
      /owner/,
    );
    await expectBatonError(
      locks(env.Locks).acquire(name, { owner: "a", ttl: "1m", waiterId: "job-42" }),
      "INVALID_ARGUMENT",
      /secret/,
    );
    await expectBatonError(locks(env.Locks).abandon(name, "job-42"), "INVALID_ARGUMENT", /secret/);
  });
});

describe("locks inside workflows: cancels and restarts", () => {
  it("a cancelled execution leaves the queue at once; a restarted one gets its own lease back", async () => {
    const p = probe();
    const resource = uniqueName("res");
    const a = executionStub("lock-restart-a");
    const b = executionStub("lock-cancel-b");
    await client().start(lockedWork, { probe: p.name, resource, tag: "A" }, { id: a.id });
    await eventually(
      () => p.stub.records("critical"),
      (r) => r.length === 1,
    );
    await client().start(lockedWork, { probe: p.name, resource, tag: "B" }, { id: b.id });
    await eventually(
      () => status(resource),
      (s) => s.queue === 1,
    );
    await client().get(b.id).cancel();
    await eventually(
      () => status(resource),
      (s) => s.queue === 0,
    );
    // A holds the lock; restarted, its new run re-attaches to that lease (same waiter secret)
    // instead of waiting behind itself until the lease runs out.
    await a.stub.restart();
    await eventually(
      () => p.stub.records("critical"),
      (r) => r.length === 2,
    );
    const fences = (await p.stub.records("critical")).map((r) => (r as { fence: number }).fence);
    expect(fences).toEqual([1, 1]);
    await p.stub.openGate("A");
    expect((await client().get(a.id).result({ timeout: "5s" })).ok).toBe(true);
    expect(await status(resource)).toMatchObject({ holders: [], queue: 0, fence: 1 });
  });
});

describe("security: the permit count cannot be squatted", () => {
  it("an omitted permits means 1: a caller cannot take a semaphore's extra permits, nor widen a mutex", async () => {
    const semaphore = uniqueName("sem");
    const first = await locks(env.Locks).acquire(semaphore, { owner: "a", ttl: "1m", permits: 3 });
    expect(first.acquired).toBe(true);
    await expectBatonError(
      locks(env.Locks).acquire(semaphore, { owner: "b", ttl: "1m" }),
      "PERMITS_MISMATCH",
    );
    const mutex = uniqueName("mutex");
    expect((await locks(env.Locks).acquire(mutex, { owner: "a", ttl: "1m" })).acquired).toBe(true);
    await expectBatonError(
      locks(env.Locks).acquire(mutex, { owner: "b", ttl: "1m", permits: 1000 }),
      "PERMITS_MISMATCH",
    );
    expect(await status(mutex)).toMatchObject({ permits: 1, locked: true });
  });

  it("a workflow's concurrency lock cannot be pre-created with another count", async () => {
    const p = probe();
    const customer = uniqueName("cust");
    await expectBatonError(
      locks(env.Locks).acquire(`concurrency:limited:2:${customer}`, {
        owner: "squatter",
        ttl: "1m",
        permits: 1000,
      }),
      "FORBIDDEN",
    );
    const { id } = executionStub("squat");
    await client().start(limited, { probe: p.name, customer, tag: "s" }, { id });
    await p.stub.openGate("s");
    expect(await client().get(id).result({ timeout: "5s" })).toMatchObject({ ok: true });
  });
});

describe("step secrets", () => {
  it("are stable across retries of a step and differ between steps and executions", async () => {
    const a = executionStub("secret-a");
    const b = executionStub("secret-b");
    const runA = await client().start(secrets, {}, { id: a.id });
    const runB = await client().start(secrets, {}, { id: b.id });
    // Step s1 fails its first attempt and retries after a second.
    for (const { stub } of [a, b]) {
      await eventually(
        () => stub.status(),
        (s) => s.attempts >= 1,
      );
      await advance(stub, 1_000);
    }
    const [resultA, resultB] = [
      await runA.result({ timeout: "5s" }),
      await runB.result({ timeout: "5s" }),
    ];
    if (!resultA.ok || !resultB.ok) throw new Error("the secrets workflow failed");
    const { first, again, other } = resultA.value;
    expect(first).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(again).toBe(first); // the retry saw the same secret
    expect(other).not.toBe(first);
    expect(resultB.value.first).not.toBe(first);
  });
});
