/**
 * `baton/testing` against a plain Execution actor (KitExecutions), as a user's tests would use
 * it: time travel, step mocks, crashes and evictions, inspection, run(), replay tests.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { testHooks } from "../src/foundation/test-hooks.ts";
import { ExecutionActor } from "../src/index.ts";
import { testExecutions } from "../src/testing/index.ts";
import { probe } from "./helpers.ts";
import { request, subscription, syncAttempts, syncBoom } from "./kit-workflows.ts";

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
    const clock = t.now();
    await t.sendEvent("card-added", { card: "visa" });
    // Instant sleeps: the trial and the child's day passed without moving the clock.
    expect(await t.result()).toMatchObject({ ok: true });
    expect(t.now()).toBe(clock);
    const trial = (await t.journal()).find((e) => e.name === "trial");
    expect(trial?.endedAt).toBe(trial?.startedAt);
    const idle = kit().execution(subscription);
    await idle.start({ user: "di", probe: probe().name });
    const waitFrom = idle.now();
    const at = await idle.advanceToNextTimer(); // the 30-day timeout of the wait
    expect(at).toBe(waitFrom + 30 * DAY);
    expect(idle.now()).toBe(waitFrom + 30 * DAY);
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
    expect(() => t.mockStep("charge", { returns: 1, occurrence: -1 })).toThrow(/occurrence/);
    expect(() => t.mockStep("charge", { returns: 1, nonRetryable: true })).toThrow(/throws/);
  });

  it("throws a given error for good, keeping its name and code", async () => {
    const declined = Object.assign(new TypeError("card declined"), { code: "CARD_DECLINED" });
    const { result, journal } = await kit().run(
      subscription,
      { user: "ned", probe: probe().name },
      {
        mocks: { charge: { throws: declined, nonRetryable: true } },
        events: { "card-added": { card: "visa" } },
      },
    );
    expect(result).toMatchObject({ ok: false, error: { step: "charge", attempt: 1 } });
    expect(journal.find((e) => e.name === "charge")?.error).toMatchObject({
      name: "TypeError",
      message: "card declined",
      code: "CARD_DECLINED",
    });
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

  it("crashes after a body that throws at once: the crash, not the throw, ends the attempt", async () => {
    const t = kit().execution(syncBoom);
    t.mockStep("boom", { crash: true, times: 1 });
    await t.start(null);
    await t.finish();
    expect(await t.result()).toMatchObject({ ok: true, value: "boom" });
    const boom = await t.attempts("boom");
    expect(boom.failed).toMatchObject([{ attempt: 1, error: { code: "STEP_INTERRUPTED" } }]);
    expect(syncAttempts.get(t.id)).toEqual([1, 2]); // the body ran (and threw) before the crash
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

describe("baton/testing: families and isolation", () => {
  it("finish() delivers an event to the child that waits for it", async () => {
    const { result, execution } = await kit().run(request, null, {
      events: { approved: { by: "mia" } },
    });
    expect(result).toMatchObject({ ok: true, value: { approvedBy: "mia" } });
    expect(await execution.waitingFor()).toEqual([]);
  });

  it("keeps each execution's clock and mocks to itself, until disposed", async () => {
    const k = kit();
    const a = k.execution(subscription);
    const b = k.execution(subscription);
    a.mockStep("create account", { throws: "down", nonRetryable: true });
    await a.start({ user: "ola", probe: probe().name });
    await b.start({ user: "pia", probe: probe().name });
    expect(await a.result()).toMatchObject({ ok: false, error: { step: "create account" } });
    expect(await b.waitingFor()).toMatchObject([{ kind: "event" }]); // b's step was not mocked
    await a.advance("3 days");
    expect(b.now()).toBeLessThan(a.now() - 2 * DAY); // b's clock did not move
    // One id, one test at a time.
    expect(() => k.execution(subscription, { id: a.id })).toThrow(/under test already/);
    expect(testHooks(a.id)?.clock).toBe(a.now());
    expect(testHooks(`${a.id}/welcome/0`)).toBe(testHooks(a.id)); // its children's too
    k.dispose();
    expect(testHooks(a.id)).toBeUndefined(); // the actor's clock is real time again
    expect(testHooks(b.id)).toBeUndefined();
    const again = k.execution(subscription, { id: a.id });
    expect(testHooks(a.id)).toBeDefined();
    expect((await again.status()).status).toBe("failed");
    again.dispose();
    again.dispose(); // twice is fine
    expect(testHooks(a.id)).toBeUndefined();
  });

  it("has no RPC method: the kit reaches the actor through a symbol only", () => {
    const names = Object.getOwnPropertyNames(ExecutionActor.prototype);
    expect(names.filter((n) => /test|probe|runDue|import(Recording|Journal)/i.test(n))).toEqual([]);
    expect(Object.getOwnPropertySymbols(ExecutionActor.prototype)).toHaveLength(1);
  });
});
