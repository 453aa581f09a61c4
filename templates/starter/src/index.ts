import { ExecutionActor, executions, isBatonError, NonRetryableError, workflow } from "baton";

export interface Env {
  Signups: DurableObjectNamespace<Signups>;
}

/**
 * The accounts service this Worker calls. Replace it with your own (a fetch to your API, a D1
 * write ...); tests replace it with `vi.spyOn(accounts, "create")`.
 */
export const accounts = {
  async create(email: string, idempotencyKey: string): Promise<{ id: string; email: string }> {
    // Send idempotencyKey along (as an Idempotency-Key header, say): the service then creates
    // the account once even when a retried attempt calls it again.
    return { id: `acct_${idempotencyKey.replace(/\W+/g, "_")}`, email };
  },
};

/**
 * A signup: create the account (retried on failure), wait a moment, then wait for the user to
 * confirm their email (up to a day), then welcome them. Each step is journaled: a crash or a
 * redeploy resumes where it was, without creating the account twice.
 */
export const signup = workflow("signup", async (input: { email: string }, step) => {
  const account = await step.do(
    "create account",
    { retries: { limit: 3, delay: "1 second", backoff: "exponential" } },
    async ({ idempotencyKey }) => {
      if (!input.email.includes("@")) throw new NonRetryableError("not an email address");
      return accounts.create(input.email, idempotencyKey);
    },
  );
  await step.sleep("settle", "1 second");
  const confirmed = await step.waitForEvent<{ at: string }>("confirmation", {
    type: "email-confirmed",
    timeout: "1 day",
  });
  return step.do("welcome", async () => ({
    account: account.id,
    confirmedAt: confirmed.payload.at,
  }));
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
        const email = body?.email;
        if (typeof email !== "string") {
          return Response.json({ error: 'send JSON: {"email": "..."}' }, { status: 400 });
        }
        const run = await runs.start(signup, { email }, { id: email });
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
