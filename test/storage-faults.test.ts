/**
 * Storage faults: a SQL statement fails at a chosen point (the test-only seam of
 * src/foundation/sql-faults.ts) during a timer claim, a checkpoint save and an index delivery.
 * Each time the caller gets STORAGE_ERROR (or the work is retried), nothing is half-written
 * (tables compared before and after), and the work completes on the object's next wake.
 */
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { HEARTBEAT_MS } from "../src/execution/host.ts";
import {
  type ArmedSqlFault,
  armSqlFault,
  clearSqlFaults,
  INJECTED_FAULT_MESSAGE,
  type SqlFault,
} from "../src/foundation/sql-faults.ts";
import { executions } from "../src/index.ts";
import { INDEX_SHARD, type IndexUpdate } from "../src/protocol/listing.ts";
import { ledger } from "./compat-workflows.ts";
import {
  eventually,
  executionStub,
  expectBatonError,
  probe,
  reviveByHeartbeat,
  timerActor,
  uniqueName,
} from "./helpers.ts";
import { bigOutputs, counted, eventful, flaky } from "./workflows.ts";

const client = () => executions(env.TestExecutions);

/** Arms `fault` on the storage of the object behind `stub` (creating the object if need be). */
async function arm(stub: DurableObjectStub, fault: SqlFault): Promise<ArmedSqlFault> {
  const storage = await runInDurableObject(stub, (_i, state) => state.storage);
  return armSqlFault(storage, fault);
}

/** Every row of `tables` in the object behind `stub`, read past the fault seam. */
async function snapshot(
  stub: DurableObjectStub,
  tables: string[],
): Promise<Record<string, unknown[]>> {
  return runInDurableObject(stub, (_i, state) => {
    const out: Record<string, unknown[]> = {};
    for (const table of tables) {
      out[table] = state.storage.sql
        .exec(`SELECT * FROM ${table}`)
        .toArray()
        .map((row) =>
          Object.fromEntries(
            Object.entries(row).map(([k, v]) => [
              k,
              v instanceof ArrayBuffer ? [...new Uint8Array(v)].join(",") : v,
            ]),
          ),
        );
    }
    return out;
  });
}

afterEach(() => clearSqlFaults());

describe("the fault seam", () => {
  it("fails the nth matching statement only, as a STORAGE_ERROR naming it", async () => {
    const stub = timerActor("fault-seam");
    const fault = await arm(stub, { match: "INSERT INTO _baton_timers", nth: 2 });
    await stub.schedule("record", { tag: "a" }, { after: "1h" });
    const error = await expectBatonError(
      stub.schedule("record", { tag: "b" }, { after: "1h" }),
      "STORAGE_ERROR",
      /injected fault/,
    );
    expect(error.details?.statement).toMatch(/INSERT INTO _baton_timers/);
    expect(error.details?.reason).toBe(INJECTED_FAULT_MESSAGE);
    await stub.schedule("record", { tag: "c" }, { after: "1h" });
    expect((await stub.list()).map((t) => t.payload)).toEqual([{ tag: "a" }, { tag: "c" }]);
    expect([fault.seen, fault.fired]).toEqual([3, 1]);
    // Reads and other statements were never touched.
    expect(fault.failed).toHaveLength(1);
  });

  it("rolls back the statements before it in the same transaction", async () => {
    const stub = timerActor("fault-tx");
    await stub.schedule("record", { tag: "kept" }, { after: "1h" });
    const before = await snapshot(stub, ["_baton_timers"]);
    await arm(stub, { match: "INSERT INTO _baton_timers", nth: 3 });
    await expectBatonError(
      stub.scheduleMany(
        ["x", "y", "z"].map((tag) => ({
          kind: "record" as const,
          payload: { tag },
          when: { after: "1h" },
        })),
      ),
      "STORAGE_ERROR",
    );
    expect(await snapshot(stub, ["_baton_timers"])).toEqual(before);
  });

  it("stops with disarm(), and is per object", async () => {
    const a = timerActor("fault-a");
    const b = timerActor("fault-b");
    const fault = await arm(a, { match: "INSERT INTO _baton_timers", times: Infinity });
    await b.schedule("record", { tag: "b" }, { after: "1h" }); // another object: untouched
    await expectBatonError(a.schedule("record", { tag: "a" }, { after: "1h" }), "STORAGE_ERROR");
    fault.disarm();
    await a.schedule("record", { tag: "a" }, { after: "1h" });
    expect(await a.pendingCount()).toBe(1);
    expect(() => armSqlFault({} as DurableObjectStorage, { match: "" })).toThrow(/match/);
  });
});

