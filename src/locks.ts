import type {
  AcquireOptions,
  AcquireResult,
  Lease,
  LockActor,
  LockStatus,
} from "../actors/lock-actor.ts";
import { type Duration, parseDuration } from "./duration.ts";
import { BatonError, invalidArgument, isBatonError } from "./errors.ts";
import type { Step } from "./workflow.ts";

type Stub = DurableObjectStub<LockActor>;

/** How many times a waiting `acquire` re-attaches after a broken connection. */
const REATTACH_LIMIT = 20;

/**
 * The typed client of a Lock actor namespace: one Lock actor per lock name.
 *
 * A waiting `acquire` survives the lock actor being evicted or restarted: the client re-attaches
 * with the same waiter id, keeping its place in the queue (or receiving the lease granted
 * meanwhile).
 */
export class LocksClient {
  readonly #ns: DurableObjectNamespace<LockActor>;

  constructor(ns: DurableObjectNamespace<LockActor>) {
    this.#ns = ns;
  }

  /**
   * Takes lock `name` (see {@link LockActor.acquire}).
   *
   * @throws BatonError `LOCK_TIMEOUT` when `wait` runs out.
   */
  async acquire(name: string, options: AcquireOptions): Promise<AcquireResult> {
    const waiterId = options?.waiterId ?? crypto.randomUUID();
    const waitMs = options?.wait === undefined ? undefined : parseDuration(options.wait);
    const deadline = waitMs === undefined ? undefined : Date.now() + waitMs;
    for (let attempt = 1; ; attempt++) {
      // A re-attach waits only for what is left of the caller's wait.
      const wait = deadline === undefined ? undefined : Math.max(0, deadline - Date.now());
      if (attempt > 1 && wait === 0) {
        throw new BatonError(
          "LOCK_TIMEOUT",
          `Timed out after waiting ${waitMs} ms for lock "${name}".`,
          {
            waitedMs: waitMs,
          },
        );
      }
      try {
        return (await this.#stub(name).acquire({
          ...options,
          waiterId,
          ...(wait === undefined ? {} : { wait }),
        })) as AcquireResult;
      } catch (error) {
        if (isBatonError(error) || !isTransient(error) || attempt >= REATTACH_LIMIT) throw error;
        // The connection to the lock broke (eviction, restart): re-attach with the same waiter id.
        await new Promise((resolve) => setTimeout(resolve, Math.min(5 * attempt, 50)));
      }
    }
  }

  /** Extends a held lease by `ttl` from now. `LEASE_EXPIRED` / `NOT_HOLDER` for a stale one. */
  async renew(name: string, lease: Lease, ttl: Duration): Promise<Lease> {
    return (await this.#stub(name).renew(lease, ttl)) as Lease;
  }

  /** Releases a held lease; the next waiter gets it at once. */
  async release(name: string, lease: Lease): Promise<void> {
    await this.#stub(name).release(lease);
  }

  /** Holders, expiries, queue length, last fence. */
  async status(name: string): Promise<LockStatus> {
    return (await this.#stub(name).status()) as LockStatus;
  }

  /** True when no permit of lock `name` is free. */
  async isLocked(name: string): Promise<boolean> {
    return this.#stub(name).isLocked();
  }

  /**
   * Acquires lock `name`, runs `fn` with the lease, and always releases it — also when `fn`
   * throws. Without `wait` a held lock fails at once with `LOCK_TIMEOUT`.
   *
   * @example
   * ```ts
   * await locks(env.Locks).withLock("account-7", { owner: "payouts", ttl: "30s", wait: "10s" }, async (lease) => {
   *   await db.write({ account: 7, fence: lease.fence }); // the store rejects writes with an older fence
   * });
   * ```
   */
  async withLock<T>(
    name: string,
    options: AcquireOptions,
    fn: (lease: Lease) => Promise<T> | T,
  ): Promise<T> {
    const result = await this.acquire(name, options);
    if (!result.acquired) {
      throw new BatonError(
        "LOCK_TIMEOUT",
        `Lock "${name}" is held by ${result.holders.map((h) => h.owner).join(", ")}; pass \`wait\` to queue for it.`,
        { holders: result.holders.length, queue: result.queue },
      );
    }
    try {
      return await fn(result.lease);
    } finally {
      // A lease that expired meanwhile is already free: nothing to release.
      await this.release(name, result.lease).catch((error: unknown) => {
        if (!isBatonError(error, "LEASE_EXPIRED") && !isBatonError(error, "NOT_HOLDER"))
          throw error;
      });
    }
  }

  /**
   * Runs `fn` under lock `name` inside a workflow: acquiring and releasing are journaled steps,
   * so a replay neither re-acquires nor leaks the lock. The waiter id is the acquire step's
   * idempotency key, so an acquire interrupted by a crash re-attaches to its place in the queue.
   * A lease that ran out while `fn` ran is not an error at release. Pick a `ttl` that covers
   * the guarded steps.
   *
   * @example
   * ```ts
   * const stock = await locks(ctx.env.Locks).inWorkflow(step, `sku-${input.sku}`, { ttl: "1m", wait: "30s" },
   *   async (lease) => step.do("reserve", () => reserve(input.sku, lease.fence)));
   * ```
   */
  async inWorkflow<T>(
    step: Step,
    name: string,
    options: Omit<AcquireOptions, "owner" | "waiterId"> & { owner?: string },
    fn: (lease: Lease) => Promise<T>,
  ): Promise<T> {
    const lease = await step.do(
      `lock:${name}:acquire`,
      { retries: { limit: 0 } },
      async ({ idempotencyKey }) => {
        const got = await this.acquire(name, {
          ...options,
          owner: options.owner ?? idempotencyKey,
          waiterId: idempotencyKey,
        });
        if (!got.acquired) {
          throw new BatonError(
            "LOCK_TIMEOUT",
            `Lock "${name}" is held; pass \`wait\` to queue for it.`,
            {
              holders: got.holders.length,
            },
          );
        }
        return got.lease;
      },
    );
    try {
      return await fn(lease);
    } finally {
      await step.do(`lock:${name}:release`, async () => {
        await this.release(name, lease).catch((error: unknown) => {
          if (!isBatonError(error, "LEASE_EXPIRED") && !isBatonError(error, "NOT_HOLDER"))
            throw error;
        });
        return true;
      });
    }
  }

  #stub(name: string): Stub {
    if (typeof name !== "string" || name.length === 0 || name.length > 256) {
      invalidArgument("Lock name", "must be a string of 1 to 256 characters", name);
    }
    return this.#ns.getByName(name);
  }
}

/** True for errors of a broken connection to a Durable Object, which a retry may fix. */
function isTransient(error: unknown): boolean {
  if (typeof error !== "object" || error === null) return false;
  const e = error as { retryable?: unknown; message?: unknown };
  if (e.retryable === true) return true;
  return (
    typeof e.message === "string" &&
    /reset|disconnect|broken|connection lost|evicted|abort/i.test(e.message)
  );
}

/**
 * The typed client for a Lock actor namespace.
 *
 * @example
 * ```ts
 * const lock = locks(env.Locks);
 * const got = await lock.acquire("report", { owner: "cron", ttl: "1m" });
 * if (got.acquired) {
 *   try { await build(got.lease.fence); } finally { await lock.release("report", got.lease); }
 * }
 * ```
 */
export function locks<A extends LockActor<never>>(ns: DurableObjectNamespace<A>): LocksClient {
  return new LocksClient(ns as unknown as DurableObjectNamespace<LockActor>);
}
