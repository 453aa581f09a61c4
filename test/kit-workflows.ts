/**
 * Workflows of the test kit's own tests (test/testing-kit.test.ts), run on `KitExecutions`: a
 * plain Execution actor, as a user's would be (no test clock of its own: the kit holds it).
 */
import { NonRetryableError, workflow } from "../src/index.ts";
import type { Env } from "./worker.ts";

const probe = (env: unknown, name: string) => (env as Env).Probe.getByName(name);

/** Records each attempt of a step in the probe (attempt and idempotency key), then returns. */
async function recorded(env: unknown, name: string, p: string, key: string, attempt: number) {
  await probe(env, p).record(name, { attempt, idempotencyKey: key });
  return { step: name, attempt };
}

/**
 * A subscription: create the account, wait for the payment method (an event), a 7-day trial,
 * charge (retried: the test mocks its failures), a welcome child execution.
 */
export const subscription = workflow(
  "subscription",
  async (input: { user: string; probe: string }, step, ctx) => {
    const account = await step.do(
      "create account",
      { retries: { limit: 3, delay: "1 minute", backoff: "constant" } },
      async ({ attempt, idempotencyKey }) =>
        recorded(ctx.env, "create account", input.probe, idempotencyKey, attempt),
    );
    const card = await step.waitForEvent<{ card: string }>("payment method", {
      type: "card-added",
      timeout: "30 days",
    });
    await step.sleep("trial", "7 days");
    const charge = await step.do(
      "charge",
      { retries: { limit: 2, delay: "10 minutes", backoff: "exponential" } },
      async ({ attempt, idempotencyKey }) => {
        await probe(ctx.env, input.probe).record("charge", { attempt, idempotencyKey });
        if (card.payload.card === "declined") throw new NonRetryableError("card declined");
        return { chargeId: `ch_${input.user}`, attempt };
      },
    );
    const mail = await step.child("welcome", welcome, { user: input.user });
    return { account: account.step, charge: charge.chargeId, mail };
  },
);

/** A child: sleeps a day, then "sends" the welcome mail. */
export const welcome = workflow("welcome", async (input: { user: string }, step) => {
  await step.sleep("a day later", "1 day");
  return step.do("send", () => `welcome, ${input.user}`);
});

export const kitWorkflows = [subscription, welcome] as const;
