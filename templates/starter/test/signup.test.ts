import { env, SELF } from "cloudflare:test";
import { executions } from "baton";
import { afterEach, describe, expect, it, vi } from "vitest";
import { accounts, signup } from "../src/index.ts";

const newEmail = () => `ada+${crypto.randomUUID()}@example.com`;

afterEach(() => {
  vi.restoreAllMocks();
});

describe("signup", () => {
  it("creates the account, waits for the confirmation, then welcomes", async () => {
    const email = newEmail();
    const started = await SELF.fetch("http://app/signups", {
      method: "POST",
      body: JSON.stringify({ email }),
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
      value: { account: expect.stringMatching(/^acct_/) },
    });
    const status = await SELF.fetch(`http://app/signups/${encodeURIComponent(email)}`);
    expect(await status.json()).toMatchObject({ status: "completed", completedSteps: 4 });
  });

  it("retries a failed account creation with the same idempotency key", async () => {
    const keys: string[] = [];
    const create = accounts.create;
    vi.spyOn(accounts, "create").mockImplementation(async (email, key) => {
      keys.push(key);
      if (keys.length === 1) throw new Error("accounts service unavailable");
      return create(email, key);
    });
    const email = newEmail();
    const run = await executions(env.Signups).start(signup, { email }, { id: email });
    await run.sendEvent("email-confirmed", { at: "2026-01-01T00:00:00.000Z" });
    const result = await run.result({ timeout: "15s" }); // the retry waits its 1 second delay
    expect(result).toMatchObject({ ok: true, value: { confirmedAt: "2026-01-01T00:00:00.000Z" } });
    expect(keys).toHaveLength(2);
    expect(keys[1]).toBe(keys[0]);
    const [created] = await run.journal();
    expect(created).toMatchObject({ name: "create account", status: "completed", attempts: 2 });
  });

  it("fails at once, without retries, for an address that is not one", async () => {
    const id = `nope-${crypto.randomUUID()}`;
    const run = await executions(env.Signups).start(signup, { email: "nope" }, { id });
    const result = await run.result({ timeout: "5s" });
    expect(result).toMatchObject({ ok: false, error: { step: "create account", attempt: 1 } });
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
    const unknown = await SELF.fetch("http://app/signups/nobody@example.com");
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ code: "EXECUTION_NOT_FOUND" });
  });
});
