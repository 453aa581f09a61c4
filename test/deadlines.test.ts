import {
  env,
  evictDurableObject,
  runDurableObjectAlarm,
  runInDurableObject,
} from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { BatonError, type ErrorCode, executions, workflow } from "../src/index.ts";
import { advance, eventually, executionStub, expectBatonError, probe } from "./helpers.ts";
import { deadlined } from "./workflows.ts";

const client = () => executions(env.TestExecutions);
const TEN_MINUTES = 10 * 60_000;

type At = "step" | "sleep" | "wait" | "child" | "none";

/** Starts `deadlined` with a 10-minute deadline and waits until it stands where `at` says. */
async function startAt(at: At, name = `deadline-${at}`) {
  const p = probe();
  const { id, stub } = executionStub(name);
  const run = await client().start(deadlined, { probe: p.name, at }, { id, timeout: "10 minutes" });
  const state: Record<At, (s: { status: string; currentStep: string | null }) => boolean> = {
    step: (s) => s.status === "running" && s.currentStep === "slow",
    sleep: (s) => s.status === "sleeping",
    wait: (s) => s.status === "waiting" && s.currentStep === "approval",
    child: (s) => s.status === "waiting" && s.currentStep === "kid",
    none: (s) => s.status === "completed",
  };
  await eventually(() => run.status(), state[at]);
  if (at === "child") {
    await eventually(
      () => p.stub.counts(),
      (c) => c["child-1"] === 1,
    );
  }
  return { p, id, stub, run };
}

async function expectTimedOut(run: Awaited<ReturnType<typeof startAt>>["run"]) {
  const result = await run.result({ timeout: "5s" });
  expect(result).toMatchObject({
    ok: false,
    status: "timed_out",
    error: { code: "EXECUTION_TIMEOUT", name: "BatonError" },
  });
  const info = await run.status();
  expect(info.status).toBe("timed_out");
  expect(info.error?.code).toBe("EXECUTION_TIMEOUT");
  expect(info.deadline).toBeNull();
  return result;
}

