import {
  type Duration,
  ExecutionActor,
  executions,
  isBatonError,
  NonRetryableError,
  workflow,
} from "baton";

export interface Env {
  Signups: DurableObjectNamespace<Signups>;
  /**
   * The free trial before the first charge (default "7 days"). Set by whoever runs the Worker,
   * never by a request: `npm run dev -- --var TRIAL:"10 seconds"` to try the whole signup by hand.
   */
  TRIAL?: string;
}

/**
 * The services this Worker calls. Replace them with your own (a fetch to your API, a D1 write
 * ...); tests spy on them with `vi.spyOn(accounts, "create")`.
 */
export const accounts = {
  async create(email: string, idempotencyKey: string): Promise<{ id: string; email: string }> {
    // Send idempotencyKey along (as an Idempotency-Key header, say): the service then creates
    // the account once even when a retried attempt calls it again.
    return { id: `acct_${idempotencyKey.replace(/\W+/g, "_")}`, email };
  },
};
export const billing = {
  async charge(account: string, idempotencyKey: string): Promise<{ id: string; account: string }> {
    return { id: `ch_${idempotencyKey.replace(/\W+/g, "_")}`, account };
  },
};

export interface SignupInput {
  email: string;
}

/**
 * A signup: create the account (retried on failure), wait for the user to confirm their email
 * (up to a day), let the free trial run (a week: a durable sleep, no Worker running), then
 * charge. Each step is journaled: a crash or a redeploy resumes where it was, without creating
 * the account or charging twice.
 */
export const signup = workflow("signup", async (input: SignupInput, step, { env }) => {
  const account = await step.do(
    "create account",
    { retries: { limit: 3, delay: "1 second", backoff: "exponential" } },
    async ({ idempotencyKey }) => {
      if (!input.email.includes("@")) throw new NonRetryableError("not an email address");
      return accounts.create(input.email, idempotencyKey);
    },
  );
  const confirmed = await step.waitForEvent<{ at: string }>("confirmation", {
    type: "email-confirmed",
    timeout: "1 day",
  });
  // The sleep's end is journaled when it starts: a later change of TRIAL does not move it.
  await step.sleep("trial", ((env as Env).TRIAL ?? "7 days") as Duration);
  const charge = await step.do(
    "first charge",
    { retries: { limit: 2, delay: "1 minute", backoff: "exponential" } },
    async ({ idempotencyKey }) => billing.charge(account.id, idempotencyKey),
  );
  return { account: account.id, confirmedAt: confirmed.payload.at, charge: charge.id };
});

/** The Execution actor that runs the workflows of this Worker. */
export class Signups extends ExecutionActor<Env> {
  readonly workflows = [signup];
  protected override readonly childBinding = "Signups";
}

export default {
  async fetch(request, env): Promise<Response> {
    const url = new URL(request.url);
    const runs = executions(env.Signups);
    try {
      // POST /signups {"email": "ada@example.com"} — starts (or returns) that signup.
      if (request.method === "POST" && url.pathname === "/signups") {
        const body = (await request.json().catch(() => null)) as { email?: unknown } | null;
        if (typeof body?.email !== "string") {
          return Response.json({ error: 'send JSON: {"email": "..."}' }, { status: 400 });
        }
        const run = await runs.start(signup, { email: body.email }, { id: body.email });
        return Response.json(await run.status(), { status: 201 });
      }
      // POST /signups/<email>/confirm — the user clicked the link.
      const confirm = /^\/signups\/([^/]+)\/confirm$/.exec(url.pathname);
      if (request.method === "POST" && confirm?.[1]) {
        const run = runs.get(signup, decodeURIComponent(confirm[1]));
        return Response.json(
          await run.sendEvent("email-confirmed", { at: new Date().toISOString() }),
        );
      }
      // GET /signups/<email> — its status; GET /signups/<email>/result — its outcome.
      const show = /^\/signups\/([^/]+)(\/result)?$/.exec(url.pathname);
      if (request.method === "GET" && show?.[1]) {
        const run = runs.get(signup, decodeURIComponent(show[1]));
        return Response.json(show[2] ? await run.result({ timeout: "5s" }) : await run.status());
      }
      return Response.json(
        {
          routes: [
            "POST /signups",
            "POST /signups/:email/confirm",
            "GET /signups/:email",
            "GET /signups/:email/result",
          ],
        },
        { status: 404 },
      );
    } catch (error) {
      if (isBatonError(error)) {
        const status = error.code === "EXECUTION_NOT_FOUND" ? 404 : 400;
        return Response.json({ code: error.code, message: error.message }, { status });
      }
      throw error;
    }
  },
} satisfies ExportedHandler<Env>;