describe("storage fault in a timer claim", () => {
  it("the claim fails: nothing is claimed, and the next alarm runs the timer once", async () => {
    const stub = timerActor("fault-claim");
    await stub.schedule("record", { tag: "t" }, { after: 10 });
    await stub.advanceClock(10);
    const before = await snapshot(stub, ["_baton_timers", "fired"]);
    const fault = await arm(stub, { match: "SET state = 'claimed'" });
    await runDurableObjectAlarm(stub).catch(() => undefined);
    expect(fault.fired).toBe(1);
    expect(await snapshot(stub, ["_baton_timers", "fired"])).toEqual(before);
    expect(await stub.alarmAt(), "the alarm is armed again").not.toBeNull();
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect((await stub.fired()).map((f) => [f.tag, f.attempt])).toEqual([["t", 1]]);
    expect(await stub.list()).toEqual([]);
  });

  it("the start fails after the claim: the next alarm recovers it, not blamed", async () => {
    const stub = timerActor("fault-start");
    await stub.schedule("record", { tag: "t" }, { after: 10 });
    await stub.advanceClock(10);
    await arm(stub, {
      match:
        /SET state = 'running', attempts = attempts \+ 1\s+WHERE id = \? AND state = 'claimed'/,
    });
    await runDurableObjectAlarm(stub).catch(() => undefined);
    expect(await stub.fired()).toEqual([]);
    const [left] = await stub.list();
    expect(left?.attempts).toBe(0); // claimed, never started: no attempt counted
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect((await stub.fired()).map((f) => [f.tag, f.attempt])).toEqual([["t", 1]]);
    expect(await stub.list()).toEqual([]);
  });

  it("the delete after a success fails: the timer runs again (at least once), then goes", async () => {
    const stub = timerActor("fault-done");
    await stub.schedule("record", { tag: "t" }, { after: 10 });
    await stub.advanceClock(10);
    await arm(stub, { match: "DELETE FROM _baton_timers WHERE id = ?" });
    await runDurableObjectAlarm(stub);
    const [left] = await stub.list();
    expect(left).toMatchObject({ state: "pending", attempts: 1 });
    expect(left?.lastError).toMatch(/STORAGE_ERROR|injected fault/);
    await stub.advanceClock(1_000);
    await runDurableObjectAlarm(stub);
    expect((await stub.fired()).map((f) => [f.tag, f.attempt])).toEqual([
      ["t", 1],
      ["t", 2],
    ]);
    expect(await stub.list()).toEqual([]);
  });

  it("an execution's wake timer fails to be claimed: the next alarm wakes it, each step once", async () => {
    const { id, stub } = executionStub("fault-wake");
    const p = probe();
    const run = await client().start(counted, { n: 4, probe: p.name, sleepEvery: 2 }, { id });
    await eventually(
      () => run.status(),
      (s) => s.status === "sleeping",
    );
    const fault = await arm(stub, { match: "SET state = 'claimed'" });
    await stub.advanceClock(60_000);
    await runDurableObjectAlarm(stub).catch(() => undefined);
    expect(fault.fired).toBe(1);
    expect((await run.status()).status).toBe("sleeping");
    await runDurableObjectAlarm(stub);
    expect(await run.result({ timeout: "5s" })).toMatchObject({ ok: true, value: 6 });
    expect(await p.stub.counts()).toEqual({ s0: 1, s1: 1, s2: 1, s3: 1 });
  });
});

const CHECKPOINT_TABLES = [
  "_baton_checkpoints",
  "_baton_checkpoint_names",
  "_baton_values",
  "_baton_timers",
];

