import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { executions } from "../src/index.ts";
import { advance, eventually, executionStub, probe } from "./helpers.ts";
import { chained, countdown, orderPipeline, pipelineWithHook } from "./workflows.ts";

const client = () => executions(env.TestExecutions);

describe("pipeline sugar", () => {
  it("runs steps in order, each getting the previous output", async () => {
    const p = probe();
    const { id } = executionStub("pipe-ok");
    const run = await client().start(orderPipeline, { probe: p.name, amount: 12 }, { id });
    expect(await run.result({ timeout: "5s" })).toEqual({
      ok: true,
      status: "completed",
      value: { reservation: "rsv-1", charged: 12, tracking: "trk-1" },
    });
    expect((await run.journal()).map((e) => e.name)).toEqual(["reserve", "charge", "ship"]);
  });

  it("stops at a failing step k: no later step runs, and the error names k", async () => {
    const p = probe();
    const { id } = executionStub("pipe-fail");
    const run = await client().start(
      orderPipeline,
      { probe: p.name, amount: 12, failAt: "charge" },
      { id },
    );
    const result = await run.result({ timeout: "5s" });
    expect(result).toMatchObject({ ok: false, error: { code: "STEP_FAILED", step: "charge" } });
    if (!result.ok) expect(result.error.message).toMatch(/step 2 of 3 \("charge"\): card declined/);
    expect(await p.stub.counts()).toEqual({ reserve: 1, charge: 1, "undo-after-charge": 1 });
    expect((await run.journal()).map((e) => `${e.name}:${e.status}`)).toEqual([
      "reserve:completed",
      "charge:failed",
      "$onFailure:completed",
    ]);
  });

  it("runs onFailure once, journaled, before failing", async () => {
    const p = probe();
    const { id } = executionStub("pipe-hook");
    const run = await client().start(pipelineWithHook, { probe: p.name }, { id });
    const result = await run.result({ timeout: "5s" });
    expect(result).toMatchObject({ ok: false });
    if (!result.ok) expect(result.error.message).toMatch(/step 2 of 3 \("two"\): two broke/);
    expect((await run.journal()).map((e) => e.name)).toEqual(["one", "two", "$onFailure"]);
    expect(await p.stub.records("failure")).toEqual([
      {
        failedStep: "two",
        failedIndex: 1,
        outputs: JSON.stringify({ one: 1 }),
        message: "two broke",
      },
    ]);
  });

  it("still names step k when onFailure itself fails", async () => {
    const p = probe();
    const { id } = executionStub("pipe-bad-hook");
    const run = await client().start(pipelineWithHook, { probe: p.name, badHook: true }, { id });
    const result = await run.result({ timeout: "5s" });
    expect(result).toMatchObject({ ok: false, error: { code: "STEP_FAILED", step: "two" } });
    if (!result.ok) expect(result.error.message).toMatch(/step 2 of 3 \("two"\): two broke/);
    expect((await run.journal()).map((e) => `${e.name}:${e.status}`)).toEqual([
      "one:completed",
      "two:failed",
      "$onFailure:failed",
    ]);
  });

  it("chains sequential tasks, each getting the previous output", async () => {
    const { id } = executionStub("seq");
    const run = await client().start(chained, "7", { id });
    expect(await run.result({ timeout: "5s" })).toMatchObject({ ok: true, value: "=49" });
  });

  it("loops until done with durable sleeps between iterations, and stops at the limit", async () => {
    const { id, stub } = executionStub("loop");
    const run = await client().start(countdown, { from: 3 }, { id });
    for (let i = 0; i < 3; i++) {
      await eventually(
        () => run.status(),
        (s) => s.status === "sleeping" || s.status === "completed",
      );
      await advance(stub, 1_000);
    }
    expect(await run.result({ timeout: "5s" })).toMatchObject({
      ok: true,
      value: { left: 0, steps: 3 },
    });
    const long = executionStub("loop-limit");
    const tooLong = await client().start(countdown, { from: 50 }, { id: long.id });
    for (let i = 0; i < 6; i++) {
      await eventually(
        () => tooLong.status(),
        (s) => s.status !== "running",
      );
      await advance(long.stub, 1_000);
    }
    expect(await tooLong.result({ timeout: "5s" })).toMatchObject({
      ok: false,
      error: { code: "LOOP_LIMIT" },
    });
  });
});
