/**
 * `baton/testing` against a plain Execution actor (KitExecutions), as a user's tests would use
 * it: time travel, step mocks, crashes and evictions, inspection, run(), replay tests.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { workflow } from "../src/index.ts";
import { testExecutions } from "../src/testing/index.ts";
import { expectBatonError, probe } from "./helpers.ts";
import { subscription } from "./kit-workflows.ts";
import { codeVariant, shape } from "./workflows.ts";

const kit = () => testExecutions(env.KitExecutions);
const DAY = 86_400_000;

describe("baton/testing: time", () => {
  it("passes a 7-day sleep and a 1-day child sleep in test time, not real time", async () => {
    const p = probe();
    const t = kit().execution(subscription);
    const started = Date.now();
    expect(await t.start({ user: "ada", probe: p.name })).toMatchObject({ status: "waiting" });
    expect(await t.waitingFor()).toEqual([
      { kind: "event", step: "payment method", type: "card-added", timeoutAt: t.now() + 30 * DAY },
    ]);
    await t.sendEvent("card-added", { card: "visa" });
    expect(await t.waitingFor()).toMatchObject([{ kind: "sleep", step: "trial" }]);
    const before = t.now();
    await t.advance("6 days");
    expect((await t.status()).status).toBe("sleeping"); // not a moment early
    await t.advance("1 day");
    // The trial ended at its own time; the charge ran; the child's 1-day sleep is next.
    expect(await t.waitingFor()).toMatchObject([{ kind: "child", step: "welcome" }]);
    await t.advance("1 day");
    expect(await t.result()).toEqual({
      ok: true,
      status: "completed",
      value: { account: "create account", charge: "ch_ada", mail: "welcome, ada" },
    });
    expect(t.now() - before).toBe(8 * DAY);
    expect(Date.now() - started).toBeLessThan(5_000);
    const journal = await t.journal();
    const trial = journal.find((e) => e.name === "trial");
    expect((trial?.endedAt ?? 0) - (trial?.startedAt ?? 0)).toBe(7 * DAY);
    expect(await t.statusHistory()).toEqual([
      { from: "pending", to: "running", event: "start", at: expect.any(Number) },
      { from: "running", to: "waiting", event: "wait", at: before, step: "payment method" },
      { from: "waiting", to: "running", event: "event", at: before, step: "payment method" },
      { from: "running", to: "sleeping", event: "sleep", at: before, step: "trial" },
      { from: "sleeping", to: "running", event: "wake", at: before + 7 * DAY, step: "trial" },
      { from: "running", to: "waiting", event: "child", at: before + 7 * DAY, step: "welcome" },
      { from: "waiting", to: "running", event: "wake", at: t.now(), step: "welcome" },
      { from: "running", to: "completed", event: "complete", at: t.now() },
    ]);
  });

  it("advances to the next timer, and makes sleeps instant on request", async () => {
    const p = probe();
    const t = kit().execution(subscription).instantSleeps();
    await t.start({ user: "cy", probe: p.name });
    await t.sendEvent("card-added", { card: "visa" });
    // Instant sleeps: the trial and the child's day passed without moving the clock.
    expect(await t.result()).toMatchObject({ ok: true });
    const idle = kit().execution(subscription);
    await idle.start({ user: "di", probe: probe().name });
    const at = await idle.advanceToNextTimer(); // the 30-day timeout of the wait
    expect(at).toBe(idle.now());
    expect(await idle.result()).toMatchObject({ ok: false, error: { code: "EVENT_TIMEOUT" } });
    expect(await idle.advanceToNextTimer()).toBeNull();
  });
});

describe("baton/testing: step mocks", () => {
  it("fails a step twice then lets its body run, the attempts and backoffs visible", async () => {
    const p = probe();
    const t = kit().execution(subscription);
    t.mockStep("charge", { throws: "card service down", times: 2 });
    await t.start({ user: "ada", probe: p.name });
    await t.sendEvent("card-added", { card: "visa" });
    await t.advance("7 days"); // trial over: charge attempt 1 fails, backoff 10 min
    expect(await t.waitingFor()).toMatchObject([
      { kind: "retry", step: "charge", lastError: "card service down" },
    ]);
    await t.advance("10 minutes"); // attempt 2 fails, backoff 20 min
    await t.advance("20 minutes"); // attempt 3: the real body
    const charge = await t.attempts("charge");
    expect(charge).toMatchObject({ attempts: 3, status: "completed" });
    expect(charge.failed.map((a) => [a.attempt, a.error.message])).toEqual([
      [1, "card service down"],
      [2, "card service down"],
    ]);
    expect((charge.failed[1]?.startedAt ?? 0) - (charge.failed[0]?.endedAt ?? 0)).toBe(600_000);
    // Only the third attempt reached the real body.
    expect((await p.stub.records("charge")).map((r) => r.attempt)).toEqual([3]);
  });

  it("returns a mocked value, fails for good, or runs out of retries", async () => {
    const returned = await kit().run(
      subscription,
      { user: "eve", probe: probe().name },
      {
        mocks: { charge: { returns: { chargeId: "ch_mock", attempt: 0 } } },
        events: { "card-added": { card: "visa" } },
      },
    );
    expect(returned.result).toMatchObject({ ok: true, value: { charge: "ch_mock" } });
    const fatal = await kit().run(
      subscription,
      { user: "fay", probe: probe().name },
      {
        mocks: { charge: { throws: "card declined", nonRetryable: true } },
        events: { "card-added": { card: "visa" } },
      },
    );
    expect(fatal.result).toMatchObject({
      ok: false,
      error: { code: "STEP_FAILED", step: "charge", attempt: 1 },
    });
    const exhausted = await kit().run(
      subscription,
      { user: "gus", probe: probe().name },
      { mocks: { charge: { throws: "timeout" } }, events: { "card-added": { card: "visa" } } },
    );
    expect(exhausted.result).toMatchObject({
      ok: false,
      error: { step: "charge", attempt: 3, message: expect.stringContaining("timeout") },
    });
    const step = exhausted.journal.find((e) => e.name === "charge");
    expect(step?.failedAttempts?.map((a) => a.attempt)).toEqual([1, 2, 3]);
  });

  it("refuses mocks that say nothing or contradict themselves", () => {
    const t = kit().execution(subscription);
    expect(() => t.mockStep("charge", {})).toThrow(/returns, throws or crash/);
    expect(() => t.mockStep("charge", { throws: "x", crash: true })).toThrow(/not both/);
    expect(() => t.mockStep("charge", { throws: "x", returns: 1 })).toThrow(/needs times/);
    expect(() => t.mockStep("charge", { throws: "x", times: -1 })).toThrow(/times/);
    expect(() => t.mockStep("charge", { crash: "later" as never })).toThrow(/"before" or "after"/);
  });
});

describe("baton/testing: faults", () => {
  it("crashes the actor mid-step; the step runs again under the same idempotency key", async () => {
    const p = probe();
    const t = kit().execution(subscription);
    t.mockStep("create account", { crash: true, times: 1 });
    await t.start({ user: "hal", probe: p.name });
    const account = await t.attempts("create account");
    expect(account).toMatchObject({ attempts: 2, status: "completed" });
    expect(account.failed).toMatchObject([{ attempt: 1, error: { code: "STEP_INTERRUPTED" } }]);
    // The body ran in the attempt the crash cut off, then again: the same idempotency key.
    const ran = await p.stub.records("create account");
    expect(ran.map((r) => r.attempt)).toEqual([1, 2]);
    expect(new Set(ran.map((r) => r.idempotencyKey))).toEqual(
      new Set([`${t.id}/create account/0`]),
    );
    expect(await t.waitingFor()).toMatchObject([{ kind: "event" }]);
  });

  it("crashes the actor before a step's body: the body runs once, in the next attempt", async () => {
    const p = probe();
    const t = kit().execution(subscription);
    t.mockStep("create account", { crash: "before", times: 1 });
    await t.start({ user: "hank", probe: p.name });
    expect(await t.attempts("create account")).toMatchObject({ attempts: 2, status: "completed" });
    const ran = await p.stub.records("create account");
    expect(ran.map((r) => r.attempt)).toEqual([2]);
  });

  it("evicts or crashes the actor while it waits: nothing is lost", async () => {
    const p = probe();
    const t = kit().execution(subscription);
    await t.start({ user: "ivy", probe: p.name });
    await t.evict();
    await t.sendEvent("card-added", { card: "visa" });
    await t.crash();
    await t.advance("8 days");
    expect(await t.result()).toMatchObject({ ok: true, value: { charge: "ch_ivy" } });
    expect((await p.stub.records("create account")).length).toBe(1);
  });
});

describe("baton/testing: replay tests", () => {
  it("records a journal; it replays cleanly, and fails with NONDETERMINISM once a step is renamed", async () => {
    const p = probe();
    const { execution } = await kit().run(
      subscription,
      { user: "jo", probe: p.name },
      { events: { "card-added": { card: "visa" } } },
    );
    const recorded = await execution.exportJournal();
    expect(recorded).toMatchObject({ format: "baton.journal/1", workflow: "subscription" });
    // A JSON document: it survives a round trip through a file in the repository.
    const saved = JSON.parse(JSON.stringify(recorded));
    expect(await kit().replay(subscription, saved)).toEqual({
      steps: recorded.steps.length,
      ended: "completed",
    });
    // No step body ran again in the replay.
    expect((await p.stub.records("charge")).length).toBe(1);
    const renamed = structuredClone(saved);
    renamed.steps[0].name = "create user";
    const error = await expectBatonError(
      kit().replay(subscription, renamed),
      "NONDETERMINISM",
      /"create user".*"create account"/,
    );
    expect(error.details).toMatchObject({ workflow: "subscription" });
  });

  it("catches a workflow whose code changed under a recorded journal", async () => {
    codeVariant.current = "original";
    const { execution } = await kit().run(shape, { tag: "a" });
    const recorded = await execution.exportJournal();
    try {
      codeVariant.current = "renamed";
      await expectBatonError(kit().replay(shape, recorded), "NONDETERMINISM");
      codeVariant.current = "reordered";
      await expectBatonError(kit().replay(shape, recorded), "NONDETERMINISM");
    } finally {
      codeVariant.current = "original";
    }
    expect(await kit().replay(shape, recorded)).toMatchObject({ ended: "completed" });
  });

  it("replays a recording against an edited copy of the workflow, before the edit is made", async () => {
    const t = kit().execution(subscription);
    await t.start({ user: "lea", probe: probe().name });
    const recorded = await t.exportJournal(); // "create account", then it waits for the card
    // A compatible edit: the same step, a new body and retry policy. No body runs in a replay.
    const compatible = workflow("subscription", async (_input: { user: string }, step) => {
      await step.do("create account", { retries: { limit: 9 } }, () => "never runs");
      return step.waitForEvent("payment method", { type: "card-added" });
    });
    expect(await kit().replay(compatible, recorded)).toEqual({ steps: 1, ended: "journal" });
    const renamed = workflow("subscription", async (_input: { user: string }, step) => {
      await step.do("create user", () => "never runs");
    });
    await expectBatonError(
      kit().replay(renamed, recorded),
      "NONDETERMINISM",
      /"create account" \(do\) in the journal but the code now calls "create user"/,
    );
  });

  it("replays the recording of an unfinished execution up to where it was", async () => {
    const t = kit().execution(subscription);
    await t.start({ user: "kay", probe: probe().name });
    const recorded = await t.exportJournal();
    expect(recorded.steps.map((s) => s.name)).toEqual(["create account"]);
    expect(await kit().replay(subscription, recorded)).toEqual({ steps: 1, ended: "journal" });
  });

  it("refuses what is not a recording of this workflow", async () => {
    const { execution } = await kit().run(shape, { tag: "b" });
    const recorded = await execution.exportJournal();
    await expectBatonError(kit().replay(subscription, recorded), "INVALID_ARGUMENT", /"shape"/);
    await expectBatonError(kit().replay(subscription, {} as never), "INVALID_ARGUMENT");
    await expectBatonError(
      kit().replay(shape, { ...recorded, input: "%%%" }),
      "INVALID_ARGUMENT",
      /damaged/,
    );
  });
});