describe("storage fault in a checkpoint save", () => {
  for (const [what, match] of [
    ["the version counter", "INSERT INTO _baton_checkpoint_names"],
    ["the value's bytes", "INSERT INTO _baton_values"],
    ["the version row", "INSERT INTO _baton_checkpoints"],
    ["the pruning of old versions", "DELETE FROM _baton_checkpoints"],
  ] as const) {
    it(`${what} fails: STORAGE_ERROR, the last version intact, and the save works again`, async () => {
      const stub = env.Checkpoints.getByName(uniqueName("fault-cp"));
      await stub.save("doc", { n: 1 }, { keep: 1 });
      const before = await snapshot(stub, CHECKPOINT_TABLES);
      const fault = await arm(stub, { match });
      await expectBatonError(stub.save("doc", { n: 2 }, { keep: 1 }), "STORAGE_ERROR");
      expect(fault.fired).toBe(1);
      expect(await snapshot(stub, CHECKPOINT_TABLES)).toEqual(before);
      expect(await stub.load("doc")).toMatchObject({ value: { n: 1 }, version: 1 });
      // The failed save used no version number: the next one is 2.
      expect(await stub.save("doc", { n: 2 }, { keep: 1, expectedVersion: 1 })).toMatchObject({
        version: 2,
      });
      expect(await stub.load("doc")).toMatchObject({ value: { n: 2 }, version: 2 });
      expect((await stub.history("doc")).map((v) => v.version)).toEqual([2]);
    });
  }
});

describe("storage fault in an index delivery", () => {
  const index = () => env.ExecutionIndex.getByName(INDEX_SHARD);

  it("the index's write fails: nothing is indexed, and the outbox delivers it later", async () => {
    const { id, stub } = executionStub("fault-index");
    const p = probe();
    const fault = await arm(index(), { match: "INSERT INTO _baton_index", times: Infinity });
    const run = await client().start(counted, { n: 2, probe: p.name }, { id });
    expect(await run.result({ timeout: "5s" })).toMatchObject({ ok: true, value: 1 });
    await eventually(
      () => Promise.resolve(fault.fired),
      (n) => n >= 1,
    );
    // Every delivery so far was refused and rolled back: no row, and the changes wait.
    expect(await index().get(id)).toBeNull();
    const waiting = await snapshot(stub, ["_baton_index_outbox", "_baton_timers"]);
    expect(waiting._baton_index_outbox?.length).toBeGreaterThan(0);
    expect(waiting._baton_timers).toContainEqual(expect.objectContaining({ key: "index" }));
    fault.disarm();
    // The retry timer redelivers.
    await stub.advanceClock(HEARTBEAT_MS * 20);
    await runDurableObjectAlarm(stub);
    const row = await eventually(
      () => index().get(id),
      (r) => r?.status === "completed",
    );
    expect(row).toMatchObject({ id, workflow: "counted", status: "completed" });
    expect((await snapshot(stub, ["_baton_index_outbox"]))._baton_index_outbox).toEqual([]);
  });

  it("the outbox's cleanup fails after a delivery: redelivered, the index unchanged by it", async () => {
    const { id, stub } = executionStub("fault-outbox");
    const p = probe();
    const fault = await arm(stub, { match: "DELETE FROM _baton_index_outbox", times: Infinity });
    const run = await client().start(counted, { n: 1, probe: p.name }, { id });
    expect(await run.result({ timeout: "5s" })).toMatchObject({ ok: true, value: 0 });
    const indexed = await eventually(
      () => index().get(id),
      (r) => r?.status === "completed",
    );
    expect(fault.fired).toBeGreaterThan(0);
    fault.disarm();
    await stub.advanceClock(HEARTBEAT_MS * 20);
    await runDurableObjectAlarm(stub);
    await eventually(
      async () => (await snapshot(stub, ["_baton_index_outbox"]))._baton_index_outbox?.length,
      (n) => n === 0,
    );
    expect(await index().get(id)).toEqual(indexed);
  });

  it("a tombstone's prune timer fails: nothing applied, and the redelivery stores both", async () => {
    const stub = env.ExecutionIndex.getByName(uniqueName("fault-index"));
    const source = "source-1";
    const live: IndexUpdate = {
      id: "x",
      version: 1,
      source,
      execution: {
        id: "x",
        workflow: "w",
        status: "completed",
        mode: "workflow",
        createdAt: 1,
        updatedAt: 2,
        endedAt: 2,
      },
    };
    expect(await stub.apply([live])).toBe(1);
    const tables = ["_baton_index", "_baton_timers"];
    const before = await snapshot(stub, tables);
    await arm(stub, { match: "INSERT INTO _baton_timers" });
    const deleted: IndexUpdate = { id: "x", version: 2, source, execution: null };
    await expectBatonError(stub.apply([deleted]), "STORAGE_ERROR");
    expect(await snapshot(stub, tables)).toEqual(before);
    // The outbox delivers it again: the tombstone and its prune timer are stored together.
    expect(await stub.apply([deleted])).toBe(1);
    const after = await snapshot(stub, tables);
    expect(after._baton_index).toMatchObject([{ id: "x", version: 2, status: null }]);
    expect(after._baton_timers).toMatchObject([{ kind: "prune", key: "prune", state: "pending" }]);
  });
});

