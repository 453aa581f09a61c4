/**
 * The benchmark Worker. Each route runs one measured repetition inside workerd and answers
 * `{ ms, count }`; bench/run.ts repeats, takes medians and writes BENCHMARKS.md.
 *
 * Times are taken in this Worker around RPC calls: workerd advances `Date.now()` at I/O, and every
 * measured interval here ends with an RPC returning.
 */
import {
  DurableObject,
  WorkflowEntrypoint,
  type WorkflowEvent,
  type WorkflowStep,
} from "cloudflare:workers";
import { newWorkersRpcResponse, RpcTarget } from "capnweb";
import { EXECUTION_MIGRATIONS, EXECUTION_SCHEMA } from "../../src/execution/schema.ts";
import { FRAMEWORK_MIGRATIONS } from "../../src/foundation/actor.ts";
import {
  Actor,
  type BatonApi,
  CheckpointActor,
  checkpoints,
  ExecutionActor,
  ExecutionIndex,
  executionIndex,
  executions,
  gateway,
  LockActor,
  locks,
  runMigrations,
  Sql,
  workflow,
} from "../../src/index.ts";

export interface Env {
  BenchTimers: DurableObjectNamespace<BenchTimers>;
  RawAlarmChain: DurableObjectNamespace<RawAlarmChain>;
  BenchExecutions: DurableObjectNamespace<BenchExecutions>;
  NaiveLoop: DurableObjectNamespace<NaiveLoop>;
  SchemaFloor: DurableObjectNamespace<SchemaFloor>;
  BenchLocks: DurableObjectNamespace<BenchLocks>;
  PlainWrites: DurableObjectNamespace<PlainWrites>;
  BenchCheckpoints: DurableObjectNamespace<BenchCheckpoints>;
  PlainBlobs: DurableObjectNamespace<PlainBlobs>;
  CF_BENCH: Workflow<CfParams>;
  BENCH_TOKEN: string;
  EmptyObject: DurableObjectNamespace<EmptyObject>;
  IndexedExecutions: DurableObjectNamespace<IndexedExecutions>;
  BenchIndex: DurableObjectNamespace<BenchIndex>;
}

// ---- workflows: the same steps in Baton and in Cloudflare Workflows ------------------------------

const steps = workflow("steps", async (input: { n: number }, step) => {
  let last = 0;
  for (let i = 0; i < input.n; i++) last = await step.do(`s${i}`, async () => i);
  return last;
});

const nap = workflow("nap", async (_input: { n: number }, step) => {
  await step.sleep("nap", "1 second");
  return 1;
});

const flaky = workflow("flaky", async (_input: { n: number }, step) =>
  step.do(
    "flaky",
    { retries: { limit: 3, delay: "100ms", backoff: "constant" } },
    async ({ attempt }) => {
      if (attempt <= 2) throw new Error(`attempt ${attempt} fails`);
      return attempt;
    },
  ),
);

/** A trivial child: one step returning its index. */
const kid = workflow("kid", async (input: { i: number }, step) =>
  step.do("work", async () => input.i),
);

/** Fans out to `n` kids (each its own Execution actor) and finalizes over all outcomes. */
const brood = workflow("brood", async (input: { n: number }, step) => {
  const results = await step.children(
    "kids",
    Array.from({ length: input.n }, (_, i) => ({ workflow: kid, input: { i } })),
  );
  return step.do("finalize", async () =>
    distinctOutputs(results.map((r) => (r.ok ? r.value : -1))),
  );
});

/** How many distinct outputs `0 <= i` came back (a lost or failed child makes it fall short). */
function distinctOutputs(values: number[]): number {
  return new Set(values.filter((v) => Number.isInteger(v) && v >= 0)).size;
}

/** `n` steps, each returning the time it finished, `gapMs` of durable sleep between them. */
const ticker = workflow(
  "ticker",
  async (input: { n: number; gapMs: number; delayMs: number }, step) => {
    // Time for the subscriber to connect before the first step.
    await step.sleep("delay", input.delayMs);
    for (let i = 0; i < input.n; i++) {
      await step.do(`t${i}`, async () => Date.now());
      if (i < input.n - 1) await step.sleep(`gap${i}`, input.gapMs);
    }
    return input.n;
  },
);

