/**
 * The soak's side of the engine: the workflow that interprets a program (test/soak/program.ts)
 * with real steps, the actor that runs it (a clock the soak may move forward), the Effects object
 * every step body records its effect in, and the in-isolate bus on which the workflow tells the
 * driver where it is.
 *
 * The Durable Objects run in the test's isolate (the Workers vitest integration), so the bus is
 * a plain module-level structure both sides see. It carries data only: the driver polls it from
 * its own request context (a promise resolved from an actor's context could not do I/O there).
 */
import { DurableObject } from "cloudflare:workers";
import {
  BatonError,
  ExecutionActor,
  NonRetryableError,
  type Step,
  workflow,
} from "../../src/index.ts";
import { type DoOp, failsForGood, type Op } from "./program.ts";

export interface SoakEnv {
  SoakExecutions: DurableObjectNamespace<SoakExecutions>;
  Effects: DurableObjectNamespace<Effects>;
}

// ---- The bus: signals from the workflows, observations of journaled outputs ----

export interface Signal {
  execution: string;
  kind: "body" | "wait" | "gate" | "late" | "crash";
  name: string;
}

export const bus = {
  /** Signals per root execution, in order; the driver reads from its own cursor. */
  signals: new Map<string, Signal[]>(),
  /** Every value each step call handed to the workflow (`<execution>|<step>` → distinct values). */
  observed: new Map<string, Set<string>>(),
  /** Moves every soak actor's clock forward (ms). */
  clockOffset: 0,
};

function rootOf(execution: string): string {
  const cut = execution.indexOf("/");
  return cut < 0 ? execution : execution.slice(0, cut);
}

export function signal(execution: string, kind: Signal["kind"], name: string): void {
  const root = rootOf(execution);
  const list = bus.signals.get(root) ?? [];
  bus.signals.set(root, list);
  list.push({ execution, kind, name });
}

function observe(execution: string, name: string, value: unknown): void {
  const key = `${execution}|${name}`;
  const set = bus.observed.get(key) ?? new Set<string>();
  bus.observed.set(key, set);
  set.add(JSON.stringify(value));
}

// ---- The Effects object: one per program, what step bodies did ----

/** A step body's output: its name, and a nonce that tells apart the attempts that produced it. */
export interface Output {
  v: string;
  nonce: string;
}

/** Records every effect (raw) and the first per idempotency key (the dedupe store). */
export class Effects extends DurableObject {
  #sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Cloudflare.Env) {
    super(ctx, env);
    this.#sql = ctx.storage.sql;
    this.#sql.exec(
      `CREATE TABLE IF NOT EXISTS effects (n INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, nonce TEXT NOT NULL);
       CREATE TABLE IF NOT EXISTS dedupe (key TEXT PRIMARY KEY, n INTEGER NOT NULL, nonce TEXT NOT NULL)`,
    );
  }

  /** Records an effect under `key`; the dedupe store keeps the first. */
  record(key: string, nonce: string): void {
    const n = this.#sql
      .exec("INSERT INTO effects (key, nonce) VALUES (?, ?) RETURNING n", key, nonce)
      .one().n;
    this.#sql.exec("INSERT OR IGNORE INTO dedupe (key, n, nonce) VALUES (?, ?, ?)", key, n, nonce);
  }

  /** Everything recorded: raw effects (in order) and the dedupe store (in first-seen order). */
  dump(): {
    effects: Array<{ key: string; nonce: string }>;
    dedupe: Array<{ key: string; nonce: string }>;
  } {
    return {
      effects: this.#sql
        .exec<{ key: string; nonce: string }>("SELECT key, nonce FROM effects ORDER BY n")
        .toArray(),
      dedupe: this.#sql
        .exec<{ key: string; nonce: string }>("SELECT key, nonce FROM dedupe ORDER BY n")
        .toArray(),
    };
  }
}

// ---- The workflow: a program's twin of the reference interpreter ----

export interface SoakInput {
  /** The root execution (whose Effects object records everything). */
  root: string;
  ops: Op[];
}

