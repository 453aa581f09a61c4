import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { executions, locks } from "../src/index.ts";
import { eventually, executionStub, probe, uniqueName } from "./helpers.ts";
import { limited, lockedWork } from "./workflows.ts";

const client = () => executions(env.TestExecutions);

describe("locks inside workflows", () => {
  it("runs steps under a lock: the second execution waits, and a replay neither re-acquires nor leaks", async () => {
    const p = probe();
    const resource = uniqueName("res");
    const a = executionStub("locked-a");
    const b = executionStub("locked-b");
    const runA = await client().start(
      lockedWork,
      { probe: p.name, resource, tag: "A" },
      { id: a.id },
    );
    await eventually(
      () => p.stub.records("critical"),
      (r) => r.length === 1,
    );
    const runB = await client().start(
      lockedWork,
      { probe: p.name, resource, tag: "B" },
      { id: b.id },
    );
    await eventually(
      () => locks(env.Locks).status(resource),
      (s) => s.queue === 1,
    );

    // A is reset inside its critical section and replays: its lock is not taken again.
    // (It waits on an outgoing call, so the test resets it rather than evicting it.)
    await runInDurableObject(a.stub, (_i, state) => state.abort("reset: test")).catch(
      () => undefined,
    );
    const revived = env.TestExecutions.getByName(a.id);
    await revived.advanceClock(30_000);
    await runDurableObjectAlarm(revived);
    await eventually(
      () => p.stub.records("critical"),
      (r) => r.length === 2,
    );
    expect(await locks(env.Locks).status(resource)).toMatchObject({
      holders: [{ fence: 1 }],
      queue: 1,
      fence: 1,
    });

    await p.stub.openGate("A");
    expect(await runA.result({ timeout: "5s" })).toMatchObject({ ok: true, value: 1 });
    await eventually(
      () => p.stub.records("critical"),
      (r) => r.some((e) => e.tag === "B"),
    );
    await p.stub.openGate("B");
    expect(await runB.result({ timeout: "5s" })).toMatchObject({ ok: true, value: 2 });
    expect(await locks(env.Locks).status(resource)).toMatchObject({
      holders: [],
      queue: 0,
      fence: 2,
    });
    const journal = await runA.journal();
    expect(journal.map((e) => e.name)).toEqual([
      `lock:${resource}:acquire`,
      "critical",
      `lock:${resource}:release`,
    ]);
  });

  it("gives back the place of an execution cancelled while it waits for a permit", async () => {
    const p = probe();
    const customer = uniqueName("cust");
    const lockName = `concurrency:limited:2:${customer}`;
    const ids = Array.from({ length: 3 }, (_, i) => executionStub(`limited-cancel-${i}`).id);
    for (const [i, id] of ids.entries()) {
      await client().start(limited, { probe: p.name, customer, tag: `k${i}` }, { id });
      await eventually(
        () => env.Locks.getByName(lockName).status(),
        (s) => s.holders.length + s.queue === i + 1,
      );
    }
    await client()
      .get(ids[2] as string)
      .cancel(); // queued
    await eventually(
      () => env.Locks.getByName(lockName).status(),
      (s) => s.queue === 0,
    );
    await client()
      .get(ids[1] as string)
      .cancel(); // running: its permit comes back
    await eventually(
      () => env.Locks.getByName(lockName).status(),
      (s) => s.holders.length === 1,
    );
    // Both end cancelled (not failed: the permit step replays in cancel mode like any step).
    for (const id of [ids[1], ids[2]] as string[]) {
      expect(await client().get(id).result({ timeout: "5s" })).toMatchObject({
        ok: false,
        status: "cancelled",
        error: { code: "CANCELLED" },
      });
    }
    await p.stub.openGate("k0");
    await client()
      .get(limited, ids[0] as string)
      .result({ timeout: "5s" });
    await eventually(
      () => env.Locks.getByName(lockName).status(),
      (s) => s.holders.length === 0 && s.queue === 0,
    );
  });

  it("limits a workflow to N running executions per key; the rest wait in order", async () => {
    const p = probe();
    const customer = uniqueName("cust");
    const ids = Array.from({ length: 5 }, (_, i) => executionStub(`limited-${i}`).id);
    for (const [i, id] of ids.entries()) {
      await client().start(limited, { probe: p.name, customer, tag: `t${i}` }, { id });
      await eventually(
        () => env.Locks.getByName(`concurrency:limited:2:${customer}`).status(),
        (s) => s.holders.length + s.queue === i + 1,
      );
    }
    // Another customer is not held back.
    const other = executionStub("limited-other");
    await client().start(
      limited,
      { probe: p.name, customer: `${customer}-2`, tag: "other" },
      { id: other.id },
    );
    await p.stub.openGate("other");
    expect(await client().get(limited, other.id).result({ timeout: "5s" })).toMatchObject({
      ok: true,
    });

    await eventually(
      () => p.stub.records("in"),
      (r) => r.filter((e) => e.tag !== "other").length === 2,
    );
    for (let i = 0; i < 5; i++) {
      const inside = (await p.stub.records("in"))
        .filter((e) => e.tag !== "other")
        .map((e) => e.tag);
      expect(inside.length - i).toBeLessThanOrEqual(2);
      await p.stub.openGate(`t${i}`);
      expect(
        await client()
          .get(limited, ids[i] as string)
          .result({ timeout: "5s" }),
      ).toMatchObject({ ok: true, value: `t${i}` });
    }
    const order = (await p.stub.records("in")).filter((e) => e.tag !== "other").map((e) => e.tag);
    expect(order).toEqual(["t0", "t1", "t2", "t3", "t4"]);
    // Permits come back through a timer of each finished execution.
    const final = await eventually(
      () => env.Locks.getByName(`concurrency:limited:2:${customer}`).status(),
      (st) => st.holders.length === 0,
    );
    expect(final).toMatchObject({ permits: 2, holders: [], queue: 0, fence: 5 });
  });
});
