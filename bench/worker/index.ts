/**
 * The benchmark Worker. Each route runs one measured repetition inside workerd and answers
 * `{ ms, count }`; bench/run.ts repeats, takes medians and writes BENCHMARKS.md.
 *
 * Times are taken in this Worker around RPC calls: workerd advances `Date.now()` at I/O, and every
 * measured interval here ends with an RPC returning.
 */
import { DurableObject } from "cloudflare:workers";
import { Actor } from "../../src/index.ts";

export interface Env {
  BenchTimers: DurableObjectNamespace<BenchTimers>;
  RawAlarmChain: DurableObjectNamespace<RawAlarmChain>;
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

type Result = { ms: number; count: number };

const benches: Record<string, (env: Env, n: number, run: string) => Promise<Result>> = {
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

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/") return Response.json({ benches: Object.keys(benches) });
    const bench = benches[url.pathname.slice(1)];
    if (!bench) return Response.json({ error: "unknown bench" }, { status: 404 });
    const n = Number(url.searchParams.get("n") ?? "1000");
    const run = url.searchParams.get("run") ?? crypto.randomUUID();
    return Response.json(await bench(env, n, run));
  },
} satisfies ExportedHandler<Env>;
