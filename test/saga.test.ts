import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { executions } from "../src/index.ts";
import {
  advance,
  eventually,
  executionStub,
  probe,
  resetExecution,
  reviveByHeartbeat,
} from "./helpers.ts";
import { parallelSaga, raceSaga, saga } from "./workflows.ts";

const client = () => executions(env.TestExecutions);

describe("saga compensation", () => {
  it("runs the compensations of completed steps in reverse order when the execution fails", async () => {
    const p = probe();
    const { id } = executionStub("saga-fail");
    const run = await client().start(saga, { probe: p.name, fail: true }, { id });
    const result = await run.result({ timeout: "5s" });
    expect(result).toMatchObject({
      ok: false,
      status: "failed",
      error: { code: "STEP_FAILED", message: "D failed", step: "D", compensation: "completed" },
    });
    const undo = await p.stub.records("undo");
    expect(undo.map((u) => u.name)).toEqual(["C", "B", "A"]);
    expect(undo.map((u) => u.output)).toEqual(["did C", "did B", "did A"]);
    const journal = await run.journal();
    expect(journal.slice(4).map((e) => `${e.name}:${e.status}`)).toEqual([
      "$compensate:C:completed",
      "$compensate:B:completed",
      "$compensate:A:completed",
    ]);
  });

  it("runs each compensation once even when the actor is reset during compensation", async () => {
    const p = probe();
    const { id } = executionStub("saga-reset");
    const run = await client().start(saga, { probe: p.name, fail: true, gateUndo: "B" }, { id });
    await eventually(
      () => p.stub.records("undo"),
      (u) => u.some((e) => e.name === "B"),
    );
    await resetExecution(id);
    await p.stub.openGate("undo-B");
    await reviveByHeartbeat(id);
    expect(await run.result({ timeout: "5s" })).toMatchObject({
      ok: false,
      error: { compensation: "completed" },
    });
    const names = (await p.stub.records("undo")).map((u) => u.name);
    // C finished before the reset: never again. B was in flight: it ran again. A once.
    expect(names.filter((n) => n === "C")).toHaveLength(1);
    expect(names.filter((n) => n === "B")).toHaveLength(2);
    expect(names.filter((n) => n === "A")).toHaveLength(1);
    expect(names.indexOf("A")).toBeGreaterThan(names.lastIndexOf("B"));
  });

  it("compensates parallel steps in reverse call order, the same after a reset mid-compensation", async () => {
    const p = probe();
    const { id } = executionStub("saga-parallel");
    const run = await client().start(parallelSaga, { probe: p.name }, { id });
    // P2 completes first; then P1 is let through, F fails and compensation starts with P2.
    await eventually(
      () => run.journal(),
      (j) => j.some((e) => e.name === "P2" && e.status === "completed"),
    );
    await p.stub.openGate("P1");
    await eventually(
      () => p.stub.records("undo"),
      (u) => u.length === 1,
    );
    // Reset while P2's compensation runs: the replay completes P1 and P2 in call order, and must
    // still line up with the journal's compensation entries.
    await resetExecution(id);
    await p.stub.openGate("undo-P2");
    await p.stub.openGate("undo-P1");
    await reviveByHeartbeat(id);
    expect(await run.result({ timeout: "5s" })).toMatchObject({
      ok: false,
      status: "failed",
      error: { message: "F failed", compensation: "completed" },
    });
    const names = (await p.stub.records("undo")).map((u) => u.name);
    expect(names[0]).toBe("P2");
    expect(names.at(-1)).toBe("P1");
    expect(names.filter((n) => n === "P1")).toHaveLength(1);
    const journal = await run.journal();
    expect(journal.filter((e) => e.name.startsWith("$compensate:")).map((e) => e.name)).toEqual([
      "$compensate:P2",
      "$compensate:P1",
    ]);
  });

  it("compensates at once when a paused execution is cancelled", async () => {
    const p = probe();
    const { id } = executionStub("saga-paused");
    const run = await client().start(saga, { probe: p.name, gateFourth: true }, { id });
    await eventually(
      () => p.stub.counts(),
      (c) => c.D === 1,
    );
    expect((await run.pause()).status).toBe("paused");
    const cancelled = await run.cancel();
    expect(cancelled.status).toBe("cancelled");
    expect(await run.result({ timeout: "1s" })).toMatchObject({
      ok: false,
      status: "cancelled",
      error: { code: "CANCELLED", compensation: "completed" },
    });
    expect((await p.stub.records("undo")).map((u) => u.name)).toEqual(["C", "B", "A"]);
  });

  it("waits for parallel steps to settle before compensating, and undoes one that completed late", async () => {
    const p = probe();
    const { id } = executionStub("saga-race");
    const run = await client().start(raceSaga, { probe: p.name }, { id });
    await eventually(
      () => p.stub.counts(),
      (c) => c.A === 1,
    );
    await p.stub.openGate("B");
    await eventually(
      () => run.journal(),
      (j) => j.some((e) => e.name === "B" && e.status === "failed"),
    );
    // B failed, A still runs (its signal aborted): nothing is undone yet.
    expect(await p.stub.records("undo")).toEqual([]);
    expect((await run.status()).status).toBe("running");
    await p.stub.openGate("A");
    expect(await run.result({ timeout: "5s" })).toMatchObject({
      ok: false,
      status: "failed",
      error: { message: "B failed", step: "B", compensation: "completed" },
    });
    const undo = await p.stub.records("undo");
    expect(undo.map((u) => `${u.name}:${u.output}`)).toEqual([
      "A:did A after the abort",
      "X:did X",
    ]);
    expect((await p.stub.counts()).after).toBeUndefined();
  });

  it("replays a parallel saga reset mid-compensation without a mismatch; each undo once", async () => {
    const p = probe();
    const { id } = executionStub("saga-race-reset");
    const run = await client().start(raceSaga, { probe: p.name, gateUndo: "A" }, { id });
    await eventually(
      () => p.stub.counts(),
      (c) => c.A === 1,
    );
    await p.stub.openGate("B");
    await p.stub.openGate("A");
    await eventually(
      () => p.stub.records("undo"),
      (u) => u.length === 1,
    );
    await resetExecution(id);
    await p.stub.openGate("undo-A");
    await reviveByHeartbeat(id);
    expect(await run.result({ timeout: "5s" })).toMatchObject({
      ok: false,
      error: { message: "B failed", compensation: "completed" },
    });
    const names = (await p.stub.records("undo")).map((u) => u.name);
    // A's undo was in flight at the reset: it ran again. X once, after it.
    expect(names).toEqual(["A", "A", "X"]);
    const journal = await run.journal();
    expect(journal.map((e) => `${e.name}:${e.status}`)).toEqual([
      "X:completed",
      "A:completed",
      "B:failed",
      "$compensate:A:completed",
      "$compensate:X:completed",
    ]);
  });

  it("retries a failing compensation per its policy, records it, and says so in the outcome", async () => {
    const p = probe();
    const { id, stub } = executionStub("saga-bad-undo");
    const run = await client().start(saga, { probe: p.name, fail: true, badUndo: "B" }, { id });
    await eventually(
      () => p.stub.records("undo"),
      (u) => u.filter((e) => e.name === "B").length === 1,
    );
    await advance(stub, 1_000);
    await eventually(
      () => p.stub.records("undo"),
      (u) => u.filter((e) => e.name === "B").length === 2,
    );
    await advance(stub, 1_000);
    const result = await run.result({ timeout: "5s" });
    expect(result).toMatchObject({
      ok: false,
      status: "failed",
      error: { message: "D failed", compensation: "failed" },
    });
    const undo = await p.stub.records("undo");
    expect(undo.filter((u) => u.name === "B").map((u) => u.attempt)).toEqual([1, 2, 3]);
    expect(undo.at(-1)).toMatchObject({ name: "A" }); // the others still ran
    const journal = await run.journal();
    expect(journal.find((e) => e.name === "$compensate:B")).toMatchObject({
      status: "failed",
      attempts: 3,
    });
  });

  it("compensates on cancel: completed steps are undone in reverse, the running one is aborted", async () => {
    const p = probe();
    const { id } = executionStub("saga-cancel");
    const run = await client().start(saga, { probe: p.name, gateFourth: true }, { id });
    await eventually(
      () => p.stub.count("D"),
      (n) => n === 1,
    );
    const info = await run.cancel();
    expect(info.status).toBe("cancelled");
    expect(info.error).toMatchObject({ code: "CANCELLED", compensation: "completed" });
    expect((await p.stub.records("undo")).map((u) => u.name)).toEqual(["C", "B", "A"]);
    expect(await run.result()).toMatchObject({ ok: false, status: "cancelled" });
  });
});
