import { env, evictDurableObject, runDurableObjectAlarm } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { executions } from "../src/index.ts";
import { advance, eventually, executionStub, expectBatonError, probe } from "./helpers.ts";
import { counted, flaky, greet } from "./workflows.ts";

const client = () => executions(env.TestExecutions);

describe("execution: the greet flow end to end", () => {
  it("runs a step, sleeps durably, waits for an event and returns the typed result", async () => {
    const { id, stub } = executionStub("greet");
    const run = await client().start(greet, { name: "Ada" }, { id });
    expect(run.id).toBe(id);
    const sleeping = await eventually(
      () => run.status(),
      (s) => s.status === "sleeping",
    );
    expect(sleeping).toMatchObject({
      workflow: "greet",
      version: 1,
      currentStep: "pause",
      stepCount: 2,
      completedSteps: 1,
    });
    // Not a millisecond early.
    await advance(stub, 999);
    expect((await run.status()).status).toBe("sleeping");
    await advance(stub, 1);
    await eventually(
      () => run.status(),
      (s) => s.status === "waiting",
    );
    const receipt = await run.sendEvent("approve", { ok: true });
    expect(receipt).toMatchObject({ delivered: true, step: "approval", duplicate: false });
    const result = await run.result({ timeout: "5s" });
    expect(result).toEqual({
      ok: true,
      status: "completed",
      value: { hello: "Hello, Ada", approved: true },
    });
    if (result.ok) {
      // The output type is inferred from the workflow.
      const hello: string = result.value.hello;
      expect(hello).toBe("Hello, Ada");
    }
    const journal = await run.journal();
    expect(journal.map((e) => [e.name, e.kind, e.status])).toEqual([
      ["hello", "do", "completed"],
      ["pause", "sleep", "completed"],
      ["approval", "wait", "completed"],
    ]);
    expect(journal[0]?.output).toBe("Hello, Ada");
    expect(journal[2]?.output).toMatchObject({ type: "approve", payload: { ok: true } });
  });

  it("buffers an event sent before the wait, and never resumes a wait twice", async () => {
    const { id, stub } = executionStub("greet");
    const run = await client().start(greet, { name: "Bo" }, { id });
    await eventually(
      () => run.status(),
      (s) => s.status === "sleeping",
    );
    const early = await run.sendEvent("approve", { ok: false }, { dedupeKey: "evt-1" });
    expect(early).toMatchObject({ delivered: false, duplicate: false });
    const again = await run.sendEvent("approve", { ok: false }, { dedupeKey: "evt-1" });
    expect(again).toMatchObject({ id: early.id, duplicate: true });
    await run.sendEvent("approve", { ok: true }); // a second event: buffered, never used
    await advance(stub, 1_000);
    const result = await run.result({ timeout: "5s" });
    expect(result).toMatchObject({ ok: true, value: { approved: false } });
    await expectBatonError(run.sendEvent("approve", { ok: true }), "EXECUTION_FINISHED");
  });

  it("times out a wait with EVENT_TIMEOUT, which the workflow may catch", async () => {
    const { id, stub } = executionStub("greet");
    const run = await client().start(greet, { name: "Cy" }, { id });
    await eventually(
      () => run.status(),
      (s) => s.status === "sleeping",
    );
    await advance(stub, 1_000);
    await eventually(
      () => run.status(),
      (s) => s.status === "waiting",
    );
    await advance(stub, 60 * 60 * 1000);
    const result = await run.result({ timeout: "5s" });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error).toMatchObject({ code: "EVENT_TIMEOUT", step: null });
    const journal = await run.journal();
    expect(journal[2]).toMatchObject({ name: "approval", status: "timed_out" });
  });
});