describe("execution deadlines", () => {
  it("a deadline hit during a step: its body sees the abort, compensations run, nothing after it", async () => {
    const { p, stub, run } = await startAt("step");
    expect((await run.status()).deadline).toBe((await run.status()).createdAt + TEN_MINUTES);
    await advance(stub, TEN_MINUTES);
    const result = await expectTimedOut(run);
    if (!result.ok) expect(result.error.message).toMatch(/600000 ms/);
    await eventually(
      () => p.stub.records("aborted"),
      (r) => r.length === 1,
    );
    const counts = await p.stub.counts();
    expect(counts).toMatchObject({ book: 1, slow: 1, unbook: 1 });
    expect(counts.after).toBeUndefined();
    const journal = await run.journal();
    expect(journal.find((e) => e.name === "slow")?.status).toBe("cancelled");
  });

  it("a deadline hit during a sleep, after an eviction", async () => {
    const { p, stub, run } = await startAt("sleep");
    await evictDurableObject(stub);
    await advance(stub, TEN_MINUTES - 1);
    expect((await run.status()).status).toBe("sleeping"); // not a millisecond early
    await advance(stub, 1);
    await expectTimedOut(run);
    expect(await p.stub.counts()).toEqual({ book: 1, unbook: 1 });
  });

  it("a deadline hit during a wait: the event after it is refused", async () => {
    const { p, stub, run } = await startAt("wait");
    await advance(stub, TEN_MINUTES);
    await expectTimedOut(run);
    expect(await p.stub.counts()).toEqual({ book: 1, unbook: 1 });
    await expectBatonError(run.sendEvent("approve", {}), "EXECUTION_FINISHED");
  });

  it("a deadline hit while a child runs: the child is cancelled and its step sees the abort", async () => {
    const { p, id, stub, run } = await startAt("child");
    await advance(stub, TEN_MINUTES);
    await expectTimedOut(run);
    await eventually(
      () => client().get(`${id}/kid/0`).status(),
      (s) => s.status === "cancelled",
    );
    await eventually(
      () => p.stub.records("child-abort"),
      (r) => r.length === 1,
    );
    expect((await p.stub.counts()).unbook).toBe(1);
  });

  it("duplicate and late deadline alarms time it out once", async () => {
    const { p, stub, run } = await startAt("sleep", "deadline-dup");
    await advance(stub, TEN_MINUTES + 5 * 60_000); // late: five minutes past the deadline
    await runInDurableObject(stub, (instance) => instance.alarm());
    await runDurableObjectAlarm(stub);
    await expectTimedOut(run);
    await runInDurableObject(stub, (instance) => instance.alarm());
    expect(await p.stub.counts()).toEqual({ book: 1, unbook: 1 });
    expect((await run.journal()).filter((e) => e.name === "$compensate:book")).toHaveLength(1);
  });

  it("an execution that ends in time keeps its outcome, and its deadline timer goes", async () => {
    const { stub, run } = await startAt("none");
    expect(await run.result()).toMatchObject({ ok: true, value: "done" });
    expect((await run.status()).deadline).toBeNull();
    await eventually(
      () => stub.timerList(),
      (timers) => !timers.some((t) => t.kind === "deadline"),
    );
    await advance(stub, TEN_MINUTES);
    expect((await run.status()).status).toBe("completed");
  });

  it("the workflow's executionTimeout applies when the start gives none", async () => {
    const p = probe();
    const { id } = executionStub("deadline-default");
    const run = await client().start(deadlined, { probe: p.name, at: "sleep" }, { id });
    const info = await run.status();
    expect(info.deadline).toBe(info.createdAt + 60 * 60_000);
    await run.cancel();
    expect((await run.status()).status).toBe("cancelled");
  });

  it("a restart gets the whole timeout again, and times out again", async () => {
    const { stub, run } = await startAt("sleep", "deadline-restart");
    await advance(stub, TEN_MINUTES);
    await expectTimedOut(run);
    await run.restart();
    const info = await run.status();
    expect(info.run).toBe(2);
    expect(info.deadline).toBe((await stub.clock()) + TEN_MINUTES);
    await eventually(
      () => run.status(),
      (s) => s.status === "sleeping",
    );
    await advance(stub, TEN_MINUTES);
    await expectTimedOut(run);
  });

  it("a cancel after the deadline passed does not turn it into a cancel", async () => {
    const { stub, run } = await startAt("step", "deadline-then-cancel");
    await advance(stub, TEN_MINUTES);
    await run.cancel();
    await expectTimedOut(run);
  });

  it("a cancel without compensations takes over a timeout's compensating; it still ends timed_out", async () => {
    const p = probe();
    const { id, stub } = executionStub("deadline-terminate");
    const run = await client().start(
      deadlined,
      { probe: p.name, at: "sleep", slowUndo: true },
      { id, timeout: "10 minutes" },
    );
    await eventually(
      () => run.status(),
      (s) => s.status === "sleeping",
    );
    await advance(stub, TEN_MINUTES);
    // The compensation waits on its gate: the execution is ending, not ended.
    await eventually(
      () => run.journal(),
      (j) => j.some((e) => e.name === "$compensate:book"),
    );
    await run.cancel({ compensate: false });
    await expectTimedOut(run);
    expect((await p.stub.counts()).unbook).toBeUndefined();
  });

  it("execute of an existing execution keeps its deadline and bounds only the wait", async () => {
    const p = probe();
    const { id } = executionStub("deadline-existing");
    const input = { probe: p.name, at: "wait" as const };
    await client().start(deadlined, input, { id, timeout: "10 minutes" });
    await expectBatonError(
      client().execute(deadlined, input, { id, timeout: "200ms" }),
      "RESULT_TIMEOUT",
    );
    const info = await client().get(id).status();
    expect(info.deadline).toBe(info.createdAt + TEN_MINUTES);
  });

  it("execute with a timeout answers at the deadline with the timeout, leaving no run behind", async () => {
    const p = probe();
    const { id, stub } = executionStub("deadline-execute");
    const pending = client().execute(
      deadlined,
      { probe: p.name, at: "wait" },
      { id, timeout: "10 minutes" },
    );
    await eventually(
      () => client().get(id).status(),
      (s) => s.status === "waiting",
    );
    await advance(stub, TEN_MINUTES);
    expect(await pending).toMatchObject({ ok: false, error: { code: "EXECUTION_TIMEOUT" } });
  });

  it("refuses a bad timeout, naming it, and stores nothing", async () => {
    const p = probe();
    const cases: Array<[unknown, ErrorCode, RegExp]> = [
      [0, "INVALID_ARGUMENT", /timeout.*more than 0/],
      ["0s", "INVALID_ARGUMENT", /timeout/],
      [-5, "INVALID_DURATION", /-5/],
      ["soon", "INVALID_DURATION", /soon/],
      ["400 days", "INVALID_ARGUMENT", /timeout.*365 days/],
    ];
    for (const [timeout, code, message] of cases) {
      const { id } = executionStub("deadline-bad");
      const error = await expectBatonError(
        client().start(
          deadlined,
          { probe: p.name, at: "none" },
          {
            id,
            timeout: timeout as never,
          },
        ),
        code,
      );
      expect(error.message).toMatch(message);
      await expectBatonError(client().get(id).status(), "EXECUTION_NOT_FOUND");
    }
  });

  it("refuses a workflow with a bad executionTimeout where it is defined", () => {
    for (const bad of [0, "never", "2 years"]) {
      expect(() =>
        workflow("bad-deadline", { executionTimeout: bad as never }, async () => null),
      ).toThrow(BatonError);
    }
  });
});