export class BenchExecutions extends ExecutionActor<Env> {
  readonly workflows = [steps, nap, flaky, kid, brood, ticker];
  protected override readonly childBinding: string = "BenchExecutions";
}

/** The same executions, listed: every status change also goes to the ExecutionIndex. */
export class IndexedExecutions extends BenchExecutions {
  protected override readonly childBinding = "IndexedExecutions";
  protected override readonly indexBinding = "BenchIndex";
}

export class BenchIndex extends ExecutionIndex<Env> {}

type CfParams = { mode: "steps" | "nap" | "flaky" | "kid" | "brood"; n: number };

export class CfBench extends WorkflowEntrypoint<Env, CfParams> {
  override async run(
    event: Readonly<WorkflowEvent<CfParams>>,
    step: WorkflowStep,
  ): Promise<number> {
    const { mode, n } = event.payload;
    if (mode === "kid") return step.do("work", async () => n);
    if (mode === "brood") return this.#brood(event.instanceId, n, step);
    if (mode === "nap") {
      await step.sleep("nap", "1 second");
      return 1;
    }
    if (mode === "flaky") {
      let attempt = 0;
      return step.do(
        "flaky",
        { retries: { limit: 3, delay: 100, backoff: "constant" } },
        async () => {
          attempt++;
          if (attempt <= 2) throw new Error(`attempt ${attempt} fails`);
          return attempt;
        },
      );
    }
    let last = 0;
    for (let i = 0; i < n; i++) last = await step.do(`s${i}`, async () => i);
    return last;
  }

  /**
   * The closest Cloudflare Workflows pattern to Baton's `step.children`: create `n` child
   * instances (batches of 100, the `createBatch` limit), then poll the unfinished ones every 50 ms
   * from steps until all are complete, collecting their outputs.
   */
  async #brood(parent: string, n: number, step: WorkflowStep): Promise<number> {
    const ids = Array.from({ length: n }, (_, i) => `${parent}-k${i}`);
    await step.do("spawn", async () => {
      for (let i = 0; i < n; i += 100) {
        const instances = ids
          .slice(i, i + 100)
          .map((id, j) => ({ id, params: { mode: "kid" as const, n: i + j } }));
        const { errors } = await this.env.CF_BENCH.createBatch({ instances });
        // On a retried step, instances created by the earlier attempt already exist: fine.
        if (errors.some((e) => !/exist/i.test(e.message))) throw new Error(errors[0]!.message);
      }
      return n;
    });
    const outputs = new Map<string, number>();
    for (let round = 0; outputs.size < n; round++) {
      const pending = ids.filter((id) => !outputs.has(id));
      const finished = await step.do(`poll-${round}`, async () => {
        const done: Array<[string, number]> = [];
        await Promise.all(
          pending.map(async (id) => {
            const status = await (await this.env.CF_BENCH.get(id)).status();
            if (status.status === "complete") done.push([id, status.output as number]);
            else if (status.status === "errored" || status.status === "terminated")
              throw new Error(`child ${id} ${status.status}`);
          }),
        );
        return done;
      });
      for (const [id, output] of finished) outputs.set(id, output);
      if (outputs.size < n) await step.sleep(`wait-${round}`, 50);
    }
    return step.do("finalize", async () => distinctOutputs([...outputs.values()]));
  }
}

/** The naive baseline: a plain Durable Object looping over steps, one journal row per step. */
export class NaiveLoop extends DurableObject<Env> {
  async run(n: number): Promise<number> {
    const sql = this.ctx.storage.sql;
    sql.exec("CREATE TABLE IF NOT EXISTS journal (seq INTEGER PRIMARY KEY, output TEXT)");
    sql.exec("DELETE FROM journal");
    let last = 0;
    for (let i = 0; i < n; i++) {
      last = await (async () => i)();
      sql.exec("INSERT INTO journal VALUES (?, ?)", i, JSON.stringify(last));
    }
    return last;
  }
}