function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : "UNKNOWN";
}

export const soak = workflow(
  "soak",
  { retries: { limit: 0, delay: 10, backoff: "constant" } },
  async (input: SoakInput, step: Step, ctx): Promise<unknown[]> => {
    const id = ctx.executionId;
    const env = ctx.env as SoakEnv;
    const effects = env.Effects.getByName(input.root);

    const runDo = async (op: DoOp): Promise<string> => {
      const output = await step.do<Output>(
        op.name,
        {
          retries: { limit: op.limit, delay: 10, backoff: "constant" },
          ...(op.mode === "hang" ? { timeout: 1_500 } : {}),
          ...(op.comp
            ? {
                compensate: async (_out: Output, attempt: { idempotencyKey: string }) => {
                  await effects.record(attempt.idempotencyKey, `comp:${op.name}`);
                },
              }
            : {}),
        },
        async ({ attempt, idempotencyKey, signal: abort }) => {
          signal(id, "body", op.name);
          if (attempt <= op.fail || failsForGood(op)) {
            if (op.mode === "nonretryable") {
              throw Object.assign(new NonRetryableError("planned, for good"), {
                code: "SOAK_NON_RETRYABLE",
              });
            }
            if (op.mode === "hang") {
              await new Promise((resolve) => abort.addEventListener("abort", resolve));
              throw abort.reason;
            }
            throw Object.assign(new Error(`planned failure of attempt ${attempt}`), {
              code: "SOAK_FAILED",
            });
          }
          const nonce = crypto.randomUUID();
          await effects.record(idempotencyKey, nonce);
          return { v: op.name, nonce };
        },
      );
      observe(id, op.name, output);
      return output.v;
    };

    const gate = async (name: string, kind: "gate" | "late"): Promise<void> => {
      signal(id, kind, name);
      await step.waitForEvent(`gate-${name}`, { type: `gate-${name}` });
    };

    const run = async (ops: Op[]): Promise<unknown[]> => {
      const values: unknown[] = [];
      for (const op of ops) {
        switch (op.t) {
          case "do":
            values.push(await runDo(op));
            break;
          case "par": {
            const settled = await Promise.allSettled(op.items.map((item) => runDo(item)));
            const failed = settled.find((s) => s.status === "rejected");
            if (failed) throw failed.reason;
            values.push(settled.map((s) => (s.status === "fulfilled" ? s.value : null)));
            break;
          }
          case "sleep":
            await step.sleep(op.name, op.ms);
            values.push("slept");
            break;
          case "wait":
            signal(id, "wait", op.name);
            if (op.mode === "late") {
              try {
                await step.waitForEvent(op.name, { type: `event-${op.name}`, timeout: "1 second" });
                values.push("delivered (late event was not late)");
              } catch (error) {
                if (errorCode(error) !== "EVENT_TIMEOUT") throw error;
                values.push("timeout");
              }
              await gate(op.name, "late");
            } else {
              const event = await step.waitForEvent<string>(op.name, { type: `event-${op.name}` });
              values.push(event.payload);
            }
            break;
          case "gate":
            await gate(op.name, "gate");
            values.push("gate");
            break;
          case "child":
            try {
              values.push(await step.child(op.name, soak, { root: input.root, ops: op.ops }));
            } catch (error) {
              if (!op.catch) throw error;
              values.push(`child-failed:${errorCode(error)}`);
            }
            break;
          case "try":
            try {
              values.push(await run(op.ops));
            } catch (error) {
              if (error instanceof BatonError && error.code === "CANCELLED") throw error;
              values.push(`caught:${errorCode(error)}`);
            }
            break;
        }
      }
      return values;
    };
    return run(input.ops);
  },
);

/** The soak's Execution actor: the soak workflow, and a clock the driver may move forward. */
export class SoakExecutions extends ExecutionActor<SoakEnv> {
  readonly workflows = [soak];
  protected override readonly childBinding = "SoakExecutions";
  protected override now(): number {
    return super.now() + bus.clockOffset;
  }
}
