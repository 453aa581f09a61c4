import {
  abortAllDurableObjects,
  env,
  evictDurableObject,
  runDurableObjectAlarm,
  runInDurableObject,
} from "cloudflare:test";
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
import type { TestExecutions } from "./worker.ts";
import {
  counted,
  crashy,
  defaults,
  eventful,
  fatal,
  flaky,
  gated,
  gatedLast,
  greet,
  parallel,
  shape,
  sleeper,
  slow,
  validated,
} from "./workflows.ts";

const client = () => executions(env.TestExecutions);

describe("execution: failures that stop retries", () => {
  it("uses the workflow's retry defaults, and records its version", async () => {
    const { id, stub } = executionStub("defaults");
    const p = probe();
    const run = await client().start(defaults, { probe: p.name }, { id });
    expect((await run.status()).version).toBe(3);
    await eventually(
      () => p.stub.count("attempt"),
      (n) => n === 1,
    );
    await advance(stub, 1_999);
    expect(await p.stub.count("attempt")).toBe(1);
    await advance(stub, 1);
    const result = await run.result({ timeout: "5s" });
    expect(result).toMatchObject({ ok: false, error: { message: "attempt 2", attempt: 2 } });
    expect(await p.stub.count("attempt")).toBe(2);
  });

  it("fails at once on NonRetryableError", async () => {
    const { id } = executionStub("fatal");
    const p = probe();
    const result = await (await client().start(fatal, { probe: p.name }, { id })).result({
      timeout: "5s",
    });
    expect(result).toMatchObject({
      ok: false,
      error: {
        code: "STEP_FAILED",
        name: "NonRetryableError",
        message: "card declined",
        step: "doomed",
        attempt: 1,
      },
    });
    expect(await p.stub.count("doomed")).toBe(1);
  });

  it("fails at once on an error flagged retryable: false, keeping its own code", async () => {
    const { id } = executionStub("fatal");
    const p = probe();
    const result = await (
      await client().start(fatal, { probe: p.name, flag: true }, { id })
    ).result({ timeout: "5s" });
    expect(result).toMatchObject({
      ok: false,
      error: { code: "E_FLAG", step: "doomed", attempt: 1 },
    });
    expect(await p.stub.count("doomed")).toBe(1);
  });

  it("times out an attempt with STEP_TIMEOUT, aborts its signal, and retries it", async () => {
    const { id, stub } = executionStub("slow");
    const p = probe();
    const run = await client().start(slow, { probe: p.name }, { id });
    await eventually(
      () => p.stub.records("aborted"),
      (r) => r.length === 1,
    );
    const [first] = await p.stub.records("aborted");
    expect(first).toMatchObject({ attempt: 1 });
    expect(String(first?.reason)).toMatch(/timed out after 50 ms/);
    await advance(stub, 1_000);
    const result = await run.result({ timeout: "5s" });
    expect(result).toMatchObject({
      ok: false,
      error: { code: "STEP_TIMEOUT", step: "hangs", attempt: 2 },
    });
    expect((await p.stub.records("aborted")).length).toBe(2);
  });
});