describe("storage fault in a status change", () => {
  it("the outbox row of a start fails: STORAGE_ERROR, nothing stored, and a retry starts it", async () => {
    const { id, stub } = executionStub("fault-start");
    const p = probe();
    const tables = ["_baton_execution", "_baton_steps", "_baton_index_outbox", "_baton_timers"];
    const before = await snapshot(stub, tables);
    const fault = await arm(stub, { match: "INSERT INTO _baton_index_outbox" });
    await expectBatonError(
      client().start(counted, { n: 2, probe: p.name }, { id }),
      "STORAGE_ERROR",
    );
    expect(fault.fired).toBe(1);
    expect(await snapshot(stub, tables)).toEqual(before);
    expect(await p.stub.counts()).toEqual({});
    const run = await client().start(counted, { n: 2, probe: p.name }, { id });
    expect(await run.result({ timeout: "5s" })).toMatchObject({ ok: true, value: 1 });
    expect(await p.stub.counts()).toEqual({ s0: 1, s1: 1 });
  });
});

describe("storage fault in the engine's own bookkeeping", () => {
  it("a step's commit fails: a crash, not a failure; the heartbeat runs the step again", async () => {
    const { id, stub } = executionStub("fault-commit");
    const p = probe();
    const fault = await arm(stub, { match: "UPDATE _baton_steps SET status = 'completed'" });
    await client().start(counted, { n: 3, probe: p.name }, { id });
    await eventually(
      () => Promise.resolve(fault.fired),
      (n) => n === 1,
    );
    const run = client().get(counted, id);
    // The step is still running (the crash cut its commit short); nothing failed.
    const left = await eventually(
      () => run.status(),
      (s) => s.status === "running",
    );
    expect(left.error ?? null).toBeNull();
    await reviveByHeartbeat(id);
    expect(await run.result({ timeout: "5s" })).toMatchObject({ ok: true, value: 3 });
    // s0's body ran again (at least once, as after any crash); the others once.
    expect(await p.stub.counts()).toEqual({ s0: 2, s1: 1, s2: 1 });
    const [s0] = await run.journal();
    expect(s0).toMatchObject({ name: "s0", status: "completed", attempts: 2 });
  });
});

