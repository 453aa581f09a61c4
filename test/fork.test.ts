import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { executions } from "../src/index.ts";
import {
  advance,
  eventually,
  executionStub,
  expectBatonError,
  probe,
  uniqueName,
} from "./helpers.ts";
import { counted, forkable, forkEdges, limitedFork, lockedCheckpoint } from "./workflows.ts";

const client = () => executions(env.TestExecutions);

describe("fork from an execution's checkpoint", () => {
  it("replays a 10-step execution up to its checkpoint at step 5 and runs only steps 6-10", async () => {
    const p = probe();
    const source = executionStub("fork-src");
    const original = await client().start(forkable, { probe: p.name }, { id: source.id });
    const expected = Array.from({ length: 10 }, (_, i) => i * i);
    expect(await original.result({ timeout: "5s" })).toEqual({
      ok: true,
      status: "completed",
      value: expected,
    });
    const journalBefore = await original.journal();

    const target = executionStub("fork-dst");
    const forked = await client().fork(forkable, source.id, "half", { id: target.id });
    expect(await forked.result({ timeout: "5s" })).toEqual({
      ok: true,
      status: "completed",
      value: expected,
    });
    const counts = await p.stub.counts();
    for (let i = 0; i < 10; i++) expect(counts[`f${i}`], `f${i}`).toBe(i < 5 ? 1 : 2);
    // The fork's journal carries the replayed prefix, then its own steps.
    const journal = await forked.journal();
    expect(journal.map((e) => e.name)).toEqual(journalBefore.map((e) => e.name));
    // The original is unaffected.
    expect(await original.journal()).toEqual(journalBefore);
    // Forking again with the same id is idempotent; the checkpoint must exist.
    await client().fork(forkable, source.id, "half", { id: target.id });
    await expectBatonError(
      client().fork(forkable, source.id, "nope", { id: executionStub("x").id }),
      "CHECKPOINT_NOT_FOUND",
      /"nope"/,
    );
    await expectBatonError(
      client().fork(counted, source.id, "half", { id: executionStub("y").id }),
      "INVALID_ARGUMENT",
      /runs workflow "forkable"/,
    );
    await expectBatonError(
      client().fork(forkable, "no-such-execution", "half", { id: executionStub("z").id }),
      "EXECUTION_NOT_FOUND",
    );
  });

  it("forks past a caught wait timeout and a URL output", async () => {
    const p = probe();
    const source = executionStub("fork-edges");
    const run = await client().start(forkEdges, { probe: p.name }, { id: source.id });
    await eventually(
      () => run.status(),
      (st) => st.status === "waiting",
    );
    await advance(source.stub, 1_000);
    const expected = ["EVENT_TIMEOUT", "https://example.com/a?b=1", "1"];
    expect(await run.result({ timeout: "5s" })).toMatchObject({ ok: true, value: expected });
    const target = executionStub("fork-edges-b");
    const forked = await client().fork(forkEdges, source.id, "edges", { id: target.id });
    expect(await forked.result({ timeout: "5s" })).toMatchObject({ ok: true, value: expected });
    expect(await p.stub.count("after")).toBe(2);
  });

  it("takes its own concurrency permit: it never runs on, nor gives back, its source's", async () => {
    const p = probe();
    const key = uniqueName("key");
    const lock = env.Locks.getByName(`concurrency:limitedFork:1:${key}`);
    const source = executionStub("fork-permit-src");
    const original = await client().start(limitedFork, { probe: p.name, key }, { id: source.id });
    await eventually(
      () => p.stub.records("b"),
      (r) => r.length === 1,
    );
    const target = executionStub("fork-permit-dst");
    const forked = await client().fork(limitedFork, source.id, "mid", { id: target.id });
    // The fork queues for the one permit the source holds.
    await eventually(
      () => lock.status(),
      (s) => s.queue === 1,
    );
    expect((await lock.status()).holders).toHaveLength(1);
    expect(await p.stub.records("b")).toHaveLength(1);
    await p.stub.openGate(source.id);
    expect((await original.result({ timeout: "5s" })).ok).toBe(true);
    // The source gave its permit back; the fork got it and runs step b now.
    await eventually(
      () => p.stub.records("b"),
      (r) => r.length === 2,
    );
    await p.stub.openGate(target.id);
    expect(await forked.result({ timeout: "5s" })).toMatchObject({ ok: true, value: target.id });
    await eventually(
      () => lock.status(),
      (s) => s.holders.length === 0 && s.queue === 0,
    );
  });

  it("refuses a checkpoint inside a locked function: a fork cannot take over its source's lock", async () => {
    const source = executionStub("fork-lock-src");
    const run = await client().start(
      lockedCheckpoint,
      { resource: uniqueName("res") },
      {
        id: source.id,
      },
    );
    expect((await run.result({ timeout: "5s" })).ok).toBe(true);
    await expectBatonError(
      client().fork(lockedCheckpoint, source.id, "inside", {
        id: executionStub("fork-lock-dst").id,
      }),
      "INVALID_ARGUMENT",
      /critical section of lock/,
    );
  });
});