describe("execution: sleeps, parallel steps and events", () => {
  it("sleeps until a date durably, across eviction, never early", async () => {
    const { id, stub } = executionStub("sleeper");
    const until = (await stub.clock()) + 5 * 60_000;
    const run = await client().start(sleeper, { until }, { id });
    await eventually(
      () => run.status(),
      (s) => s.status === "sleeping",
    );
    await evictDurableObject(stub);
    await advance(stub, 5 * 60_000 - 1);
    expect((await run.status()).currentStep).toBe("until");
    await advance(stub, 1);
    await eventually(
      () => run.status(),
      (s) => s.currentStep === "short",
    );
    await advance(stub, 249);
    expect((await run.status()).status).toBe("sleeping");
    await advance(stub, 1);
    expect(await run.result({ timeout: "5s" })).toMatchObject({ ok: true, value: "rested" });
  });

  it("runs Promise.all and allSettled steps concurrently and journals each in call order", async () => {
    const { id } = executionStub("parallel");
    const p = probe();
    const run = await client().start(parallel, { probe: p.name }, { id });
    const result = await run.result({ timeout: "5s" });
    expect(result).toMatchObject({
      ok: true,
      value: { all: [10, 20, 30, 40, 50], settled: ["fulfilled", "rejected"] },
    });
    const journal = await run.journal();
    expect(journal.map((e) => `${e.seq}:${e.name}:${e.status}`)).toEqual([
      "0:p1:completed",
      "1:p2:completed",
      "2:p3:completed",
      "3:p4:completed",
      "4:p5:completed",
      "5:ok:completed",
      "6:bad:failed",
    ]);
    expect(journal.slice(0, 5).map((e) => e.output)).toEqual([10, 20, 30, 40, 50]);
    expect(await p.stub.counts()).toEqual({ p1: 1, p2: 1, p3: 1, p4: 1, p5: 1 });
  });

  it("hands buffered events to waits in order, once each, and times out a later wait", async () => {
    const { id, stub } = executionStub("eventful");
    const run0 = await client().start(eventful, { n: 1 }, { id });
    await run0.sendEvent("go", "one");
    await run0.sendEvent("go", "two");
    await run0.sendEvent("go", "three"); // never consumed: only two waits for "go"
    await eventually(
      () => run0.status(),
      (s) => s.currentStep === "third" && s.status === "waiting",
    );
    await evictDurableObject(stub);
    await advance(stub, 10 * 60_000);
    expect(await run0.result({ timeout: "5s" })).toMatchObject({
      ok: true,
      value: ["one", "two", "caught EVENT_TIMEOUT"],
    });
  });
});

describe("execution: determinism guard", () => {
  async function startShapeAndSwitch(variant: string) {
    const { id, stub } = executionStub("shape");
    const run = await client().start(shape, { tag: variant }, { id });
    await eventually(
      () => run.status(),
      (s) => s.status === "sleeping",
    );
    await stub.setCodeVariant(variant);
    await evictDurableObject(stub); // the next wake replays with the "new code"
    await advance(stub, 60_000);
    const result = await run.result({ timeout: "5s" });
    await stub.setCodeVariant("original");
    return { result, journal: await run.journal() };
  }

  it("fails a replay whose step was renamed with NONDETERMINISM", async () => {
    const { result, journal } = await startShapeAndSwitch("renamed");
    expect(result).toMatchObject({ ok: false, error: { code: "NONDETERMINISM" } });
    if (!result.ok) expect(result.error.message).toMatch(/"first".*"first-renamed"/);
    // The journaled output of "first" was never handed to another step.
    expect(journal.map((e) => e.name)).toEqual(["first", "wait"]);
  });

  it("fails a replay whose steps were reordered with NONDETERMINISM", async () => {
    const { result } = await startShapeAndSwitch("reordered");
    expect(result).toMatchObject({ ok: false, error: { code: "NONDETERMINISM" } });
    if (!result.ok) expect(result.error.message).toMatch(/"first" \(do\).*"wait" \(sleep\)/);
  });

  it("fails a replay whose step was removed with NONDETERMINISM", async () => {
    const { result } = await startShapeAndSwitch("removed");
    expect(result).toMatchObject({ ok: false, error: { code: "NONDETERMINISM" } });
  });

  it("records the workflow version the execution started on", async () => {
    const { id } = executionStub("shape");
    const run = await client().start(shape, { tag: "v" }, { id });
    expect((await run.status()).version).toBe(1);
    await run.cancel();
  });
});

