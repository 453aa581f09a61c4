import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { executionIndex, executions, type IndexedExecution } from "../src/index.ts";
import {
  advance,
  eventually,
  executionStub,
  expectBatonError,
  probe,
  resetExecution,
  reviveByHeartbeat,
} from "./helpers.ts";
import { counted, greet, validated } from "./workflows.ts";

const client = () => executions(env.TestExecutions);
const index = () => executionIndex(env.ExecutionIndex);
const indexShard = () => env.ExecutionIndex.getByName("executions");

/** Waits until the index shows `id` in `status` (it follows the executions by an outbox). */
const indexedAs = (id: string, status: string | null) =>
  eventually(
    () => index().get(id),
    (e) => (status === null ? e === null : e?.status === status),
  );

describe("listing executions", () => {
  it("lists newest first, filters by workflow, status and start time, and pages by cursor", async () => {
    const before = Date.now() - 60_000;
    const p = probe();
    const done: string[] = [];
    for (let i = 0; i < 5; i++) {
      const { id } = executionStub(`list-counted-${i}`);
      await (await client().start(counted, { n: 1, probe: p.name }, { id })).result({
        timeout: "5s",
      });
      done.push(id);
    }
    const waiting: string[] = [];
    for (let i = 0; i < 2; i++) {
      const { id } = executionStub(`list-greet-${i}`);
      await client().start(greet, { name: `n${i}` }, { id });
      waiting.push(id);
    }
    for (const id of done) await indexedAs(id, "completed");
    for (const id of waiting) await indexedAs(id, "running");

    const all = await index().list({ workflow: "counted" });
    expect(all.cursor).toBeNull();
    expect(all.executions.map((e) => e.id).sort()).toEqual([...done].sort());
    expect(all.executions[0]).toMatchObject({ workflow: "counted", status: "completed" });
    // Newest first: by start time, then id, both descending.
    const order = (a: IndexedExecution, b: IndexedExecution) =>
      b.createdAt - a.createdAt || (a.id < b.id ? 1 : -1);
    expect(all.executions).toEqual([...all.executions].sort(order));

    // Pages of two: 2 + 2 + 1, no repeats, nothing missed.
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await index().list({
        workflow: "counted",
        limit: 2,
        ...(cursor ? { cursor } : {}),
      });
      seen.push(...page.executions.map((e) => e.id));
      cursor = page.cursor ?? undefined;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual(all.executions.map((e) => e.id));

    const running = await index().list({ status: "running" });
    expect(running.executions.map((e) => e.id).sort()).toEqual([...waiting].sort());
    const finished = await index().list({ status: ["completed", "failed"], workflow: "greet" });
    expect(finished.executions).toEqual([]);
    expect((await index().list({ startedAfter: before })).executions.length).toBeGreaterThanOrEqual(
      7,
    );
    expect((await index().list({ startedBefore: new Date(before) })).executions).toEqual([]);
    // A cursor keeps the time filter: pages of one inside a window, newest first.
    const window = {
      workflow: "counted",
      startedAfter: all.executions.at(-1)?.createdAt ?? 0,
      startedBefore: (all.executions[0]?.createdAt ?? 0) + 1,
    };
    const windowed: string[] = [];
    let next: string | undefined;
    do {
      const page = await index().list({ ...window, limit: 1, ...(next ? { cursor: next } : {}) });
      windowed.push(...page.executions.map((e) => e.id));
      next = page.cursor ?? undefined;
    } while (next);
    expect(windowed).toEqual(all.executions.map((e) => e.id));
    const narrow = await index().list({
      workflow: "counted",
      startedAfter: all.executions[1]?.createdAt ?? 0,
      limit: 1,
    });
    const rest = await index().list({
      workflow: "counted",
      startedAfter: all.executions[1]?.createdAt ?? 0,
      limit: 10,
      cursor: narrow.cursor ?? "",
    });
    // Everything from the second newest start on, split over two pages, nothing older.
    expect([...narrow.executions, ...rest.executions].map((e) => e.id)).toEqual(
      all.executions
        .filter((e) => e.createdAt >= (all.executions[1]?.createdAt ?? 0))
        .map((e) => e.id),
    );
    // Repeated statuses count once (no matter how many are sent).
    const repeated = await index().list({ status: Array(150).fill("running") });
    expect(repeated.executions.map((e) => e.id).sort()).toEqual([...waiting].sort());
  });

  it("refuses bad queries and bad updates with INVALID_ARGUMENT", async () => {
    const cases: Array<Parameters<ReturnType<typeof index>["list"]>[0]> = [
      { limit: 0 },
      { limit: 1001 },
      { limit: 1.5 },
      // @ts-expect-error not an indexed status
      { status: "waiting" },
      { status: [] },
      { workflow: "" },
      { startedAfter: Number.NaN },
      { cursor: "not a cursor" },
      { cursor: btoa("[1]") },
    ];
    for (const query of cases) await expectBatonError(index().list(query), "INVALID_ARGUMENT");
    // @ts-expect-error not an object
    await expectBatonError(index().list("x"), "INVALID_ARGUMENT");
    await expectBatonError(index().get(""), "INVALID_ARGUMENT");
    const shard = indexShard();
    for (const bad of [
      null,
      [{ id: "", version: 1, execution: null }],
      [{ id: "a", version: 0, execution: null }],
      [{ id: "a", version: 1, execution: { id: "b" } }],
      [{ id: "a", version: 1, execution: { id: "a", workflow: "w", status: "waiting" } }],
      [{ id: "a", version: 1, execution: null }],
      [{ id: "a", version: 1, execution: null, source: "" }],
    ]) {
      // @ts-expect-error malformed updates
      await expectBatonError(shard.apply(bad), "INVALID_ARGUMENT");
    }
    expect(await index().get("a")).toBeNull();
  });

  it("applies an update only if it is newer: repeated and late updates change nothing", async () => {
    const shard = indexShard();
    const execution = (status: "running" | "completed") => ({
      id: "manual-1",
      workflow: "w",
      status,
      mode: "workflow" as const,
      createdAt: 1,
      updatedAt: 2,
      endedAt: null,
    });
    expect(
      await shard.apply([
        { id: "manual-1", version: 2, execution: execution("completed"), source: "o1" },
      ]),
    ).toBe(1);
    expect(
      await shard.apply([
        { id: "manual-1", version: 1, execution: execution("running"), source: "o1" },
      ]),
    ).toBe(0);
    expect(
      await shard.apply([
        { id: "manual-1", version: 2, execution: execution("running"), source: "o1" },
      ]),
    ).toBe(0);
    expect(await index().get("manual-1")).toMatchObject({ status: "completed" });
    // A deletion leaves a tombstone: an older update cannot bring the row back.
    expect(await shard.apply([{ id: "manual-1", version: 3, execution: null, source: "o1" }])).toBe(
      1,
    );
    expect(
      await shard.apply([
        { id: "manual-1", version: 2, execution: execution("running"), source: "o1" },
      ]),
    ).toBe(0);
    expect(await index().get("manual-1")).toBeNull();
  });

  it("refuses an execution id another actor class already has in the same index", async () => {
    // The test Worker's TestExecutions and Orders both report to ExecutionIndex.
    const { id } = executionStub("list-clash");
    await env.TestExecutions.getByName(id).track("first", { id });
    await indexedAs(id, "running");
    const other = env.Orders.getByName(id);
    await other.track("second", { id });
    await other.complete("done");
    // Its update was refused (INDEX_CONFLICT, logged) and not retried: no outbox, no timer left.
    await eventually(
      () =>
        runInDurableObject(other, (_instance, state) => ({
          outbox: state.storage.sql
            .exec<{ n: number }>("SELECT COUNT(*) AS n FROM _baton_index_outbox")
            .one().n,
          timers: state.storage.sql
            .exec<{ n: number }>("SELECT COUNT(*) AS n FROM _baton_timers WHERE kind = 'index'")
            .one().n,
        })),
      (left) => left.outbox === 0 && left.timers === 0,
    );
    // The row stays the first class's.
    expect(await index().get(id)).toMatchObject({ workflow: "first", status: "running" });
    const shard = indexShard();
    const clash = { id, version: 99, execution: null, source: "another-object" };
    await expectBatonError(shard.apply([clash]), "INDEX_CONFLICT");
    expect(await index().get(id)).toMatchObject({ workflow: "first" });
  });

  it("keeps the index consistent when the actor dies between a change and its index update", async () => {
    const { id, stub } = executionStub("list-outage");
    const run = await client().start(greet, { name: "Ada" }, { id });
    await indexedAs(id, "running");
    // The index is down: the pause commits with its outbox entry; its delivery fails.
    await indexShard().setDown(true);
    expect((await run.pause()).status).toBe("paused");
    await eventually(
      async () => (await stub.timerList()).map((t) => t.kind),
      (kinds) => kinds.includes("index"),
    );
    expect(await index().get(id)).toMatchObject({ status: "running" });
    // The actor dies before the update gets through; then the index is back.
    await resetExecution(id);
    await indexShard().setDown(false);
    // Its alarm brings it back (nobody calls it) and the outbox is delivered: nothing lost.
    await reviveByHeartbeat(id);
    await indexedAs(id, "paused");
    await run.resume();
    const revived = env.TestExecutions.getByName(id); // stubs from before the reset are broken
    await advance(revived, 1_000);
    await eventually(
      () => run.status(),
      (s) => s.status === "waiting",
    );
    await run.sendEvent("approve", { ok: true });
    await run.result({ timeout: "5s" });
    await indexedAs(id, "completed");
    // Retention over: the execution is deleted, and so is its index row (no phantom).
    await advance(revived, 8 * 24 * 60 * 60 * 1000);
    await expectBatonError(run.status(), "EXECUTION_NOT_FOUND");
    await indexedAs(id, null);
  });

  it("indexes nothing for a start that was refused", async () => {
    const { id } = executionStub("list-refused");
    await expectBatonError(
      // @ts-expect-error count must be a number
      client().start(validated, { email: "not-an-email", count: "x" }, { id }),
      "INVALID_INPUT",
    );
    await expectBatonError(
      client().start("nope" as "greet", { name: "x" }, { id }),
      "UNKNOWN_WORKFLOW",
    );
    expect(await index().get(id)).toBeNull();
    expect((await index().list({ workflow: "nope" })).executions).toEqual([]);
  });

  it("counts executions by status and by workflow, under the same filters as list", async () => {
    const prefix = `cnt${crypto.randomUUID().slice(0, 8)}`;
    const p = probe();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const { id } = executionStub(`${prefix}-counted`);
      await (await client().start(counted, { n: 1, probe: p.name }, { id })).result({
        timeout: "5s",
      });
      ids.push(id);
    }
    const { id: waiting } = executionStub(`${prefix}-greet`);
    await client().start(greet, { name: "Ada" }, { id: waiting });
    for (const id of ids) await indexedAs(id, "completed");
    await indexedAs(waiting, "running");

    const counts = await index().counts({ idPrefix: prefix });
    expect(counts).toEqual({
      total: 4,
      byStatus: {
        pending: 0,
        running: 1,
        paused: 0,
        completed: 3,
        failed: 0,
        cancelled: 0,
        timed_out: 0,
      },
      byWorkflow: { counted: 3, greet: 1 },
    });
    expect(await index().counts({ idPrefix: prefix, workflow: "greet" })).toMatchObject({
      total: 1,
      byWorkflow: { greet: 1 },
    });
    expect(
      (await index().counts({ idPrefix: prefix, startedAfter: Date.now() + 60_000 })).total,
    ).toBe(0);
    await expectBatonError(index().counts({ status: "bogus" as never }), "INVALID_ARGUMENT");
    await expectBatonError(index().counts(null as never), "INVALID_ARGUMENT");
  });
});