describe("storage fault in the engine's own bookkeeping: every write path", () => {
  /** Arms `match` on a new execution, starts `wf`, waits for the fault, and revives it. */
  async function crashAndRecover(
    prefix: string,
    match: SqlFault["match"],
    begin: (id: string) => Promise<unknown>,
    nth = 1,
  ) {
    const { id, stub } = executionStub(prefix);
    const fault = await arm(stub, { match, nth });
    await begin(id);
    await eventually(
      () => Promise.resolve(fault.fired),
      (n) => n === 1,
    );
    // Nothing ended: the crash left the execution as it was before the failed write.
    const fresh = env.TestExecutions.getByName(id);
    const tables = await snapshot(fresh, ["_baton_execution", "_baton_timers"]);
    const [row] = tables._baton_execution as Array<{
      status: string;
      ended_at: number | null;
      error: string | null;
      output: unknown;
    }>;
    expect(row).toMatchObject({ ended_at: null, error: null, output: null });
    // Nor any of the finish's follow-ups (they commit with it).
    const kinds = (tables._baton_timers as Array<{ kind: string }>).map((t) => t.kind);
    expect(kinds).not.toContain("report");
    expect(kinds).not.toContain("cancel-child");
    expect(TERMINAL_STATUSES).not.toContain(row?.status);
    await reviveByHeartbeat(id);
    return id;
  }
  const TERMINAL_STATUSES = ["completed", "failed", "cancelled", "timed_out"];

  /**
   * Each step's body ran once, or twice when the crash came in the same turn as its commit (a
   * crash loses what was not yet committed, as a real one does: at least once).
   */
  async function ranAtLeastOnce(p: ReturnType<typeof probe>, steps: string[]) {
    const counts = await p.stub.counts();
    expect(Object.keys(counts).sort()).toEqual([...steps].sort());
    for (const n of Object.values(counts)) expect([1, 2]).toContain(n);
  }

  it("the start of an attempt fails: the step runs after the crash", async () => {
    const p = probe();
    // The second step's (the first is recorded during start(), whose call the crash would fail).
    const id = await crashAndRecover(
      "fault-attempt",
      "VALUES (?, ?, ?, 'do', 'running'",
      (id) => client().start(counted, { n: 2, probe: p.name }, { id }),
      2,
    );
    expect(await client().get(counted, id).result({ timeout: "5s" })).toMatchObject({
      ok: true,
      value: 1,
    });
    await ranAtLeastOnce(p, ["s0", "s1"]);
  });

  it("a failed attempt's backoff fails to be journaled: the attempt counts, the next succeeds", async () => {
    const p = probe();
    const id = await crashAndRecover("fault-backoff", "SET status = 'backoff'", (id) =>
      client().start(
        flaky,
        { probe: p.name, failures: 1, limit: 3, delay: "1s", backoff: "constant" },
        { id },
      ),
    );
    const run = client().get(flaky, id);
    expect(await run.result({ timeout: "5s" })).toMatchObject({ ok: true, value: "ok after 2" });
    expect(
      (await p.stub.records("attempts")).map((r) => (r as { attempt: number }).attempt),
    ).toEqual([1, 2]);
  });

  it("a sleep fails to be journaled: the run replays and sleeps", async () => {
    const p = probe();
    const id = await crashAndRecover("fault-sleep", "'sleep', 'sleeping'", (id) =>
      client().start(counted, { n: 2, probe: p.name, sleepEvery: 1 }, { id }),
    );
    const run = client().get(counted, id);
    await eventually(
      () => run.status(),
      (s) => s.status === "sleeping",
    );
    await env.TestExecutions.getByName(id).advanceClock(60_000);
    await runDurableObjectAlarm(env.TestExecutions.getByName(id));
    expect(await run.result({ timeout: "5s" })).toMatchObject({ ok: true, value: 1 });
    await ranAtLeastOnce(p, ["s0", "s1"]);
  });

  it("the output of a completing execution fails: not half-ended; the replay completes it", async () => {
    const p = probe();
    const id = await crashAndRecover("fault-output", "UPDATE _baton_execution SET output", (id) =>
      client().start(counted, { n: 2, probe: p.name }, { id }),
    );
    expect(await client().get(counted, id).result({ timeout: "5s" })).toMatchObject({
      ok: true,
      value: 1,
    });
    await ranAtLeastOnce(p, ["s0", "s1"]);
  });

  it("the index outbox row of the completing transition fails: all or nothing", async () => {
    const p = probe();
    // The first outbox row is the start's, the second the completion's.
    const id = await crashAndRecover(
      "fault-finish",
      "INSERT INTO _baton_index_outbox",
      (id) => client().start(counted, { n: 1, probe: p.name }, { id }),
      2,
    );
    expect(await client().get(counted, id).result({ timeout: "5s" })).toMatchObject({
      ok: true,
      value: 0,
    });
    await ranAtLeastOnce(p, ["s0"]);
  });

  it("a step that fails for good fails to be journaled: STEP_INTERRUPTED (as a crash after its body), not STORAGE_ERROR", async () => {
    const p = probe();
    const id = await crashAndRecover("fault-failed", "SET status = 'failed'", (id) =>
      client().start(
        flaky,
        { probe: p.name, failures: 5, limit: 0, delay: "1s", backoff: "constant" },
        { id },
      ),
    );
    // Its failure was not recorded: the replay finds its only attempt cut short, as after a crash.
    const result = await client().get(flaky, id).result({ timeout: "5s" });
    expect(result).toMatchObject({ ok: false, error: { code: "STEP_INTERRUPTED" } });
  });

  it("a big output's commit fails: no bytes of the failed try are left, and the step completes on the next wake", async () => {
    const { id, stub } = executionStub("fault-big");
    const fault = await arm(stub, { match: "UPDATE _baton_steps SET status = 'completed'" });
    await client().start(bigOutputs, { n: 1, bytes: 1_100_000 }, { id });
    await eventually(
      () => Promise.resolve(fault.fired),
      (n) => n === 1,
    );
    const values = (await snapshot(env.TestExecutions.getByName(id), ["_baton_values"]))
      ._baton_values as Array<{ key: string }>;
    expect(values.map((v) => v.key)).not.toContain("step:0");
    await reviveByHeartbeat(id);
    expect(await client().get(bigOutputs, id).result({ timeout: "5s" })).toMatchObject({
      ok: true,
      value: 1,
    });
  });
});

