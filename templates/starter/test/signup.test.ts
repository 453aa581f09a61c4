/**
 * The routes of src/index.ts, through the Worker's fetch handler, in real time (a trial of 0
 * seconds). The workflow itself — its week-long trial, retries, crashes — is tested on a test
 * clock in workflow.test.ts.
 */
import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";

const newEmail = () => `ada+${crypto.randomUUID()}@example.com`;

describe("signup routes", () => {
  it("starts a signup, takes its confirmation, and returns its outcome", async () => {
    const email = newEmail();
    const started = await SELF.fetch("http://app/signups", {
      method: "POST",
      body: JSON.stringify({ email, trial: "0 seconds" }),
    });
    expect(started.status).toBe(201);
    expect(await started.json()).toMatchObject({ id: email, workflow: "signup" });

    // The confirmation may come before the workflow waits for it: it is kept until then.
    const confirmed = await SELF.fetch(`http://app/signups/${encodeURIComponent(email)}/confirm`, {
      method: "POST",
    });
    expect(confirmed.status).toBe(200);

    const result = await SELF.fetch(`http://app/signups/${encodeURIComponent(email)}/result`);
    expect(await result.json()).toMatchObject({
      ok: true,
      value: { account: expect.stringMatching(/^acct_/), charge: expect.stringMatching(/^ch_/) },
    });
    const status = await SELF.fetch(`http://app/signups/${encodeURIComponent(email)}`);
    expect(await status.json()).toMatchObject({ status: "completed", completedSteps: 4 });
  });

  it("starting the same signup twice returns the same execution", async () => {
    const email = newEmail();
    const post = () =>
      SELF.fetch("http://app/signups", { method: "POST", body: JSON.stringify({ email }) });
    const [first, second] = [await post(), await post()];
    expect(second.status).toBe(201);
    const { createdAt } = (await first.json()) as { createdAt: number };
    expect(await second.json()).toMatchObject({ id: email, createdAt });
  });

  it("answers bad requests with 400 and unknown signups with 404", async () => {
    const bad = await SELF.fetch("http://app/signups", { method: "POST", body: "not json" });
    expect(bad.status).toBe(400);
    const badTrial = await SELF.fetch("http://app/signups", {
      method: "POST",
      body: JSON.stringify({ email: newEmail(), trial: "a while" }),
    });
    expect(badTrial.status).toBe(400);
    expect(await badTrial.json()).toMatchObject({ code: "INVALID_DURATION" });
    const unknown = await SELF.fetch("http://app/signups/nobody@example.com");
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ code: "EXECUTION_NOT_FOUND" });
  });
});
