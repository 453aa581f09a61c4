/**
 * The signup workflow on a test clock (`baton/testing`): the week-long trial passes in
 * milliseconds, the services' failures are mocked, the actor crashes mid-step, and a recorded
 * journal checks that a change to the workflow is safe for the executions already running.
 * Everything runs inside workerd, against the real `Signups` actor of wrangler.toml.
 */
import { env } from "cloudflare:test";
import { workflow } from "baton";
import { type RecordedJournal, testExecutions } from "baton/testing";
import { afterEach, describe, expect, it, vi } from "vitest";
import { accounts, billing, signup } from "../src/index.ts";
import recorded from "./journals/signup.json";

const kit = testExecutions(env.Signups);
const DAY = 24 * 60 * 60 * 1000;
const newEmail = () => `ada+${crypto.randomUUID()}@example.com`;
const confirmation = { at: "2026-01-01T00:00:00.000Z" };

afterEach(() => {
  vi.restoreAllMocks();
  kit.dispose(); // the executions' test clocks and mocks go
});

describe("signup", () => {
  it("waits out the 7-day trial in test time, then charges", async () => {
    const t = kit.execution(signup);
    await t.start({ email: newEmail() });
    expect(await t.waitingFor()).toMatchObject([{ kind: "event", type: "email-confirmed" }]);
    await t.sendEvent("email-confirmed", confirmation);
    expect(await t.waitingFor()).toEqual([
      { kind: "sleep", step: "trial", until: t.now() + 7 * DAY },
    ]);

    const week = Date.now();
    await t.advance("6 days");
    expect((await t.status()).status).toBe("sleeping"); // not a moment early
    await t.advance("1 day");
    // The week of the trial, and the charge after it, in less than a second of real time.
    expect(Date.now() - week).toBeLessThan(1_000);
    expect(await t.result()).toMatchObject({
      ok: true,
      value: { confirmedAt: confirmation.at, charge: expect.stringMatching(/^ch_/) },
    });
    expect((await t.statusHistory()).map((change) => change.to)).toEqual([
      "running",
      "waiting",
      "running",
      "sleeping",
      "running",
      "completed",
    ]);
  });

  it("retries a flaky account service: two failures, then the real call", async () => {
    const create = vi.spyOn(accounts, "create");
    const t = kit.execution(signup);
    t.mockStep("create account", { throws: "accounts service unavailable", times: 2 });
    await t.start({ email: newEmail() });
    // The retry waits its backoff (1 s, then 2 s) on the test clock.
    expect(await t.waitingFor()).toMatchObject([
      { kind: "retry", step: "create account", lastError: "accounts service unavailable" },
    ]);
    await t.advanceToNextTimer();
    await t.advanceToNextTimer();
    const account = await t.attempts("create account");
    expect(account).toMatchObject({ attempts: 3, status: "completed" });
    expect(account.failed.map((f) => [f.attempt, f.error.message])).toEqual([
      [1, "accounts service unavailable"],
      [2, "accounts service unavailable"],
    ]);
    expect(create).toHaveBeenCalledTimes(1); // the mocked attempts never reached the service
    expect(await t.waitingFor()).toMatchObject([{ kind: "event", type: "email-confirmed" }]);
  });

  it("fails when every charge attempt fails: retries exhausted", async () => {
    const { result, execution } = await kit.run(
      signup,
      { email: newEmail() },
      {
        mocks: { "first charge": { throws: "card declined" } },
        events: { "email-confirmed": confirmation },
      },
    );
    expect(result).toMatchObject({ ok: false, error: { step: "first charge", attempt: 3 } });
    const charge = await execution.attempts("first charge");
    expect(charge).toMatchObject({ attempts: 3, status: "failed" });
    expect(charge.failed).toHaveLength(3);
  });

  it("fails at once, without retries, for an address that is not one", async () => {
    const { result, journal } = await kit.run(signup, { email: "nope" });
    expect(result).toMatchObject({ ok: false, error: { step: "create account", attempt: 1 } });
    expect(journal).toMatchObject([{ name: "create account", status: "failed", attempts: 1 }]);
  });

  it("gives up when the confirmation does not come within a day", async () => {
    const t = kit.execution(signup);
    await t.start({ email: newEmail() });
    await t.advance("1 day");
    expect(await t.result()).toMatchObject({ ok: false, error: { code: "EVENT_TIMEOUT" } });
  });

  it("charges again, under the same idempotency key, after a crash mid-charge", async () => {
    const keys: string[] = [];
    const charge = billing.charge;
    vi.spyOn(billing, "charge").mockImplementation(async (account, key) => {
      keys.push(key);
      return charge(account, key);
    });
    const t = kit.execution(signup);
    // The charge's body runs, then the actor dies before its result is journaled.
    t.mockStep("first charge", { crash: true, times: 1 });
    await t.start({ email: newEmail() });
    await t.sendEvent("email-confirmed", confirmation);
    await t.advance("7 days");
    expect(await t.result()).toMatchObject({ ok: true });
    expect(keys).toHaveLength(2); // at least once: the charge ran twice ...
    expect(keys[1]).toBe(keys[0]); // ... with one key, so the payment service charges once
    expect((await t.attempts("first charge")).failed).toMatchObject([
      { attempt: 1, error: { code: "STEP_INTERRUPTED" } },
    ]);
  });

  it("survives an eviction while it waits for the confirmation", async () => {
    const t = kit.execution(signup);
    await t.start({ email: newEmail() });
    await t.evict();
    await t.sendEvent("email-confirmed", confirmation);
    await t.advance("7 days");
    expect(await t.result()).toMatchObject({ ok: true });
  });
});

describe("signup: recorded journals", () => {
  // test/journals/signup.json was recorded from a finished signup (see the README: "Replay
  // tests"). Executions started by older code must replay on the code you deploy.
  const journal = recorded as RecordedJournal;

  it("the current code replays the recorded journal", async () => {
    expect(await kit.replay(signup, journal)).toMatchObject({ steps: 4, ended: "completed" });
  });

  it("a renamed step breaks the replay of the recorded journal", async () => {
    // The change you might be about to make: "first charge" renamed "charge".
    const renamed = workflow("signup", async (input: { email: string }, step) => {
      await step.do("create account", () => ({ id: "", email: input.email }));
      await step.waitForEvent("confirmation", { type: "email-confirmed" });
      await step.sleep("trial", "7 days");
      return step.do("charge", () => "never runs");
    });
    await expect(kit.replay(renamed, journal)).rejects.toMatchObject({
      code: "NONDETERMINISM",
      message: expect.stringContaining(
        '"first charge" (do) in the journal but the code now calls "charge"',
      ),
    });
  });
});