/** The floor of the fan-out: a new object that only creates the Execution actor's tables. */
export class SchemaFloor extends DurableObject<Env> {
  ping(): number {
    const sql = new Sql(this.ctx.storage);
    runMigrations(sql, "baton", FRAMEWORK_MIGRATIONS);
    return runMigrations(sql, EXECUTION_SCHEMA, EXECUTION_MIGRATIONS);
  }
}

export class BenchLocks extends LockActor<Env> {}

/** The floor of a fan-out: a new object that answers one RPC and touches no storage. */
export class EmptyObject extends DurableObject<Env> {
  ping(): number {
    return 1;
  }

  /** The gateway floor's hop: a status-shaped constant, no storage. */
  info(id: string): typeof ECHO_INFO {
    return { ...ECHO_INFO, id };
  }
}

/** The floor of an acquire+release pair: two RPCs that each commit one single-row write. */
export class PlainWrites extends DurableObject<Env> {
  put(key: string, value: number): void {
    const sql = this.ctx.storage.sql;
    sql.exec("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value INTEGER)");
    sql.exec(
      "INSERT INTO kv VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      key,
      value,
    );
  }
}

export class BenchCheckpoints extends CheckpointActor<Env> {}

/** The floor of a checkpoint: the same bytes written raw, in rows of at most 2 MB, and read back. */
export class PlainBlobs extends DurableObject<Env> {
  put(key: string, text: string): number {
    const sql = this.ctx.storage.sql;
    sql.exec(
      "CREATE TABLE IF NOT EXISTS blobs (key TEXT, seq INTEGER, bytes BLOB, PRIMARY KEY (key, seq))",
    );
    const bytes = new TextEncoder().encode(text);
    sql.exec("DELETE FROM blobs WHERE key = ?", key);
    const row = 1_900_000;
    for (let i = 0, seq = 0; i < Math.max(bytes.byteLength, 1); i += row, seq++) {
      sql.exec("INSERT INTO blobs VALUES (?, ?, ?)", key, seq, bytes.subarray(i, i + row));
    }
    return bytes.byteLength;
  }

  get(key: string): string {
    const parts = this.ctx.storage.sql
      .exec<{ bytes: ArrayBuffer }>("SELECT bytes FROM blobs WHERE key = ? ORDER BY seq", key)
      .toArray();
    const decoder = new TextDecoder();
    return parts.map((p) => decoder.decode(p.bytes, { stream: true })).join("") + decoder.decode();
  }
}

/** `size` characters: random base64 text (barely compressible) or repeated prose (very compressible). */
function payload(size: number, compressible: boolean): string {
  if (compressible) {
    const prose = "The quick brown fox jumps over the lazy dog while the checkpoint keeps a copy. ";
    return prose.repeat(Math.ceil(size / prose.length)).slice(0, size);
  }
  const bytes = new Uint8Array(Math.ceil((size * 3) / 4));
  for (let i = 0; i < bytes.length; i += 65_536)
    crypto.getRandomValues(bytes.subarray(i, i + 65_536));
  let binary = "";
  for (let i = 0; i < bytes.length; i += 8192)
    binary += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return btoa(binary).slice(0, size);
}

function checkpointBench(size: number, compressible: boolean, baton: boolean) {
  return async (env: Env, n: number, run: string): Promise<Result> => {
    const value = payload(size, compressible);
    const cp = checkpoints(env.BenchCheckpoints);
    const plain = env.PlainBlobs.getByName(`blobs-${run}`);
    const scope = `cp-${run}`;
    // Wake the object outside the measurement.
    if (baton) await cp.list(scope);
    else await plain.put("warm", "");
    const result = await timed(n, async () => {
      for (let i = 0; i < n; i++) {
        if (baton) {
          await cp.save(scope, "doc", value, { keep: 1 });
          const back = await cp.load(scope, "doc");
          if ((back.value as string).length !== size) throw new Error("bad round trip");
        } else {
          await plain.put("doc", value);
          if ((await plain.get("doc")).length !== size) throw new Error("bad round trip");
        }
      }
    });
    return {
      ...result,
      extra: { mb_per_s: Math.round(((n * size) / 1e6 / Math.max(result.ms, 1)) * 1000 * 10) / 10 },
    };
  };
}

