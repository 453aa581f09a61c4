/**
 * Workflows written against Cloudflare Workflows' API (`baton/workflows`), and the Execution
 * actor that runs them with the ported public programs of test/ports/, for test/compat*.test.ts.
 */

import {
  WorkflowEntrypoint,
  type WorkflowEvent,
  type WorkflowStep,
  type WorkflowStepContext,
} from "../src/compat/index.ts";
import { ExecutionActor, type Migration, workflow } from "../src/index.ts";
import { TestLongWorkflow, TestWorkflow } from "./ports/vitest-workflows.ts";
import { Demo, Demo2, Demo3 } from "./ports/workers-sdk-fixture.ts";
import { MyWorkflow } from "./ports/workflows-starter.ts";

/** What rollbacks and step bodies did, by instance id (the actors run in the tests' isolate). */
export const effects = new Map<string, string[]>();
const note = (id: string, what: string) => effects.set(id, [...(effects.get(id) ?? []), what]);

/** Gates a test opens to let a step body finish (by instance id). */
export const gates = new Map<string, { promise: Promise<void>; open: () => void }>();
export function gate(id: string): { promise: Promise<void>; open: () => void } {
  let open = () => {};
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  const g = { promise, open };
  gates.set(id, g);
  return g;
}

/** A step that runs until the test opens its gate, then another step. */
export class Slow extends WorkflowEntrypoint<unknown, unknown> {
  async run(event: WorkflowEvent<unknown>, step: WorkflowStep) {
    await step.do("slow", async () => {
      await gates.get(event.instanceId)?.promise;
      return "done";
    });
    return step.do("next", async () => "next");
  }
}

/** A whole lifecycle: a step, a sleep, a wait for an event, a step. */
export class Lifecycle extends WorkflowEntrypoint<{ TEST_TOKEN: string }, { order: string }> {
  async run(event: WorkflowEvent<{ order: string }>, step: WorkflowStep) {
    const first = await step.do("prepare", async () => ({
      order: event.payload.order,
      hasEnv: typeof this.env.TEST_TOKEN === "string",
      hasCtx: typeof this.ctx.waitUntil === "function",
    }));
    await step.sleep("nap", "1 hour");
    const approval = await step.waitForEvent<{ by: string }>("approval", { type: "approve" });
    const done = await step.do("finish", async () => `approved by ${approval.payload.by}`);
    return {
      first,
      done,
      eventType: approval.type,
      eventAt: approval.timestamp instanceof Date,
      created: event.timestamp.getTime(),
      instanceId: event.instanceId,
      workflowName: event.workflowName,
    };
  }
}

/** The step context of a repeated step name, and a delay function. */
export class Contexts extends WorkflowEntrypoint<unknown, unknown> {
  async run(_event: WorkflowEvent<unknown>, step: WorkflowStep) {
    const seen: Array<Pick<WorkflowStepContext, "step" | "attempt"> & { limit: number }> = [];
    for (let i = 0; i < 3; i++) {
      seen.push(
        await step.do("tick", async (ctx) => ({
          step: ctx.step,
          attempt: ctx.attempt,
          limit: ctx.config.retries.limit,
        })),
      );
    }
    const flaky = await step.do(
      "flaky",
      { retries: { limit: 3, delay: ({ ctx }) => `${ctx.attempt * 7} seconds` } },
      async (ctx) => ctx.attempt,
    );
    return { seen, flaky };
  }
}

/** event.timestamp across a replay. */
export class Stamps extends WorkflowEntrypoint<unknown, unknown> {
  async run(event: WorkflowEvent<unknown>, step: WorkflowStep) {
    const before = await step.do("before", async () => event.timestamp.getTime());
    await step.sleep("pause", "1 minute");
    return { before, after: event.timestamp.getTime() };
  }
}

/** Rollbacks (Workflows' saga), then a wait the test ends by terminate or by an error. */
export class Trip extends WorkflowEntrypoint<unknown, { fail?: boolean }> {
  async run(event: WorkflowEvent<{ fail?: boolean }>, step: WorkflowStep) {
    const id = event.instanceId;
    const rollback = {
      rollback: async ({
        ctx,
        error,
        output,
        stepName,
      }: {
        ctx: WorkflowStepContext;
        error: Error;
        output: unknown;
        stepName: string;
      }) => {
        note(
          id,
          `undo ${ctx.step.name}#${ctx.step.count} ${String(output)} ${error.name}: ${error.message} (${stepName})`,
        );
      },
    };
    await step.do("book flight", async () => "FL-1", rollback);
    await step.do("book hotel", { retries: { limit: 0, delay: 0 } }, async () => "HO-2", rollback);
    if (event.payload.fail) {
      await step.do("pay", { retries: { limit: 0, delay: 0 } }, async () => {
        throw new Error("card declined");
      });
    }
    await step.waitForEvent("confirm", { type: "confirm" });
    return "booked";
  }
}