describe("execution: crash mid-step", () => {
  it("re-runs a step whose actor crashed, counting the recovery as an attempt", async () => {
    const { id } = executionStub("crashy");
    const p = probe();
    await client()
      .start(crashy, { probe: p.name, crashes: 1, limit: 3 }, { id })
      .catch(() => undefined);
    await eventually(
      () => p.stub.count("explodes"),
      (n) => n === 1,
    );
    // The actor comes back by its heartbeat alarm, without anyone calling it.
    const revived = env.TestExecutions.getByName(id);
    await revived.advanceClock(30_000);
    await runDurableObjectAlarm(revived).catch(() => undefined);
    const result = await client().get(crashy, id).result({ timeout: "5s" });
    expect(result).toMatchObject({ ok: true, value: 2 });
    expect(await p.stub.count("explodes")).toBe(2);
    // The attempt the crash cut short is in the step's history.
    const [entry] = await client().get(crashy, id).journal();
    expect(entry?.failedAttempts).toEqual([
      {
        attempt: 1,
        startedAt: entry?.startedAt,
        endedAt: expect.any(Number),
        error: expect.objectContaining({ code: "STEP_INTERRUPTED" }),
      },
    ]);
  });

  it("ends failed, not in a loop, when the step kills the actor every time", async () => {
    const { id } = executionStub("crashy");
    const p = probe();
    await client()
      .start(crashy, { probe: p.name, crashes: 99, limit: 2 }, { id })
      .catch(() => undefined);
    for (let i = 1; i <= 6; i++) {
      await eventually(
        () => p.stub.count("explodes"),
        (n) => n >= Math.min(i, 3),
      );
      const revived = env.TestExecutions.getByName(id);
      await revived.advanceClock(30_000).catch(() => undefined);
      await runDurableObjectAlarm(revived).catch(() => undefined);
    }
    const result = await client().get(crashy, id).result({ timeout: "5s" });
    expect(result).toMatchObject({
      ok: false,
      error: { code: "STEP_INTERRUPTED", step: "explodes" },
    });
    expect(await p.stub.count("explodes")).toBe(3); // limit 2 → 3 attempts, then failed
    const [entry] = await client().get(crashy, id).journal();
    expect(entry?.failedAttempts?.map((a) => [a.attempt, a.error.code])).toEqual([
      [1, "STEP_INTERRUPTED"],
      [2, "STEP_INTERRUPTED"],
      [3, "STEP_INTERRUPTED"],
    ]);
  });
});