async function cfRun(env: Env, params: CfParams, run: string, i = 0): Promise<unknown> {
  const id = `${run}-${i}`;
  // wrangler dev's proxy retries a GET that failed; on a fresh state the local Workflows engine
  // sometimes gets requests cancelled as hung (warm-up runs). The retry follows the instance.
  const instance = await env.CF_BENCH.create({ id, params }).catch(async (error: unknown) => {
    if (/already.exists/.test(String(error))) return env.CF_BENCH.get(id);
    throw error;
  });
  for (;;) {
    const { status, output } = await instance.status();
    if (status === "complete") return output;
    if (status === "errored" || status === "terminated") throw new Error(`workflow ${status}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Baton's scheduler: `n` timers due at once, fired from the timer table over one alarm. */
export class BenchTimers extends Actor<Env, { tick: { i: number } }> {
  #remaining = 0;
  #done: (() => void) | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.timers.on("tick", () => {
      if (--this.#remaining === 0) this.#done?.();
    });
  }

  /** Stores `n` timers due in an hour (so none fires yet). */
  async prepare(n: number): Promise<number> {
    const at = Date.now() + 3_600_000;
    await this.timers.scheduleMany(
      Array.from({ length: n }, (_, i) => ({
        kind: "tick" as const,
        payload: { i },
        when: { at },
      })),
    );
    return this.timers.pendingCount();
  }

  /** Makes every stored timer due now and resolves when the scheduler has fired them all. */
  async fire(): Promise<number> {
    const n = this.timers.pendingCount();
    this.#remaining = n;
    const done = new Promise<void>((resolve) => {
      this.#done = resolve;
    });
    this.sql.run("UPDATE _baton_timers SET due_at = ?", Date.now());
    await this.ctx.storage.setAlarm(Date.now());
    await done;
    return n - this.#remaining;
  }
}

/** The baseline: one alarm per timer, each alarm re-arming the next (`Date.now() + 1`). */
export class RawAlarmChain extends DurableObject<Env> {
  #remaining = 0;
  #fired = 0;
  #done: (() => void) | undefined;

  async fire(n: number): Promise<number> {
    this.#remaining = n;
    this.#fired = 0;
    const done = new Promise<void>((resolve) => {
      this.#done = resolve;
    });
    await this.ctx.storage.setAlarm(Date.now());
    await done;
    return this.#fired;
  }

  override async alarm(): Promise<void> {
    this.#fired++;
    if (--this.#remaining > 0) await this.ctx.storage.setAlarm(Date.now() + 1);
    else this.#done?.();
  }
}

type Result = { ms: number; count: number; extra?: Record<string, number> };

async function timed(count: number, fn: () => Promise<unknown>): Promise<Result> {
  const t0 = Date.now();
  await fn();
  return { ms: Date.now() - t0, count };
}

const batonRun = async (
  env: Env,
  name: "steps" | "nap" | "flaky",
  n: number,
  id: string,
  ns: DurableObjectNamespace<BenchExecutions> = env.BenchExecutions,
) => {
  const result = await executions(ns).execute(name, { n }, { id });
  if (!result.ok) throw new Error(`${name} failed: ${result.error.message}`);
};

const benches: Record<string, (env: Env, n: number, run: string) => Promise<Result>> = {
  "steps/baton": (env, n, run) => timed(n, () => batonRun(env, "steps", n, `steps-${run}`)),
  "steps/cloudflare": (env, n, run) => timed(n, () => cfRun(env, { mode: "steps", n }, run)),
  "steps/naive-do": (env, n, run) => timed(n, () => env.NaiveLoop.getByName(run).run(n)),
  "fanout/baton": (env, n, run) =>
    timed(n * 10, () =>
      Promise.all(
        Array.from({ length: n }, (_, i) => batonRun(env, "steps", 10, `fan-${run}-${i}`)),
      ),
    ),
  "fanout/baton-indexed": (env, n, run) =>
    timed(n * 10, async () => {
      await Promise.all(
        Array.from({ length: n }, (_, i) =>
          batonRun(env, "steps", 10, `ifan-${run}-${i}`, env.IndexedExecutions),
        ),
      );
      // Until the index lists every one of them as completed (it trails by about one RPC).
      for (let tries = 0; ; tries++) {
        const page = await executionIndex(env.BenchIndex).list({
          status: "completed",
          limit: 1000,
        });
        const listed = page.executions.filter((e) => e.id.startsWith(`ifan-${run}-`)).length;
        if (listed === n) return;
        if (tries > 2000) throw new Error(`the index lists ${listed} of ${n} executions`);
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    }),
  "children/baton": async (env, n, run) => {
    const t0 = Date.now();
    const result = await executions(env.BenchExecutions).execute(
      brood,
      { n },
      { id: `brood-${run}` },
    );
    if (!result.ok) throw new Error(`brood failed: ${result.error.message}`);
    return { ms: Date.now() - t0, count: result.value };
  },
  "children/cloudflare": async (env, n, run) => {
    const t0 = Date.now();
    const count = await cfRun(env, { mode: "brood", n }, run);
    return { ms: Date.now() - t0, count: count as number };
  },
  "children/empty-floor": (env, n, run) =>
    timed(n, () =>
      Promise.all(
        Array.from({ length: n }, (_, i) => env.EmptyObject.getByName(`empty-${run}-${i}`).ping()),
      ),
    ),

  "locks/uncontended": async (env, n, run) => {
    const lock = locks(env.BenchLocks);
    const name = `u-${run}`;
    await lock.status(name); // wake the object outside the measurement
    return timed(n, async () => {
      for (let i = 0; i < n; i++) {
        const got = await lock.acquire(name, { owner: "bench", ttl: "30s" });
        if (!got.acquired) throw new Error("lock busy");
        await lock.release(name, got.lease);
      }
    });
  },
  "locks/floor": async (env, n, run) => {
    const stub = env.PlainWrites.getByName(`f-${run}`);
    await stub.put("warm", 0);
    return timed(n, async () => {
      for (let i = 0; i < n; i++) {
        await stub.put("holder", i);
        await stub.put("holder", -i);
      }
    });
  },
  "locks/contended": async (env, n, run) => {
    const lock = locks(env.BenchLocks);
    const name = `c-${run}`;
    await lock.status(name);
    const waits: number[] = [];
    const contenders = 16;
    const perContender = Math.ceil(n / contenders);
    const result = await timed(contenders * perContender, () =>
      Promise.all(
        Array.from({ length: contenders }, async (_, c) => {
          for (let i = 0; i < perContender; i++) {
            const t0 = Date.now();
            const got = await lock.acquire(name, { owner: `c${c}`, ttl: "30s", wait: "1 minute" });
            waits.push(Date.now() - t0);
            if (!got.acquired) throw new Error("not acquired");
            await lock.release(name, got.lease);
          }
        }),
      ),
    );
    waits.sort((a, b) => a - b);
    const pick = (q: number) =>
      waits[Math.min(waits.length - 1, Math.floor(q * waits.length))] ?? 0;
    return { ...result, extra: { p50_wait_ms: pick(0.5), p99_wait_ms: pick(0.99) } };
  },
  "cp/baton-1k": checkpointBench(1024, false, true),
  "cp/plain-1k": checkpointBench(1024, false, false),
  "cp/baton-100k": checkpointBench(100 * 1024, false, true),
  "cp/plain-100k": checkpointBench(100 * 1024, false, false),
  "cp/baton-10m": checkpointBench(10 * 1024 * 1024, true, true),
  "cp/plain-10m": checkpointBench(10 * 1024 * 1024, true, false),
  "fanout/schema-floor": (env, n, run) =>
    timed(n * 10, () =>
      Promise.all(
        Array.from({ length: n }, (_, i) => env.SchemaFloor.getByName(`floor-${run}-${i}`).ping()),
      ),
    ),
  "fanout/cloudflare": (env, n, run) =>
    timed(n * 10, () =>
      Promise.all(
        Array.from({ length: n }, (_, i) => cfRun(env, { mode: "steps", n: 10 }, run, i)),
      ),
    ),
  "sleep/baton": async (env, n, run) => {
    const r = await timed(n, () => batonRun(env, "nap", n, `nap-${run}`));
    return { ...r, ms: r.ms - 1000 };
  },
  "sleep/cloudflare": async (env, n, run) => {
    const r = await timed(n, () => cfRun(env, { mode: "nap", n }, run));
    return { ...r, ms: r.ms - 1000 };
  },
  "retry/baton": (env, n, run) => timed(n, () => batonRun(env, "flaky", n, `flaky-${run}`)),
  "retry/cloudflare": (env, n, run) => timed(n, () => cfRun(env, { mode: "flaky", n }, run)),
  async "timers/baton"(env, n, run) {
    const stub = env.BenchTimers.getByName(`timers-${run}`);
    await stub.prepare(n);
    const t0 = Date.now();
    const count = await stub.fire();
    return { ms: Date.now() - t0, count };
  },
  async "timers/raw-chain"(env, n, run) {
    const stub = env.RawAlarmChain.getByName(`chain-${run}`);
    await stub.fire(1); // wake the object outside the measurement, as prepare() does above
    const t0 = Date.now();
    const count = await stub.fire(n);
    return { ms: Date.now() - t0, count };
  },
};

/** The gateway under test: the bench workflows, behind the token in bench/wrangler.toml. */
const api = gateway({
  workflows: [steps, ticker],
  auth: { secret: "BENCH_TOKEN" },
  bindings: { executions: "BenchExecutions" },
});
export type BenchApi = BatonApi<[typeof steps, typeof ticker]>;

/** The bare baseline: a capnweb target answering `status(id)` with a constant of the same shape. */
class Echo extends RpcTarget {
  status(id: string) {
    return { ...ECHO_INFO, id };
  }
}
const ECHO_INFO = {
  id: "",
  workflow: "steps",
  version: 1,
  mode: "workflow",
  status: "completed",
  currentStep: "s0",
  stepCount: 1,
  completedSteps: 1,
  totalSteps: null,
  attempts: 1,
  run: 1,
  createdAt: 0,
  updatedAt: 0,
  endedAt: 0,
  error: null,
};
export type EchoApi = Echo;

/**
 * The floor of a gateway call: the bare target plus one native RPC to a Durable Object that
 * answers with the same constant (no storage), the hop every gateway call to an actor makes.
 */
class EchoViaObject extends RpcTarget {
  readonly #env: Env;
  constructor(env: Env) {
    super();
    this.#env = env;
  }
  async status(id: string) {
    return await this.#env.EmptyObject.getByName("gateway-floor").info(id);
  }
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    const served = await api.fetch(request, env);
    if (served) return served;
    if (url.pathname === "/echo-rpc") return newWorkersRpcResponse(request, new Echo());
    if (url.pathname === "/floor-rpc") {
      return newWorkersRpcResponse(request, new EchoViaObject(env));
    }
    if (url.pathname === "/") return Response.json({ benches: Object.keys(benches) });
    const bench = benches[url.pathname.slice(1)];
    if (!bench) return Response.json({ error: "unknown bench" }, { status: 404 });
    const n = Number(url.searchParams.get("n") ?? "1000");
    const run = url.searchParams.get("run") ?? crypto.randomUUID();
    return Response.json(await bench(env, n, run));
  },
} satisfies ExportedHandler<Env>;
