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

/** At most two at once (a Lock actor semaphore): its journal starts with the `$concurrency` permit. */
export const limited = workflow(
  "limited",
  { concurrency: { limit: 2, binding: "Locks" } },
  async (input: { n: number }, step) => {
    const a = await step.do("a", () => input.n);
    return step.do("b", () => a + 1);
  },
);

/** The attempts of `boom`'s synchronous body, by execution id (the test reads them back). */
export const syncAttempts = new Map<string, number[]>();

/** A step whose (synchronous) body throws on its first attempt. */
export const syncBoom = workflow("sync-boom", async (_input: null, step, ctx) =>
  step.do("boom", { retries: { limit: 3, delay: "1 second" } }, ({ attempt }) => {
    syncAttempts.set(ctx.executionId, [...(syncAttempts.get(ctx.executionId) ?? []), attempt]);
    if (attempt === 1) throw new Error("sync throw");
    return "boom";
  }),
);

/** A child that waits for its approval (an event sent to the child itself). */
export const approval = workflow("approval", async (_input: null, step) => {
  const got = await step.waitForEvent<{ by: string }>("approved", {
    type: "approved",
    timeout: "2 days",
  });
  return got.payload.by;
});

/** A request that needs an approval: a child execution. */
export const request = workflow("request", async (_input: null, step) => ({
  approvedBy: await step.child("approval", approval, null),
}));

/** How `trip` decides, so a test can change its code under a recording. */
export const tripVariant = {
  current: "as recorded" as "as recorded" | "never fails" | "always fails" | "fails at the end",
};
/** The compensations `trip` ran for real, by execution id. */
export const tripUndone = new Map<string, string[]>();

/**
 * A trip: book a hotel (undone by a compensation), wait for the decision; a "no" fails the trip
 * and the hotel is cancelled. A lost race (a timeout sleep) leaves a cancelled step behind.
 */
export const trip = workflow("trip", async (input: { who: string }, step, ctx) => {
  const undo = (what: string) => async () => {
    tripUndone.set(ctx.executionId, [...(tripUndone.get(ctx.executionId) ?? []), what]);
  };
  await step.do("book hotel", { compensate: undo("hotel") }, () => `hotel for ${input.who}`);
  const decision = await Promise.race([
    step.waitForEvent<{ ok: boolean }>("decision", { type: "decision" }),
    step.sleep("give up", "3 days").then(() => ({ payload: { ok: false } })),
  ]);
  const fails =
    tripVariant.current === "always fails" ||
    (tripVariant.current === "as recorded" && !decision.payload.ok);
  if (fails) throw new NonRetryableError("the trip is off");
  const flight = await step.do("book flight", () => "flight");
  if (tripVariant.current === "fails at the end") throw new Error("no seat after all");
  return flight;
});

export const kitWorkflows = [
  subscription,
  welcome,
  limited,
  syncBoom,
  approval,
  request,
  trip,
] as const;
