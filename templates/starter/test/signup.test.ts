import { env, SELF } from "cloudflare:test";
import { executions } from "baton";
import { describe, expect, it } from "vitest";
import { signup } from "../src/index.ts";

describe("signup", () => {
  it("creates the account, waits for the confirmation, then welcomes", async () => {
    const email = `ada+${crypto.randomUUID()}@example.com`;
    const started = await SELF.fetch("http://app/signups", {
      method: "POST",
      body: JSON.stringify({ email }),
    });
    expect(started.status).toBe(201);
    // The confirmation may come before the workflow waits for it: it is kept until then.
    await SELF.fetch(`http://app/signups/${encodeURIComponent(email)}/confirm`, { method: "POST" });
    const result = await executions(env.Signups).get(signup, email).result({ timeout: "10s" });
    expect(result.ok).toBe(true);
    if (result.ok) expect(result.value.account).toMatch(/^acct_/);
  });

  it("fails at once, without retries, for an address that is not one", async () => {
    const run = await executions(env.Signups).start(signup, { email: "nope" }, { id: "nope" });
    const result = await run.result({ timeout: "5s" });
    expect(result).toMatchObject({ ok: false, error: { step: "create account", attempt: 1 } });
  });
});