describe("execution: lifecycle over RPC", () => {
  it("describes an execution: its state, input, outcome once finished, and no parent", async () => {
    const { id, stub } = executionStub("describe");
    await client().start(greet, { name: "Ada" }, { id });
    expect(await stub.describe()).toMatchObject({
      info: { id, workflow: "greet" },
      input: { name: "Ada" },
      result: null,
      parent: null,
    });
    await client().get(greet, id).cancel();
    expect(await stub.describe()).toMatchObject({
      info: { status: "cancelled" },
      result: { ok: false, status: "cancelled" },
    });
    await expectBatonError(
      env.TestExecutions.getByName(`${id}-never`).describe(),
      "EXECUTION_NOT_FOUND",
    );
  });

  it("starts idempotently per id, and rejects a different input under the same id", async () => {
    const { id } = executionStub("idem");
    const first = await client().start(greet, { name: "Ada" }, { id });
    const again = await client().start(greet, { name: "Ada" }, { id });
    expect(again.id).toBe(first.id);
    expect((await again.status()).createdAt).toBe((await first.status()).createdAt);
    await expectBatonError(
      client().start(greet, { name: "Eve" }, { id }),
      "EXECUTION_CONFLICT",
      /different input/,
    );
    await expectBatonError(
      client().start(counted, { n: 1, probe: "x" }, { id }),
      "EXECUTION_CONFLICT",
      /another workflow/,
    );
    await first.cancel();
  });

  it("treats the same input with keys in another order as the same start", async () => {
    const { id } = executionStub("key-order");
    const first = await client().start(validated, { email: "k@o.io", count: 1 }, { id });
    const again = await client().start(validated, { count: 1, email: "k@o.io" }, { id });
    expect((await again.status()).createdAt).toBe((await first.status()).createdAt);
    await first.result({ timeout: "5s" });
  });

  it("handles concurrent duplicate starts as one execution", async () => {
    const { id } = executionStub("concurrent");
    const p = probe();
    const starts = await Promise.allSettled(
      Array.from({ length: 8 }, () => client().start(counted, { n: 3, probe: p.name }, { id })),
    );
    expect(starts.every((s) => s.status === "fulfilled")).toBe(true);
    await client().get(counted, id).result({ timeout: "5s" });
    expect(await p.stub.counts()).toEqual({ s0: 1, s1: 1, s2: 1 });
  });

  it("reports status, and times out result() with RESULT_TIMEOUT", async () => {
    const { id } = executionStub("status");
    const run = await client().start(greet, { name: "Al" }, { id });
    await eventually(
      () => run.status(),
      (s) => s.status === "sleeping",
    );
    const info = await run.status();
    expect(info).toMatchObject({
      id,
      workflow: "greet",
      mode: "workflow",
      status: "sleeping",
      currentStep: "pause",
      stepCount: 2,
      completedSteps: 1,
      attempts: 2,
      run: 1,
      endedAt: null,
      error: null,
    });
    await expectBatonError(run.result({ timeout: "20ms" }), "RESULT_TIMEOUT", /sleeping/);
    await run.cancel();
  });

  it("pauses between steps and resumes", async () => {
    const { id } = executionStub("pause");
    const p = probe();
    const run = await client().start(gated, { probe: p.name }, { id });
    await eventually(
      () => p.stub.count("b"),
      (n) => n === 1,
    );
    expect((await run.pause()).status).toBe("paused");
    expect((await run.pause()).status).toBe("paused"); // idempotent
    await p.stub.openGate("b"); // the step in flight finishes...
    await eventually(
      () => run.journal(),
      (j) => j[1]?.status === "completed",
    );
    expect(await p.stub.count("c")).toBe(0); // ...but the next one does not start
    expect((await run.status()).status).toBe("paused");
    expect((await run.resume()).status).toBe("running");
    expect(await run.result({ timeout: "5s" })).toMatchObject({ ok: true, value: "abc" });
    expect(await p.stub.count("c")).toBe(1);
  });

  it("lets the last step in flight finish a paused execution (no stuck pause)", async () => {
    const { id } = executionStub("pause-last");
    const p = probe();
    const run = await client().start(gatedLast, { probe: p.name }, { id });
    await eventually(
      () => p.stub.count("b"),
      (n) => n === 1,
    );
    await run.pause();
    await p.stub.openGate("b");
    expect(await run.result({ timeout: "5s" })).toEqual({
      ok: true,
      status: "completed",
      value: "done",
    });
  });

  it("resumes a paused execution after eviction", async () => {
    const { id, stub } = executionStub("pause-evict");
    const p = probe();
    const run = await client().start(gated, { probe: p.name }, { id });
    await eventually(
      () => p.stub.count("b"),
      (n) => n === 1,
    );
    await run.pause();
    await p.stub.openGate("b");
    await eventually(
      () => run.journal(),
      (j) => j[1]?.status === "completed",
    );
    await evictDurableObject(stub);
    expect((await run.status()).status).toBe("paused");
    await run.resume();
    expect(await run.result({ timeout: "5s" })).toMatchObject({ ok: true, value: "abc" });
  });

  it("cancels during a step: its signal aborts, no later step starts, and cancel is idempotent", async () => {
    const { id } = executionStub("cancel-step");
    const p = probe();
    const run = await client().start(gated, { probe: p.name }, { id });
    await eventually(
      () => p.stub.count("b"),
      (n) => n === 1,
    );
    const cancelled = await run.cancel();
    expect(cancelled.status).toBe("cancelled");
    expect(cancelled.error).toMatchObject({ code: "CANCELLED", step: "b" });
    await p.stub.openGate("b");
    expect((await run.cancel()).status).toBe("cancelled");
    expect(await run.result({ timeout: "5s" })).toMatchObject({ ok: false, status: "cancelled" });
    expect(await p.stub.count("c")).toBe(0);
    // The in-flight step saw its signal abort.
    expect(await p.stub.records("abort")).toEqual([
      { step: "b", reason: "The execution was cancelled." },
    ]);
    const journal = await run.journal();
    expect(journal.map((e) => `${e.name}:${e.status}`)).toEqual(["a:completed", "b:cancelled"]);
  });

  it("cancels during a sleep and during a wait; their timers are gone", async () => {
    for (const phase of ["sleeping", "waiting"] as const) {
      const { id, stub } = executionStub(`cancel-${phase}`);
      const run = await client().start(greet, { name: "Z" }, { id });
      await eventually(
        () => run.status(),
        (s) => s.status === "sleeping",
      );
      if (phase === "waiting") {
        await advance(stub, 1_000);
        await eventually(
          () => run.status(),
          (s) => s.status === "waiting",
        );
      }
      await run.cancel();
      // Retention only (the index update, delivered right after, takes its retry timer along).
      await eventually(
        async () => (await stub.timerList()).map((t) => t.kind),
        (kinds) => kinds.length === 1 && kinds[0] === "lifecycle",
      );
      await advance(stub, 2 * 60 * 60 * 1000);
      expect((await run.status()).status).toBe("cancelled");
      await expectBatonError(run.sendEvent("approve", { ok: true }), "EXECUTION_FINISHED");
    }
  });

  it("restarts a finished execution from the start with the same input", async () => {
    const { id } = executionStub("restart");
    const p = probe();
    const run = await client().start(counted, { n: 2, probe: p.name }, { id });
    await run.result({ timeout: "5s" });
    const restarted = await run.restart();
    expect(restarted).toMatchObject({ run: 2 });
    expect(await run.result({ timeout: "5s" })).toMatchObject({ ok: true, value: 1 });
    expect(await p.stub.counts()).toEqual({ s0: 2, s1: 2 });
  });

  it("restarts a running execution (its run is cancelled) and a cancelled one; both run again", async () => {
    for (const cancelFirst of [false, true]) {
      const { id } = executionStub(cancelFirst ? "restart-cancelled" : "restart-running");
      const p = probe();
      const run = await client().start(gated, { probe: p.name }, { id });
      await eventually(
        () => p.stub.counts(),
        (c) => c.b === 1,
      );
      if (cancelFirst) expect((await run.cancel()).status).toBe("cancelled");
      const restarted = await run.restart();
      expect(restarted).toMatchObject({ run: 2, status: "running" });
      await eventually(
        () => p.stub.counts(),
        (c) => c.b === 2,
      );
      await p.stub.openGate("b");
      expect(await run.result({ timeout: "5s" })).toMatchObject({ ok: true, status: "completed" });
    }
  });

  it("validates input with a Standard Schema and creates nothing on failure", async () => {
    const { id } = executionStub("validated");
    const error = await expectBatonError(
      // @ts-expect-error count must be a number
      client().start(validated, { email: "not-an-email", count: "x" }, { id }),
      "INVALID_INPUT",
      /email/,
    );
    expect(error.details?.issues).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ path: ["email"] }),
        expect.objectContaining({ path: ["count"] }),
      ]),
    );
    await expectBatonError(client().get(id).status(), "EXECUTION_NOT_FOUND");
    const ok = await client().start(validated, { email: "a@b.co", count: 2 }, { id });
    expect(await ok.result({ timeout: "5s" })).toMatchObject({ ok: true, value: "a@b.co×2" });
  });

  it("deletes a finished execution after its retention; then it reads as not found", async () => {
    const { id, stub } = executionStub("retention");
    const p = probe();
    const run = await client().start(counted, { n: 1, probe: p.name }, { id, retention: "1 hour" });
    await run.result({ timeout: "5s" });
    await advance(stub, 60 * 60 * 1000 - 1);
    expect((await run.status()).status).toBe("completed");
    await advance(stub, 1);
    await expectBatonError(run.status(), "EXECUTION_NOT_FOUND");
    await expectBatonError(run.journal(), "EXECUTION_NOT_FOUND");
    await expectBatonError(
      client().get(uniqueName("never-started")).status(),
      "EXECUTION_NOT_FOUND",
    );
  });
});

