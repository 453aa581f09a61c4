/**
 * The routes of src/index.ts, through the Worker's fetch handler. A signup started by a request
 * runs in real time (its trial is a week), so the routes are checked up to the trial; a signup
 * finished on a test clock (`baton/testing`) shows the result route.
 */
import { env, SELF } from "cloudflare:test";
import { testExecutions } from "baton/testing";
import { describe, expect, it, vi } from "vitest";
import { signup } from "../src/index.ts";

const newEmail = () => `ada+${crypto.randomUUID()}@example.com`;
const url = (email: string, path = "") => `http://app/signups/${encodeURIComponent(email)}${path}`;

describe("signup routes", () => {
  it("starts a signup, takes its confirmation, and shows it in its trial", async () => {
    const email = newEmail();
    const started = await SELF.fetch("http://app/signups", {
      method: "POST",
      body: JSON.stringify({ email }),
    });
    expect(started.status).toBe(201);
    expect(await started.json()).toMatchObject({ id: email, workflow: "signup" });

    // The confirmation may come before the workflow waits for it: it is kept until then.
    const confirmed = await SELF.fetch(url(email, "/confirm"), { method: "POST" });
    expect(confirmed.status).toBe(200);

    // Account created, email confirmed: the week-long trial (a durable sleep) has begun.
    await vi.waitFor(
      async () => {
        const status = await (await SELF.fetch(url(email))).json();
        expect(status).toMatchObject({ status: "sleeping", completedSteps: 2 });
      },
      { timeout: 5_000, interval: 20 },
    );
  });

  it("returns the outcome of a finished signup", async () => {
    // Finished on a test clock: the week passes at once. The route reads the same execution.
    const email = newEmail();
    const t = testExecutions(env.Signups).execution(signup, { id: email });
    try {
      await t.start({ email });
      await t.finish({ "email-confirmed": { at: "2026-01-01T00:00:00.000Z" } });
      const result = await SELF.fetch(url(email, "/result"));
      expect(await result.json()).toMatchObject({
        ok: true,
        value: { account: expect.stringMatching(/^acct_/), charge: expect.stringMatching(/^ch_/) },
      });
    } finally {
      t.dispose();
    }
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
    const noEmail = await SELF.fetch("http://app/signups", {
      method: "POST",
      body: JSON.stringify({ email: 42 }),
    });
    expect(noEmail.status).toBe(400);
    const unknown = await SELF.fetch(url("nobody@example.com"));
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ code: "EXECUTION_NOT_FOUND" });
  });
});