/** Restart from a step: what runs again. */
export class Pipeline3 extends WorkflowEntrypoint<unknown, unknown> {
  async run(event: WorkflowEvent<unknown>, step: WorkflowStep) {
    const id = event.instanceId;
    const one = await step.do("one", async () => {
      note(id, "one");
      return 1;
    });
    const two = await step.do("two", async () => {
      note(id, "two");
      return 2;
    });
    await step.waitForEvent("go", { type: "go" });
    const three = await step.do("three", async () => {
      note(id, "three");
      return 3;
    });
    return one + two + three;
  }
}

/** Workflows' default waitForEvent timeout (24 hours) and its error. */
export class Patient extends WorkflowEntrypoint<unknown, unknown> {
  async run(_event: WorkflowEvent<unknown>, step: WorkflowStep) {
    try {
      await step.waitForEvent("reply", { type: "reply" });
      return "replied";
    } catch (error) {
      return { name: (error as Error).name, message: (error as Error).message };
    }
  }
}

/** One running at a time (a Lock actor semaphore): the next is `queued`. */
export class OneAtATime extends WorkflowEntrypoint<unknown, unknown> {
  static override workflowOptions = { concurrency: { limit: 1, binding: "Locks" } };
  async run(_event: WorkflowEvent<unknown>, step: WorkflowStep) {
    await step.waitForEvent("go", { type: "go" });
    return "went";
  }
}

/** 300 steps without I/O between them: their events share a millisecond of the held clock. */
export class Many extends WorkflowEntrypoint<unknown, unknown> {
  async run(_event: WorkflowEvent<unknown>, step: WorkflowStep) {
    let sum = 0;
    for (let i = 0; i < 300; i++) sum += await step.do("n", async () => i);
    return sum;
  }
}

/** A child with an effect to undo; it ends at once, or holds until cancelled. */
export const kid = workflow("kid", async (input: { tag: string; hold: boolean }, step) => {
  await step.do("effect", { compensate: () => note(input.tag, "kid undone") }, () => {
    note(input.tag, "kid ran");
    return 1;
  });
  if (input.hold) await step.waitForEvent("hold", { type: "never" });
  return "kid";
});

/** A parent of one kid, then a wait. */
export const family = workflow("family", async (input: { tag: string; hold: boolean }, step) => {
  const out = await step.child("kid", kid, input);
  await step.waitForEvent("done", { type: "done" });
  return out;
});

/** Transactional steps: a ledger in the Execution actor's own SQLite. */
export const ledger = workflow(
  "ledger",
  async (input: { account: string; amount: number }, step) => {
    const balance = await step.transaction("credit", (sql) => {
      sql.run("INSERT INTO ledger (account, amount) VALUES (?, ?)", input.account, input.amount);
      return sql.value<number>("SELECT SUM(amount) FROM ledger WHERE account = ?", input.account);
    });
    const after = await step.do("after", () => "notified");
    return { balance, after };
  },
);

/** A transactional step whose body awaits: refused, nothing written. */
export const asyncLedger = workflow("async-ledger", async (input: { account: string }, step) => {
  try {
    await step.transaction("credit", async (sql) => {
      sql.run("INSERT INTO ledger (account, amount) VALUES (?, 1)", input.account);
      await Promise.resolve();
      return 1;
    });
    return "written";
  } catch (error) {
    return (error as { code?: string }).code ?? "no code";
  }
});

/** One that touches Baton's own tables: refused. */
export const sneakyLedger = workflow("sneaky-ledger", async (_input: null, step) =>
  step.transaction("peek", (sql) => sql.value<number>("SELECT COUNT(*) FROM _baton_steps")),
);

const LEDGER_MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: "ledger",
    up: (sql) =>
      sql.run(
        "CREATE TABLE ledger (id INTEGER PRIMARY KEY, account TEXT NOT NULL, amount INTEGER NOT NULL)",
      ),
  },
];

export const compatWorkflows = [
  Demo,
  Demo2,
  Demo3,
  MyWorkflow,
  TestWorkflow,
  TestLongWorkflow,
  Lifecycle,
  Contexts,
  Stamps,
  Trip,
  Pipeline3,
  Patient,
  Slow,
  Many,
  OneAtATime,
  kid,
  family,
  ledger,
  asyncLedger,
  sneakyLedger,
] as const;

/**
 * The Execution actor of the Workflows ports, bound as `Executions` (the name a
 * WorkflowEntrypoint's binding methods look for by default), with a table of its own.
 */
export class CompatExecutions extends ExecutionActor<unknown> {
  readonly workflows = compatWorkflows;

  protected override migrations(): readonly Migration[] {
    return LEDGER_MIGRATIONS;
  }

  /** Reads the table the transactional steps write (an RPC method of the user's subclass). */
  ledgerRows(account: string): Array<{ account: string; amount: number }> {
    return this.sql.all(
      "SELECT account, amount FROM ledger WHERE account = ? ORDER BY id",
      account,
    );
  }
}
