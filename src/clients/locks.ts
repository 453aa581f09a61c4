import type {
  AcquireOptions,
  AcquireResult,
  Lease,
  LockActor,
  LockStatus,
} from "../../actors/lock-actor.ts";
import { type Duration, parseDuration } from "../foundation/duration.ts";
import { BatonError, invalidArgument, isBatonError } from "../foundation/errors.ts";
import type { Step } from "../workflow/workflow.ts";
import { connector } from "./executions.ts";

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
  readonly #connect: (name: string) => Stub;

  /** `target`: a Lock actor namespace, or a {@link BatonService} reached by a service binding. */
  constructor(target: DurableObjectNamespace<LockActor> | { lock(name: string): unknown }) {
    this.#connect = connector<Stub>(target, "lock");
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
        return this.#giveUp(
          name,
          waiterId,
          new BatonError(
            "LOCK_TIMEOUT",
            `Timed out after waiting ${waitMs} ms for lock "${name}".`,
            {
              waitedMs: waitMs,
            },
          ),
        );
      }
      try {
        return (await this.#stub(name).acquire({
          ...options,
          waiterId,
          ...(wait === undefined ? {} : { wait }),
        })) as AcquireResult;
      } catch (error) {
        if (isBatonError(error) || !isTransient(error)) throw error;
        if (attempt >= REATTACH_LIMIT) return this.#giveUp(name, waiterId, error);
        // The connection to the lock broke (eviction, restart): re-attach with the same waiter id.
        await new Promise((resolve) => setTimeout(resolve, Math.min(5 * attempt, 50)));
      }
    }
  }

  /**
   * The caller stops trying: take a lease granted to it meanwhile, or withdraw its place in the
   * queue, so nothing is granted to a caller that is gone.
   */
  async #giveUp(name: string, waiterId: string, error: unknown): Promise<AcquireResult> {
    const left = await this.#stub(name)
      .abandon(waiterId)
      .catch(() => undefined);
    if (left?.outcome === "claimed") return { acquired: true, lease: left.lease as Lease };
    throw error;
  }

  /**
   * Releases `lease`, retrying a broken connection a few times. A lease that expired or was
   * released already is free: not an error here.
   */
  async #releaseQuietly(name: string, lease: Lease): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.release(name, lease);
        return;
      } catch (error) {
        if (isBatonError(error, "LEASE_EXPIRED") || isBatonError(error, "NOT_HOLDER")) return;
        if (isBatonError(error) || !isTransient(error) || attempt >= 5) throw error;
        await new Promise((resolve) => setTimeout(resolve, 10 * attempt));
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

  /**
   * Gives up `waiterId`'s claim on lock `name`: releases a lease granted to it and withdraws its
   * place in the queue. For callers that stop waiting for good.
   */
  async abandon(name: string, waiterId: string): Promise<"released" | "withdrawn" | "none"> {
    const result = await this.#stub(name).abandon(waiterId, { release: true });
    return result.outcome === "claimed" ? "none" : result.outcome;
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
    let value: T;
    try {
      value = await fn(result.lease);
    } catch (error) {
      // fn's error is the one to report; a failed release must not replace it.
      await this.#releaseQuietly(name, result.lease).catch(() => undefined);
      throw error;
    }
    await this.#releaseQuietly(name, result.lease);
    return value;
  }

  /**
   * Runs `fn` under lock `name` inside a workflow: acquiring and releasing are journaled steps,
   * so a replay neither re-acquires nor leaks the lock. The waiter id is the acquire step's
   * idempotency key, so an acquire interrupted by a crash re-attaches to its place in the queue.
   * A lease that ran out while `fn` ran is not an error at release. Pick a `ttl` that covers
   * the guarded steps: if the execution is cancelled inside `fn`, the release step never runs
   * and the lock frees itself when the lease's TTL runs out.
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
    // Retried (re-attaching with the same waiter id) if the attempt is cut short; a timeout is final.
    let waiterId: string | undefined;
    let lease: Lease;
    try {
      lease = await step.do(
        `lock:${name}:acquire`,
        { retries: { limit: 3, delay: "1 second", backoff: "constant" } },
        async ({ idempotencyKey }) => {
          waiterId = idempotencyKey;
          const got = await this.acquire(name, {
            ...options,
            owner: options.owner ?? idempotencyKey,
            waiterId: idempotencyKey,
          }).catch((error: unknown) => {
            if (isBatonError(error)) Object.assign(error, { nonRetryable: true });
            throw error;
          });
          if (!got.acquired) {
            throw Object.assign(
              new BatonError(
                "LOCK_TIMEOUT",
                `Lock "${name}" is held; pass \`wait\` to queue for it.`,
                {
                  holders: got.holders.length,
                },
              ),
              { nonRetryable: true },
            );
          }
          return got.lease;
        },
      );
    } catch (error) {
      // Leave no queue entry (or late grant) behind for a workflow that stopped waiting.
      await step.do(`lock:${name}:abandon`, async () => {
        if (waiterId) await this.#stub(name).abandon(waiterId, { release: true });
        return true;
      });
      throw error;
    }
    try {
      return await fn(lease);
    } finally {
      await step.do(`lock:${name}:release`, async () => {
        await this.#releaseQuietly(name, lease);
        return true;
      });
    }
  }

  #stub(name: string): Stub {
    if (typeof name !== "string" || name.length === 0 || name.length > 256) {
      invalidArgument("Lock name", "must be a string of 1 to 256 characters", name);
    }
    return this.#connect(name);
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
export function locks<A extends LockActor<never>>(
  target: DurableObjectNamespace<A> | { lock(name: string): unknown },
): LocksClient {
  return new LocksClient(target as unknown as DurableObjectNamespace<LockActor>);
}