describe("execution: the alarm and recovery", () => {
  it("runs the backoff wake-up once when the alarm is delivered twice", async () => {
    const { id, stub } = executionStub("dup-alarm");
    const p = probe();
    const run = await client().start(
      flaky,
      { probe: p.name, failures: 1, limit: 2, delay: "1 second", backoff: "constant" },
      { id },
    );
    await eventually(
      () => p.stub.records("attempts"),
      (r) => r.length === 1,
    );
    await stub.advanceClock(1_000);
    await runInDurableObject(stub, async (instance: TestExecutions) => {
      await Promise.all([instance.alarm(), instance.alarm()]);
      await instance.alarm();
    });
    await runDurableObjectAlarm(stub);
    expect(await run.result({ timeout: "5s" })).toMatchObject({ ok: true, value: "ok after 2" });
    expect((await p.stub.records("attempts")).length).toBe(2);
  });

  it("survives abortAllDurableObjects at several points of a 100-step workflow", async () => {
    const { id } = executionStub("hundred");
    const p = probe();
    await client().start(counted, { n: 100, probe: p.name, sleepEvery: 25 }, { id });
    for (let nap = 0; nap < 3; nap++) {
      await eventually(
        () => client().get(id).status(),
        (s) => s.status === "sleeping" && s.completedSteps === (nap + 1) * 26 - 1,
      );
      await abortAllDurableObjects();
      const stub = env.TestExecutions.getByName(id);
      await advance(stub, 60_000);
    }
    const result = await client().get(counted, id).result({ timeout: "10s" });
    expect(result).toMatchObject({ ok: true, value: 4950 });
    const journal = await client().get(id).journal();
    expect(journal.filter((e) => e.kind === "do")).toHaveLength(100);
    const counts = Object.values(await p.stub.counts());
    expect(counts).toHaveLength(100);
    expect(Math.max(...counts)).toBeLessThanOrEqual(2);
  });
});