describe("storage fault in an event's delivery", () => {
  it("the wait's completion fails: STORAGE_ERROR, the event not stored, and a resend delivers it", async () => {
    const { id, stub } = executionStub("fault-event");
    const run = await client().start(eventful, { n: 1 }, { id });
    await eventually(
      () => run.status(),
      (s) => s.status === "waiting",
    );
    const before = await snapshot(stub, ["_baton_events", "_baton_steps"]);
    await arm(stub, { match: "UPDATE _baton_steps SET status = 'completed'" });
    await expectBatonError(run.sendEvent("go", "a", { dedupeKey: "a" }), "STORAGE_ERROR");
    expect(await snapshot(stub, ["_baton_events", "_baton_steps"])).toEqual(before);
    expect(await run.sendEvent("go", "a", { dedupeKey: "a" })).toMatchObject({
      delivered: true,
      duplicate: false,
      step: "first",
    });
  });
});

describe("storage fault in a checkpoint save with a TTL", () => {
  it("the expiry timer fails: STORAGE_ERROR, nothing stored, and the retry is version 1", async () => {
    const stub = env.Checkpoints.getByName(uniqueName("fault-ttl"));
    const before = await snapshot(stub, CHECKPOINT_TABLES);
    const fault = await arm(stub, { match: "INSERT INTO _baton_timers" });
    await expectBatonError(stub.save("doc", { n: 1 }, { ttl: "1h" }), "STORAGE_ERROR");
    expect(fault.fired).toBe(1);
    expect(await snapshot(stub, CHECKPOINT_TABLES)).toEqual(before);
    await expectBatonError(stub.load("doc"), "CHECKPOINT_NOT_FOUND");
    expect(await stub.save("doc", { n: 1 }, { ttl: "1h" })).toMatchObject({ version: 1 });
    const after = await snapshot(stub, CHECKPOINT_TABLES);
    expect(after._baton_timers).toMatchObject([{ kind: "expire", key: "expire:doc:1" }]);
  });
});

describe("importFork refuses malformed step entries", () => {
  for (const bad of [undefined, null, 7, "s0", [], { seq: 0 }, { seq: 0, name: "a", status: 1 }]) {
    it(`steps: [${JSON.stringify(bad) ?? "undefined"}] → INVALID_ARGUMENT naming the entry, nothing stored`, async () => {
      const { id, stub } = executionStub("fork-bad");
      await client().start(eventful, { n: 1 }, { id });
      const tables = ["_baton_execution", "_baton_steps", "_baton_events"];
      const before = await snapshot(stub, tables);
      await expectBatonError(
        stub.importFork(
          { workflow: "eventful", version: 1, input: new Uint8Array(), steps: [bad] } as never,
          { id, from: "x" } as never,
        ),
        "INVALID_ARGUMENT",
        /snapshot\.steps\[0\]/,
      );
      expect(await snapshot(stub, tables)).toEqual(before);
    });
  }
});

describe("storage fault in a transactional step", () => {
  const ledgerClient = () => executions(env.Executions);

  it("its journal row fails: the body's writes roll back with it, and it runs again once", async () => {
    const id = uniqueName("fault-tx-journal");
    const fault = await arm(env.Executions.getByName(id), {
      match: "attempt_started_at, ended_at, output, error, attempt_log",
    });
    // The crash may come before start() returns (the step runs at once): then start fails too.
    await ledgerClient()
      .start(ledger, { account: "a", amount: 3 }, { id })
      .catch(() => undefined);
    expect(fault.fired).toBe(1);
    const run = await ledgerClient().start(ledger, { account: "a", amount: 3 }, { id });
    expect(await run.result({ timeout: "5s" })).toMatchObject({
      ok: true,
      value: { balance: 3, after: "notified" },
    });
    expect(await env.Executions.getByName(id).ledgerRows("a")).toEqual([
      { account: "a", amount: 3 },
    ]);
  });

  it("the body's own statement fails: that is the step's failure (STORAGE_ERROR), as always", async () => {
    const id = uniqueName("fault-tx-body");
    await arm(env.Executions.getByName(id), { match: "INSERT INTO ledger" });
    const run = await ledgerClient().start(ledger, { account: "b", amount: 1 }, { id });
    expect(await run.result({ timeout: "5s" })).toMatchObject({
      ok: false,
      error: { code: "STORAGE_ERROR", step: "credit" },
    });
    expect(await env.Executions.getByName(id).ledgerRows("b")).toEqual([]);
  });
});
