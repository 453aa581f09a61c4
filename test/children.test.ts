import { env, evictDurableObject, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { executions } from "../src/index.ts";
import {
  advance,
  eventually,
  executionStub,
  expectBatonError,
  probe,
  resetExecution,
  reviveByHeartbeat,
  uniqueName,
} from "./helpers.ts";
import { detachedChild, fanout, grandparent, oddChildren } from "./workflows.ts";

const client = () => executions(env.TestExecutions);

describe("child executions", () => {
  it("fans out to children and finalizes over every outcome in declaration order", async () => {
    const p = probe();
    const { id } = executionStub("fan");
    const run = await client().start(fanout, { probe: p.name, count: 6, failAt: [1, 4] }, { id });
    const result = await run.result({ timeout: "10s" });
    expect(result).toEqual({
      ok: true,
      status: "completed",
      value: { values: [0, null, 4, 6, null, 10], failed: ["child 1 failed", "child 4 failed"] },
    });
    const counts = await p.stub.counts();
    expect(Object.values(counts)).toEqual(Array(6).fill(1));
    // Each child is its own execution, with an id derived from the parent.
    const child = await client().get(`${id}/kids#2/0`).status();
    expect(child).toMatchObject({ workflow: "childWork", status: "completed" });
    // The journal names each child's id; describe() names a child's parent and its step.
    const journal = await run.journal();
    const kids = journal.filter((e) => e.kind === "child");
    expect(kids.map((e) => e.childId)).toEqual(
      Array.from({ length: 6 }, (_, n) => `${id}/kids#${n}/0`),
    );
    const described = await env.TestExecutions.getByName(`${id}/kids#2/0`).describe();
    expect(described).toMatchObject({
      info: { id: `${id}/kids#2/0`, status: "completed" },
      result: { ok: true, value: 4 },
      parent: { id, step: kids[2]?.seq },
    });
  });

  it("survives eviction of the parent and a reset of a child while they run", async () => {
    const p = probe();
    const { id, stub } = executionStub("fan-evict");
    const run = await client().start(fanout, { probe: p.name, count: 3, gate: true }, { id });
    await eventually(
      () => p.stub.counts(),
      (c) => Object.keys(c).length === 3,
    );
    // The parent is evicted while it waits; child 0 is reset mid-step (evictDurableObject would
    // wait for its outgoing call) and comes back by its heartbeat alarm.
    await evictDurableObject(stub);
    const first = `${id}/kids#0/0`;
    await resetExecution(first);
    await reviveByHeartbeat(first);
    await eventually(
      () => p.stub.count("child-0"),
      (n) => n === 2,
    );
    for (let n = 0; n < 3; n++) await p.stub.openGate(`child-${n}`);
    expect(await run.result({ timeout: "10s" })).toMatchObject({
      ok: true,
      value: { values: [0, 2, 4] },
    });
    // Only the reset child's body ran again.
    expect(await p.stub.counts()).toEqual({ "child-0": 2, "child-1": 1, "child-2": 1 });
  });

  it("cancels unfinished children when the parent is cancelled; their steps see the abort", async () => {
    const p = probe();
    const { id } = executionStub("fan-cancel");
    const run = await client().start(fanout, { probe: p.name, count: 3, gate: true }, { id });
    await eventually(
      () => p.stub.counts(),
      (c) => Object.keys(c).length === 3,
    );
    await run.cancel();
    for (let n = 0; n < 3; n++) {
      await eventually(
        () => client().get(`${id}/kids#${n}/0`).status(),
        (s) => s.status === "cancelled",
      );
    }
    await eventually(
      () => p.stub.records("child-abort"),
      (r) => r.length === 3,
    );
  });

  it("ends a parent only after a child it did not await, without hanging", async () => {
    for (const also of [false, true]) {
      const p = probe();
      const { id } = executionStub(also ? "detached-also" : "detached");
      const run = await client().start(detachedChild, { probe: p.name, also }, { id });
      await eventually(
        () => p.stub.counts(),
        (c) => c["child-7"] === 1,
      );
      // The workflow function has returned, but its child is still running.
      expect((await run.status()).status).toBe("waiting");
      await p.stub.openGate("child-7");
      expect(await run.result({ timeout: "5s" })).toEqual({
        ok: true,
        status: "completed",
        value: "returned",
      });
      expect(await client().get(`${id}/bg/0`).status()).toMatchObject({ status: "completed" });
    }
  });

  it("derives distinct, valid child ids from any step name", async () => {
    const p = probe();
    const { id } = executionStub("odd");
    const run = await client().start(oddChildren, { probe: p.name }, { id });
    expect(await run.result({ timeout: "5s" })).toEqual({
      ok: true,
      status: "completed",
      value: [2, 4, 6],
    });
    const ids = (await run.journal()).map((e) => e.eventType as string);
    expect(new Set(ids).size).toBe(3);
    expect(ids[0]).toBe(`${id}/a%2F0%2Fb/0`);
    expect(ids[1]).toBe(`${id}/a/0`);
    expect(ids[2]?.length).toBeLessThanOrEqual(256);
    for (const childId of ids)
      expect(await client().get(childId).status()).toMatchObject({ status: "completed" });
  });

  it("refuses bad child calls over RPC, and a second parent; a replay gets its child back", async () => {
    const { id, stub } = executionStub("child-rpc");
    const parent = { id: uniqueName("parent"), seq: 0, binding: "TestExecutions" };
    const input = { probe: probe().name, n: 5 };
    const cases: Array<[() => Promise<unknown>, string]> = [
      // @ts-expect-error no parent
      [() => stub.startChild("childWork", input, { id }), "INVALID_ARGUMENT"],
      [
        () => stub.startChild("childWork", input, { id, parent: { ...parent, seq: 1.5 } }),
        "INVALID_ARGUMENT",
      ],
      [() => stub.startChild("nope", input, { id, parent }), "UNKNOWN_WORKFLOW"],
      [() => stub.childDone(0, "x", { ok: true, id: "x", value: 1 }), "EXECUTION_NOT_FOUND"],
    ];
    for (const [call, code] of cases) await expectBatonError(call(), code as "INVALID_ARGUMENT");
    await expectBatonError(client().get(id).status(), "EXECUTION_NOT_FOUND");
    await stub.startChild("childWork", input, { id, parent });
    // The same parent step, even with another input (a replay that computed it anew): the child.
    expect(await stub.startChild("childWork", { ...input, n: 6 }, { id, parent })).toMatchObject({
      id,
      workflow: "childWork",
    });
    await expectBatonError(
      stub.startChild("childWork", input, { id, parent: { ...parent, seq: 1 } }),
      "EXECUTION_CONFLICT",
    );
    for (const bad of [null, { ok: true }, { ok: false, id: "y" }, { ok: "yes", id: "y" }]) {
      // @ts-expect-error malformed reports
      await expectBatonError(stub.childDone(0, "y", bad), "INVALID_ARGUMENT");
    }
    expect(await stub.childDone(0, "y", { ok: true, id: "y", value: 1 })).toBe(false);
  });

  it("survives a reset of the parent in the middle of its fan-out; each child body once", async () => {
    const p = probe();
    const { id } = executionStub("fan-reset");
    await client().start(fanout, { probe: p.name, count: 20 }, { id });
    // Reset while it is still starting children (and they report back).
    await resetExecution(id);
    await reviveByHeartbeat(id);
    const result = await client().get(fanout, id).result({ timeout: "10s" });
    expect(result).toMatchObject({
      ok: true,
      value: { values: Array.from({ length: 20 }, (_, n) => n * 2), failed: [] },
    });
    const counts = await p.stub.counts();
    expect(Object.keys(counts)).toHaveLength(20);
    expect(Object.values(counts).every((c) => c === 1)).toBe(true);
  });

  it("finds out by itself when a child's report never arrives", async () => {
    const p = probe();
    const { id, stub } = executionStub("lost-report");
    const run = await client().start(fanout, { probe: p.name, count: 1, gate: true }, { id });
    await eventually(
      () => p.stub.counts(),
      (c) => c["child-0"] === 1,
    );
    // Point the child's report at a binding that does not exist: its report goes nowhere.
    const childId = `${id}/kids#0/0`;
    await runInDurableObject(env.TestExecutions.getByName(childId), (_i, state) => {
      state.storage.sql.exec("UPDATE _baton_execution SET parent_binding = 'Nowhere'");
    });
    await p.stub.openGate("child-0");
    await eventually(
      () => client().get(childId).status(),
      (s) => s.status === "completed",
    );
    expect((await run.status()).status).toBe("waiting");
    // The parent's check on its children (a minute after it started them) pulls the outcome.
    await advance(stub, 60_000);
    expect(await run.result({ timeout: "5s" })).toMatchObject({
      ok: true,
      value: { values: [0], failed: [] },
    });
  });

  it("shows a grandchild's failure at the grandparent's finalize", async () => {
    const p = probe();
    const { id } = executionStub("grand");
    const run = await client().start(grandparent, { probe: p.name }, { id });
    expect(await run.result({ timeout: "10s" })).toEqual({
      ok: true,
      status: "completed",
      value: "STEP_FAILED: child 99 failed",
    });
  });

  it("completes a parent with 1000 children, 1000 distinct outputs, each child body once", {
    timeout: 180_000,
  }, async () => {
    const p = probe();
    const { id } = executionStub("fan-1000");
    const run = await client().start(fanout, { probe: p.name, count: 1000 }, { id });
    const result = await run.result({ timeout: "170s" });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(new Set(result.value.values).size).toBe(1000);
    expect(result.value.values).toEqual(Array.from({ length: 1000 }, (_, n) => n * 2));
    const counts = Object.values(await p.stub.counts());
    expect(counts).toHaveLength(1000);
    expect(counts.every((c) => c === 1)).toBe(true);
  });
});
