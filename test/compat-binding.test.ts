/**
 * The Workflow-binding facade (workflowBinding) and the WorkflowEntrypoint class: Workflows'
 * status names through a whole lifecycle, create/createBatch/get, the step context, delay
 * functions, rollbacks on failure and on terminate, restart from a step, delete, subscribe, and
 * the new Execution actor methods under bad input.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { workflowBinding } from "../src/compat/index.ts";
import { parseDuration } from "../src/foundation/duration.ts";
import { testExecutions } from "../src/testing/index.ts";
import {
  Contexts,
  effects,
  family,
  gate,
  Lifecycle,
  Many,
  OneAtATime,
  Patient,
  Pipeline3,
  Slow,
  Stamps,
  Trip,
} from "./compat-workflows.ts";
import { eventually, expectBatonError } from "./helpers.ts";
import { Demo } from "./ports/workers-sdk-fixture.ts";

const kit = testExecutions(env.Executions);
afterEach(() => kit.dispose());

const lifecycle = workflowBinding<{ order: string }>(env.Executions, Lifecycle);

async function collect(
  sub: { next(): Promise<IteratorResult<{ type: string; eventId: number }, void>> },
  max = 100,
) {
  const out: Array<{ type: string; eventId: number; stepName?: string }> = [];
  for (let i = 0; i < max; i++) {
    const r = await sub.next();
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}

describe("statuses through a lifecycle", () => {
  it("waiting (sleep), paused, waiting (event), complete, with the run's event and env", async () => {
    const t = kit.execution(Lifecycle, { id: "Lifecycle:life-1" });
    const instance = await lifecycle.create({ id: "life-1", params: { order: "o-1" } });
    expect(instance.id).toBe("life-1");
    await t.settle();
    expect(await instance.status()).toEqual({ status: "waiting", output: null });
    await instance.pause();
    expect((await instance.status()).status).toBe("paused");
    await instance.resume();
    await instance.resume(); // a running instance is left as it is
    expect((await instance.status()).status).toBe("waiting");
    await t.advance("1 hour");
    expect((await instance.status()).status).toBe("waiting"); // now for the event
    await (await lifecycle.get("life-1")).sendEvent({ type: "approve", payload: { by: "ada" } });
    await t.settle();
    const status = await instance.status();
    expect(status).toMatchObject({
      status: "complete",
      output: {
        first: { order: "o-1", hasEnv: true, hasCtx: true },
        done: "approved by ada",
        eventType: "approve",
        eventAt: true,
        instanceId: "life-1",
        workflowName: "Lifecycle",
      },
    });
    expect((status.output as { created: number }).created).toBe((await t.status()).createdAt);
  });

  it("waitingForPause while a step runs, paused once it ends; then running again", async () => {
    const t = kit.execution(Slow, { id: "Slow:slow-1" });
    const g = gate("slow-1");
    const instance = await workflowBinding(env.Executions, Slow).create({ id: "slow-1" });
    expect((await instance.status()).status).toBe("running");
    await instance.pause();
    expect((await instance.status()).status).toBe("waitingForPause");
    g.open();
    await t.settle();
    expect((await instance.status()).status).toBe("paused");
    expect((await t.journal()).map((s) => s.name)).toEqual(["slow"]); // "next" waits at the gate
    await instance.resume();
    await t.settle();
    expect(await instance.status()).toEqual({ status: "complete", output: "next" });
  });

  it("errored after a failed step, the rollbacks run in reverse with the error", async () => {
    const t = kit.execution(Trip, { id: "Trip:trip-fail" });
    const instance = await workflowBinding(env.Executions, Trip).create({
      id: "trip-fail",
      params: { fail: true },
    });
    await t.settle();
    expect(await instance.status()).toEqual({
      status: "errored",
      output: null,
      error: { name: "Error", message: "card declined" },
    });
    expect(effects.get("trip-fail")).toEqual([
      "undo book hotel#1 HO-2 Error: card declined (book hotel-1)",
      "undo book flight#1 FL-1 Error: card declined (book flight-1)",
    ]);
  });

  it("terminated: without rollback none runs; with rollback they run as Terminated; twice is refused", async () => {
    const trips = workflowBinding(env.Executions, Trip);
    const plain = kit.execution(Trip, { id: "Trip:trip-term" });
    const a = await trips.create({ id: "trip-term", params: {} });
    await plain.settle();
    await a.terminate();
    expect((await a.status()).status).toBe("terminated");
    expect(effects.get("trip-term")).toBeUndefined();
    await expect(a.terminate()).rejects.toMatchObject({ code: "EXECUTION_FINISHED" });

    const rolled = kit.execution(Trip, { id: "Trip:trip-rollback" });
    const b = await trips.create({ id: "trip-rollback", params: {} });
    await rolled.settle();
    await b.terminate({ rollback: true });
    await rolled.settle();
    expect((await b.status()).status).toBe("terminated");
    expect(effects.get("trip-rollback")).toEqual([
      "undo book hotel#1 HO-2 Terminated: Instance terminated during rollback (book hotel-1)",
      "undo book flight#1 FL-1 Terminated: Instance terminated during rollback (book flight-1)",
    ]);
    await expect(b.terminate({ rollback: "yes" as never })).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
    });
  });

  it("waitForEvent times out after 24 hours by default, as WorkflowTimeoutError", async () => {
    const t = kit.execution(Patient, { id: "Patient:patient-1" });
    const instance = await workflowBinding(env.Executions, Patient).create({ id: "patient-1" });
    await t.settle();
    await t.advance("23 hours");
    expect((await instance.status()).status).toBe("waiting");
    await t.advance("1 hour");
    expect(await instance.status()).toEqual({
      status: "complete",
      output: { name: "WorkflowTimeoutError", message: "Execution timed out after 86400000ms" },
    });
  });
});

describe("create, createBatch, get", () => {
  const demos = workflowBinding(env.Executions, Demo);

  it("checks ids as Workflows does, and defaults params to {}", async () => {
    for (const id of ["", "-starts-with-dash", "has space", "x".repeat(101), 7]) {
      await expect(demos.create({ id: id as string })).rejects.toMatchObject({
        code: "INVALID_ARGUMENT",
      });
    }
    await expect(demos.create("nope" as never)).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    const t = kit.execution(Demo, { id: `Demo:${"y".repeat(100)}` });
    const long = await demos.create({ id: "y".repeat(100) });
    await t.advance("1 second");
    expect(await long.status()).toEqual({ status: "complete", output: {} });
  });

  it("get of an unknown id throws EXECUTION_NOT_FOUND; ids are per workflow", async () => {
    await expect(demos.get("nobody-here")).rejects.toMatchObject({ code: "EXECUTION_NOT_FOUND" });
    await expect(demos.get("bad id")).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    kit.execution(Demo, { id: "Demo:shared-id" });
    kit.execution(Stamps, { id: "Stamps:shared-id" });
    await demos.create({ id: "shared-id" });
    // The same instance id in another workflow is another instance.
    await workflowBinding(env.Executions, Stamps).create({ id: "shared-id" });
    await expect(workflowBinding(env.Executions, Stamps).get("shared-id")).resolves.toMatchObject({
      id: "shared-id",
    });
  });

  it("createBatch's object form reports duplicates and existing ids; count makes fresh ids", async () => {
    kit.execution(Demo, { id: "Demo:cb-a" });
    kit.execution(Demo, { id: "Demo:cb-b" });
    await demos.create({ id: "cb-b" });
    const result = await demos.createBatch({
      instances: [{ id: "cb-a", params: { n: 1 } as never }, { id: "cb-a" }, { id: "cb-b" }],
    });
    expect(result.created.map((i) => i.id)).toEqual(["cb-a"]);
    expect(result.errors).toEqual([
      {
        index: 1,
        id: "cb-a",
        code: 10415,
        message: "workflows.api.error.instance.duplicate_in_batch",
      },
      { index: 2, id: "cb-b", code: 10405, message: "workflows.api.error.instance.already_exists" },
    ]);
    const counted = await demos.createBatch({ count: 2 });
    expect(counted.created).toHaveLength(2);
    expect(counted.errors).toEqual([]);
    for (const bad of [
      [],
      { count: 0 },
      { count: 101 },
      Array.from({ length: 101 }, () => ({})),
      null,
    ]) {
      await expect(demos.createBatch(bad as never)).rejects.toMatchObject({
        code: "INVALID_ARGUMENT",
      });
    }
  });
});

describe("the step context and delay functions", () => {
  it("gives name and count for a repeated step name, and waits what the delay function says", async () => {
    const t = kit.execution(Contexts, { id: "Contexts:ctx-1" });
    t.mockStep("flaky", { throws: "busy", times: 2 });
    await workflowBinding(env.Executions, Contexts).create({ id: "ctx-1" });
    await t.settle();
    const first = await t.waitingFor();
    expect(first[0]).toMatchObject({ kind: "retry", step: "flaky" });
    const start = t.now();
    expect((first[0] as { at: number }).at - start).toBe(7_000); // after attempt 1: 1 × 7 s
    await t.advance("7 seconds");
    const second = await t.waitingFor();
    expect((second[0] as { at: number }).at - t.now()).toBe(14_000); // after attempt 2: 2 × 7 s
    await t.advance("14 seconds");
    expect(await t.result()).toEqual({
      ok: true,
      status: "completed",
      value: {
        seen: [1, 2, 3].map((count) => ({ step: { name: "tick", count }, attempt: 1, limit: 5 })),
        flaky: 3,
      },
    });
  });

  it("month(s) and year(s) are durations (30 and 365.25 days)", () => {
    expect(parseDuration("1 month")).toBe(30 * 86_400_000);
    expect(parseDuration("2 months")).toBe(60 * 86_400_000);
    expect(parseDuration("1 year")).toBe(365.25 * 86_400_000);
    expect(parseDuration("5 second")).toBe(5_000);
  });
});

describe("event.timestamp", () => {
  it("is the creation time, the same after an eviction and a replay", async () => {
    const t = kit.execution(Stamps, { id: "Stamps:stamp-1" });
    await workflowBinding(env.Executions, Stamps).create({ id: "stamp-1" });
    await t.settle();
    const created = (await t.status()).createdAt;
    await t.evict();
    await t.advance("1 minute");
    expect(await t.result()).toEqual({
      ok: true,
      status: "completed",
      value: { before: created, after: created },
    });
  });
});

describe("restart and delete", () => {
  const pipes = workflowBinding(env.Executions, Pipeline3);

  it("restart from a step keeps the steps before it and runs it and the rest again", async () => {
    const t = kit.execution(Pipeline3, { id: "Pipeline3:pipe-1" });
    const instance = await pipes.create({ id: "pipe-1" });
    await t.settle();
    await instance.sendEvent({ type: "go", payload: null });
    await t.settle();
    expect(await instance.status()).toEqual({ status: "complete", output: 6 });
    await expect(instance.restart({ from: { name: "nope" } })).rejects.toMatchObject({
      code: "STEP_NOT_FOUND",
    });
    await expect(instance.restart({ from: { name: "two", count: 0 } })).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
    });
    await expect(instance.restart({ from: { name: "two", type: "sleep" } })).rejects.toMatchObject({
      code: "STEP_NOT_FOUND",
    });
    expect((await instance.status()).status).toBe("complete"); // nothing changed
    await instance.restart({ from: { name: "two", type: "do" } });
    await t.settle();
    // The event it consumed went with the restart: it waits for a new one.
    expect((await instance.status()).status).toBe("waiting");
    await instance.sendEvent({ type: "go", payload: null });
    await t.settle();
    expect(await instance.status()).toEqual({ status: "complete", output: 6 });
    expect(effects.get("pipe-1")).toEqual(["one", "two", "three", "two", "three"]);
    expect((await t.status()).run).toBe(2);
  });

  it("restart from a step of a running instance stops it without rollbacks first", async () => {
    const t = kit.execution(Pipeline3, { id: "Pipeline3:pipe-2" });
    const instance = await pipes.create({ id: "pipe-2" });
    await t.settle(); // waiting for "go"
    await instance.restart({ from: { name: "two" } });
    await t.settle();
    expect(effects.get("pipe-2")).toEqual(["one", "two", "two"]);
    await instance.restart();
    await t.settle();
    expect(effects.get("pipe-2")).toEqual(["one", "two", "two", "one", "two"]);
  });

  it("delete removes a running instance and its state; its id can be created again", async () => {
    const t = kit.execution(Lifecycle, { id: "Lifecycle:life-del" });
    const instance = await lifecycle.create({ id: "life-del", params: { order: "x" } });
    await t.settle();
    await instance.delete();
    await expect(lifecycle.get("life-del")).rejects.toMatchObject({ code: "EXECUTION_NOT_FOUND" });
    await expect(instance.delete()).rejects.toMatchObject({ code: "EXECUTION_NOT_FOUND" });
    const again = await lifecycle.create({ id: "life-del", params: { order: "y" } });
    await t.settle();
    expect(await again.status()).toEqual({ status: "waiting", output: null });
    expect((await t.journal()).map((s) => [s.name, s.output])).toEqual([
      ["prepare", { order: "y", hasEnv: true, hasCtx: true }],
      ["nap", undefined],
    ]);
    // Its heartbeat is its own, not the deleted one's retention.
    const timers = await runInDurableObject(
      env.Executions.getByName("Lifecycle:life-del"),
      (actor) =>
        (
          actor as unknown as { timers: { get(k: string): { dueAt: number } | undefined } }
        ).timers.get("lifecycle"),
    );
    expect((timers?.dueAt ?? 0) - t.now()).toBeLessThanOrEqual(30_000);
  });
});

describe("subscribe", () => {
  it("streams the history, then live events, and ends after the terminal event", async () => {
    const t = kit.execution(Lifecycle, { id: "Lifecycle:life-sub" });
    const instance = await lifecycle.create({ id: "life-sub", params: { order: "s" } });
    await t.settle();
    await t.advance("1 hour");
    const sub = instance.subscribe();
    const early = [];
    for (let i = 0; i < 8; i++) {
      const r = await sub.next();
      if (!r.done) early.push(r.value);
    }
    expect(early.map((e) => [e.type, "stepName" in e ? e.stepName : null])).toEqual([
      ["workflow_started", null],
      ["step_started", "prepare"],
      ["attempt_started", "prepare"],
      ["attempt_completed", "prepare"],
      ["step_completed", "prepare"],
      ["sleep_started", "nap"],
      ["sleep_completed", "nap"],
      ["wait_started", "approval"],
    ]);
    expect(early.map((e) => e.eventId)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(early[4]).toMatchObject({ instanceId: "life-sub", output: { order: "s" } });
    const pending = sub.next(); // live: nothing new until the event comes
    await instance.sendEvent({ type: "approve", payload: { by: "bob" } });
    await t.settle();
    expect((await pending).value).toMatchObject({ type: "wait_completed", stepName: "approval" });
    const rest = await collect(sub);
    expect(rest.map((e) => e.type)).toEqual([
      "step_started",
      "attempt_started",
      "attempt_completed",
      "step_completed",
      "workflow_completed",
    ]);
    expect(await sub.next()).toEqual({ done: true, value: undefined });

    // Afterwards: from a cursor, and filtered.
    const after = await collect(instance.subscribe({ cursor: 11 }));
    expect(after[0]?.eventId).toBe(12);
    const done = await collect(
      instance.subscribe({ filter: ["step_completed", "workflow_completed"] }),
    );
    expect(done.map((e) => e.type)).toEqual([
      "step_completed",
      "step_completed",
      "workflow_completed",
    ]);
    expect(() => instance.subscribe({ cursor: -5 })).toThrow(/cursor/);
  });
});

describe("the Execution actor's new methods under bad input", () => {
  it("refuses bad history, cancel, restart and start options with INVALID_ARGUMENT", async () => {
    const t = kit.execution(Pipeline3, { id: "Pipeline3:bad-1" });
    await workflowBinding(env.Executions, Pipeline3).create({ id: "bad-1" });
    await t.settle();
    const stub = env.Executions.getByName("Pipeline3:bad-1");
    for (const options of [
      { since: -1 },
      { since: 1.5 },
      { seen: "x" },
      { seen: [1] },
      { wait: "31 seconds" },
      { wait: "soon" },
    ]) {
      const code =
        "wait" in options && options.wait === "soon" ? "INVALID_DURATION" : "INVALID_ARGUMENT";
      await expectBatonError(stub.history(options as never), code);
    }
    await expectBatonError(stub.cancel({ compensate: "no" } as never), "INVALID_ARGUMENT");
    await expectBatonError(stub.restart({ from: "two" } as never), "INVALID_ARGUMENT");
    await expectBatonError(
      stub.restart({ from: { name: "two", type: "loop" } } as never),
      "INVALID_ARGUMENT",
    );
    await expectBatonError(stub.restart({ compensate: 1 } as never), "INVALID_ARGUMENT");
    // Nothing changed: it still waits for "go", with its journal as it was.
    expect((await stub.instanceStatus()).status).toBe("waiting");
    expect((await t.journal()).map((s) => s.name)).toEqual(["one", "two", "go"]);
    // A second exclusive start of the same id and input is refused.
    await expectBatonError(
      stub.start("Pipeline3", {}, { id: "Pipeline3:bad-1", exclusive: true }),
      "EXECUTION_CONFLICT",
    );
  });

  it("answers EXECUTION_NOT_FOUND for an id never started", async () => {
    const stub = env.Executions.getByName("never-started-compat");
    await expectBatonError(stub.history(), "EXECUTION_NOT_FOUND");
    await expectBatonError(stub.instanceStatus(), "EXECUTION_NOT_FOUND");
    await expectBatonError(stub.delete(), "EXECUTION_NOT_FOUND");
    await expectBatonError(stub.restart({ from: { name: "x" } }), "EXECUTION_NOT_FOUND");
  });
});

describe("review cases", () => {
  it("refuses a restart from a step after the rollbacks ran (those steps were undone)", async () => {
    const t = kit.execution(Trip, { id: "Trip:trip-undone" });
    const instance = await workflowBinding(env.Executions, Trip).create({
      id: "trip-undone",
      params: { fail: true },
    });
    await t.settle();
    expect((await instance.status()).status).toBe("errored");
    await expect(instance.restart({ from: { name: "pay" } })).rejects.toMatchObject({
      code: "INVALID_TRANSITION",
    });
    expect((await instance.status()).status).toBe("errored");
    await instance.restart(); // from the start it may
    await t.settle();
    expect(effects.get("trip-undone")).toHaveLength(4); // undone twice: both runs failed
  });

  it("a subscriber sees the rollbacks of a terminate, then workflow_terminated last", async () => {
    const t = kit.execution(Trip, { id: "Trip:trip-sub" });
    const instance = await workflowBinding(env.Executions, Trip).create({
      id: "trip-sub",
      params: {},
    });
    await t.settle();
    const sub = instance.subscribe({
      filter: ["rollback_step_completed", "workflow_terminated", "wait_started"],
    });
    expect((await sub.next()).value).toMatchObject({ type: "wait_started" });
    const rest = collect(sub);
    await instance.terminate({ rollback: true });
    await t.settle();
    expect((await rest).map((e) => [e.type, e.stepName ?? null])).toEqual([
      ["rollback_step_completed", "book hotel"],
      ["rollback_step_completed", "book flight"],
      ["workflow_terminated", null],
    ]);
    expect(await instance.status()).toEqual({ status: "terminated", output: null });
  });

  it("pages through many events that share one millisecond", async () => {
    const t = kit.execution(Many, { id: "Many:many-1" });
    const instance = await workflowBinding(env.Executions, Many).create({ id: "many-1" });
    await t.settle();
    const events = await collect(instance.subscribe(), 2_000);
    expect(events).toHaveLength(1 + 300 * 4 + 1);
    expect(events.map((e) => e.eventId)).toEqual(events.map((_, i) => i));
    expect(new Set(events.map((e) => (e as { timestamp?: number }).timestamp)).size).toBe(1);
    expect(events.at(-1)).toMatchObject({ type: "workflow_completed", output: 44_850 });
  });

  it("a sleep's duration stays known after it ended", async () => {
    const t = kit.execution(Lifecycle, { id: "Lifecycle:life-nap" });
    const instance = await lifecycle.create({ id: "life-nap", params: { order: "n" } });
    await t.settle();
    await t.advance("1 hour");
    const sub = instance.subscribe({ filter: ["sleep_started"] });
    expect((await sub.next()).value).toMatchObject({ stepName: "nap", durationMs: 3_600_000 });
    sub.close();
    expect(await sub.next()).toEqual({ done: true, value: undefined });
  });

  it("a parent cancelled without compensations cancels its child without them too", async () => {
    const quiet = kit.execution(family, { id: "family-quiet" });
    await quiet.start({ tag: "family-quiet", hold: true });
    await quiet.handle.cancel({ compensate: false });
    await quiet.settle();
    const loud = kit.execution(family, { id: "family-loud" });
    await loud.start({ tag: "family-loud", hold: true });
    await loud.handle.cancel();
    await loud.settle();
    expect(effects.get("family-quiet")).toEqual(["kid ran"]);
    expect(effects.get("family-loud")).toEqual(["kid ran", "kid undone"]);
  });

  it("delete, then a new execution under the same id, starts new children", async () => {
    const t = kit.execution(family, { id: "family-again" });
    await t.start({ tag: "family-again", hold: false });
    const first = (await t.journal())[0]?.childId;
    await t.handle.delete();
    await t.start({ tag: "family-again", hold: false });
    const second = (await t.journal())[0]?.childId;
    expect(first).toBe("family-again/kid/0");
    expect(second).toBe("family-again/r2/kid/0");
    expect(effects.get("family-again")).toEqual(["kid ran", "kid ran"]);
    expect((await t.status()).run).toBe(2);
  });

  it("queued while it waits for a concurrency permit, then running", async () => {
    const flows = workflowBinding(env.Executions, OneAtATime);
    const first = kit.execution(OneAtATime, { id: "OneAtATime:q-1" });
    const a = await flows.create({ id: "q-1" });
    await first.settle();
    // The second waits for the permit inside its first (Baton's own) step: no settling it.
    const b = await flows.create({ id: "q-2" });
    expect((await a.status()).status).toBe("waiting");
    await eventually(
      async () => (await b.status()).status,
      (status) => status === "queued",
    );
    await a.sendEvent({ type: "go", payload: null });
    await first.settle();
    const after = await eventually(
      async () => (await b.status()).status,
      (status) => status !== "queued",
    );
    expect(after).toBe("waiting");
  });
});