describe("execution: retries", () => {
  it("retries with backoff timers, passes the previous error, keeps the idempotency key", async () => {
    const { id, stub } = executionStub("flaky");
    const p = probe();
    const run = await client().start(
      flaky,
      { probe: p.name, failures: 2, limit: 3, delay: "1 second", backoff: "exponential" },
      { id },
    );
    await eventually(
      () => p.stub.records("attempts"),
      (r) => r.length === 1,
    );
    // Evicted during the backoff: nothing is lost, nothing runs early.
    await evictDurableObject(stub);
    await advance(stub, 999);
    expect(await p.stub.records("attempts")).toHaveLength(1);
    await advance(stub, 1);
    await eventually(
      () => p.stub.records("attempts"),
      (r) => r.length === 2,
    );
    await advance(stub, 1_999);
    expect(await p.stub.records("attempts")).toHaveLength(2);
    await advance(stub, 1);
    const result = await run.result({ timeout: "5s" });
    expect(result).toMatchObject({ ok: true, value: "ok after 3" });
    const attempts = await p.stub.records("attempts");
    expect(attempts.map((a) => a.attempt)).toEqual([1, 2, 3]);
    expect(attempts.map((a) => a.previous)).toEqual([null, "failure 1", "failure 2"]);
    expect(new Set(attempts.map((a) => a.idempotencyKey))).toEqual(new Set([`${id}/unstable/0`]));
    const [entry] = await run.journal();
    expect(entry).toMatchObject({ attempts: 3, status: "completed" });
    // The attempt history: each failed attempt with its times and error; the backoffs are the
    // gaps (1 s, then 2 s on the frozen clock), and the last attempt started after the second.
    expect(entry?.failedAttempts).toEqual([
      {
        attempt: 1,
        startedAt: entry?.startedAt,
        endedAt: entry?.startedAt,
        error: { name: "Error", message: "failure 1" },
      },
      {
        attempt: 2,
        startedAt: (entry?.startedAt ?? 0) + 1_000,
        endedAt: (entry?.startedAt ?? 0) + 1_000,
        error: { name: "Error", message: "failure 2" },
      },
    ]);
    expect(entry?.attemptStartedAt).toBe((entry?.startedAt ?? 0) + 3_000);
  });

  it("keeps the last 50 failed attempts of a step, oldest first, messages cut to 1 KiB", async () => {
    const { id, stub } = executionStub("flaky");
    const p = probe();
    const run = await client().start(
      flaky,
      { probe: p.name, failures: 99, limit: 54, delay: "10ms", backoff: "constant", long: true },
      { id },
    );
    for (let attempt = 1; attempt <= 55; attempt++) {
      await eventually(
        () => p.stub.records("attempts"),
        (r) => r.length === attempt,
      );
      if (attempt < 55) await advance(stub, 10);
    }
    const result = await run.result({ timeout: "5s" });
    expect(result).toMatchObject({ ok: false, error: { attempt: 55 } });
    const [entry] = await run.journal();
    expect(entry?.failedAttempts?.map((a) => a.attempt)).toEqual(
      Array.from({ length: 50 }, (_, i) => i + 6),
    );
    expect(entry?.failedAttempts?.[0]?.error.message).toHaveLength(1025);
  });

  it("fails with the step, attempt and message when retries run out", async () => {
    const { id, stub } = executionStub("flaky");
    const p = probe();
    const run = await client().start(
      flaky,
      { probe: p.name, failures: 9, limit: 1, delay: "100ms", backoff: "constant" },
      { id },
    );
    await eventually(
      () => p.stub.records("attempts"),
      (r) => r.length === 1,
    );
    await advance(stub, 100);
    const result = await run.result({ timeout: "5s" });
    expect(result).toEqual({
      ok: false,
      status: "failed",
      error: {
        code: "STEP_FAILED",
        message: "failure 2",
        name: "Error",
        step: "unstable",
        attempt: 2,
      },
    });
  });
});

describe("execution: eviction and abort", () => {
  it("survives eviction between steps and replays without re-running finished bodies", async () => {
    const { id, stub } = executionStub("counted");
    const p = probe();
    const run = await client().start(counted, { n: 10, probe: p.name, sleepEvery: 5 }, { id });
    await eventually(
      () => run.status(),
      (s) => s.status === "sleeping",
    );
    await evictDurableObject(stub);
    await advance(stub, 60_000);
    const result = await run.result({ timeout: "5s" });
    expect(result).toMatchObject({ ok: true, value: 45 });
    const counts = await p.stub.counts();
    expect(Object.values(counts)).toEqual(Array(10).fill(1));
  });

  it("comes back by itself after abortAllDurableObjects, by its alarm", async () => {
    const { id } = executionStub("counted");
    const p = probe();
    await client().start(counted, { n: 4, probe: p.name, sleepEvery: 2 }, { id });
    await eventually(
      () => client().get(id).status(),
      (s) => s.status === "sleeping",
    );
    await (await import("cloudflare:test")).abortAllDurableObjects();
    const stub = env.TestExecutions.getByName(id);
    await stub.advanceClock(60_000);
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    const result = await client().get(counted, id).result({ timeout: "5s" });
    expect(result).toMatchObject({ ok: true, value: 6 });
  });
});