describe("execution: events after a wait's deadline, and journal pages", () => {
  it("does not deliver an event to a wait whose deadline passed before its timer fired", async () => {
    const { id, stub } = executionStub("late-event");
    const run = await client().start(eventful, { n: 1 }, { id });
    await run.sendEvent("go", "one");
    await run.sendEvent("go", "two");
    await eventually(
      () => run.status(),
      (s) => s.currentStep === "third" && s.status === "waiting",
    );
    await stub.advanceClock(11 * 60_000); // past the 10-minute deadline; the alarm is late
    expect(await run.sendEvent("late", "too late")).toMatchObject({ delivered: false });
    await runDurableObjectAlarm(stub);
    expect(await run.result({ timeout: "5s" })).toMatchObject({
      ok: true,
      value: ["one", "two", "caught EVENT_TIMEOUT"],
    });
  });

  it("pages through the journal", async () => {
    const { id } = executionStub("journal-pages");
    const p = probe();
    const run = await client().start(counted, { n: 12, probe: p.name }, { id });
    await run.result({ timeout: "5s" });
    const first = await run.journal({ limit: 5 });
    const second = await run.journal({ from: 5, limit: 5 });
    const rest = await run.journal({ from: 10 });
    expect([...first, ...second, ...rest].map((e) => e.name)).toEqual(
      Array.from({ length: 12 }, (_, i) => `s${i}`),
    );
    await expectBatonError(run.journal({ limit: 0 }), "INVALID_ARGUMENT", /limit/);
    await expectBatonError(run.journal({ from: -1 }), "INVALID_ARGUMENT", /from/);
  });
});

describe("execution: tracked executions (run by outside code)", () => {
  it("numbers concurrent progress reports (large outputs included) without clashing", async () => {
    const { id } = executionStub("tracked-concurrent");
    const tracked = client().tracked(id);
    await tracked.start("bulk");
    const big = { rows: "r".repeat(50_000) };
    await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        tracked.progress(`step-${i}`, { output: i % 2 ? big : i }),
      ),
    );
    const journal = await tracked.journal();
    expect(journal.map((e) => e.seq)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(new Set(journal.map((e) => e.name)).size).toBe(6);
  });

  it("tracks start, progress, completion, with the same status and journal views", async () => {
    const { id } = executionStub("tracked");
    const tracked = client().tracked(id);
    expect(await tracked.start("import-users", { totalSteps: 3 })).toMatchObject({
      mode: "tracked",
      status: "running",
      totalSteps: 3,
    });
    await tracked.progress("fetch", { index: 0, output: { rows: 10 } });
    const info = await tracked.progress("transform", { index: 1 });
    expect(info).toMatchObject({ currentStep: "transform", stepCount: 2, completedSteps: 2 });
    expect((await tracked.complete({ imported: 10 })).status).toBe("completed");
    expect(await tracked.result()).toEqual({
      ok: true,
      status: "completed",
      value: { imported: 10 },
    });
    const journal = await tracked.journal();
    expect(journal.map((e) => [e.name, e.kind, e.output])).toEqual([
      ["fetch", "progress", { rows: 10 }],
      ["transform", "progress", undefined],
    ]);
  });

  it("guards transitions: no complete after cancel, no progress after the end", async () => {
    const { id } = executionStub("tracked");
    const tracked = client().tracked(id);
    await tracked.start("job");
    await tracked.cancel();
    await expectBatonError(tracked.complete("late"), "INVALID_TRANSITION", /cancelled/);
    await expectBatonError(tracked.progress("late"), "INVALID_TRANSITION", /cancelled/);
    const { id: id2 } = executionStub("tracked");
    const t2 = client().tracked(id2);
    await t2.start("job");
    await t2.fail({ message: "disk full", code: "E_DISK" });
    expect(await t2.result()).toMatchObject({
      ok: false,
      status: "failed",
      error: { code: "E_DISK", message: "disk full" },
    });
    await expectBatonError(t2.fail("again"), "INVALID_TRANSITION");
    // Workflow-only operations are refused on a tracked execution.
    await expectBatonError(client().get(id2).pause(), "INVALID_TRANSITION", /tracked/);
  });
});
