import type {
  AcquireOptions,
  AcquireResult,
  Lease,
  LockActor,
  LockStatus,
} from "../../actors/lock-actor.ts";
import { type Duration, parseDuration } from "../foundation/duration.ts";
import { BatonError, checkId, isBatonError } from "../foundation/errors.ts";
import { checkNotReserved } from "../foundation/reserved.ts";
import type { Step } from "../workflow/workflow.ts";
import { connector } from "./executions.ts";

type Stub = DurableObjectStub<LockActor>;

/**
 * A lease held inside a workflow (see {@link LocksClient.inWorkflow}): the fence to send to the
 * systems you write, its expiry and owner. Its token stays out of the journal, so it is not here.
 */
export type WorkflowLease = Omit<Lease, "token">;

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
  readonly #access: symbol | undefined;

  /**
   * `target`: a Lock actor namespace, or a {@link BatonService} reached by a service binding.
   * Lock names Baton keeps for itself (`concurrency:`, `state:`, `baton:` ...) are refused with
   * `FORBIDDEN`.
   */
  constructor(
    target: DurableObjectNamespace<LockActor> | { lock(name: string): unknown },
    /** Baton's own code passes its private access token here; users pass nothing. */
    access?: symbol,
  ) {
    this.#connect = connector<Stub>(target, "lock");
    this.#access = access;
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
   * secret (`attempt.secret()`: unguessable, stable across retries), so an acquire interrupted by
   * a crash re-attaches to its place in the queue and nobody else can claim its lease. The
   * journal keeps the lease without its token (the fence, the expiry, the owner): whoever may
   * read the journal cannot release or renew it; the release step proves the waiter secret
   * instead. A lease that ran out while `fn` ran is not an error at release. Pick a `ttl` that
   * covers the guarded steps: if the execution is cancelled inside `fn`, the release step never
   * runs and the lock frees itself when the lease's TTL runs out.
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
    fn: (lease: WorkflowLease) => Promise<T>,
  ): Promise<T> {
    // A bad or reserved name fails here, before any step is journaled.
    checkNotReserved(checkId(name, "Lock name"), "Lock name", this.#access);
    // Retried (re-attaching with the same waiter secret) if the attempt is cut short; a timeout is final.
    let waiterId: string | undefined;
    let held: { lease: WorkflowLease; key: string } | Lease;
    try {
      held = await step.do(
        `lock:${name}:acquire`,
        { retries: { limit: 3, delay: "1 second", backoff: "constant" } },
        async (attempt) => {
          // The waiter id claims the lease, so it is the step's secret (stable across retries
          // and restarts, never shown), not its idempotency key, which the owner shows to all.
          waiterId = await attempt.secret();
          const waiter = waiterId;
          // Cancelled (or failing) while queued: leave the queue, so nothing is granted to a
          // run that is gone. (A restart re-attaches with the same secret.)
          attempt.signal.addEventListener(
            "abort",
            () =>
              void this.#stub(name)
                .abandon(waiter, { release: true })
                .catch(() => undefined),
            { once: true },
          );
          if (attempt.attempt > 1) {
            // A Baton version before waiter secrets queued under the idempotency key: a retry
            // after a deploy leaves no such entry behind to be granted to nobody.
            await this.#stub(name)
              .abandon(attempt.idempotencyKey, { release: true })
              .catch(() => undefined);
          }
          const got = await this.acquire(name, {
            ...options,
            owner: options.owner ?? attempt.idempotencyKey,
            waiterId,
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
          const { fence, expiresAt, owner } = got.lease;
          // Journaled without its token; `key` names the waiter secret that releases it.
          return { lease: { fence, expiresAt, owner }, key: attempt.idempotencyKey };
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
    // An acquire journaled by a Baton version before waiter secrets holds the whole lease.
    const legacy = "token" in held ? (held as unknown as Lease) : undefined;
    const acquired = legacy ? undefined : (held as { lease: WorkflowLease; key: string });
    try {
      return await fn(acquired?.lease ?? (legacy as Lease));
    } finally {
      await step.do(`lock:${name}:release`, async (attempt) => {
        if (acquired) {
          // Released by the waiter secret of the acquire step (a lease that ran out: nothing).
          await this.#abandonQuietly(name, await attempt.secret(acquired.key));
          // Names the acquire it ends, so a fork can tell which locks were held where.
          return { released: acquired.key };
        }
        if (legacy) await this.#releaseQuietly(name, legacy);
        return true;
      });
    }
  }

  /** `abandon(…, { release: true })`, retrying a broken connection a few times. */
  async #abandonQuietly(name: string, waiterId: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#stub(name).abandon(waiterId, { release: true });
        return;
      } catch (error) {
        if (isBatonError(error) || !isTransient(error) || attempt >= 5) throw error;
        await new Promise((resolve) => setTimeout(resolve, 10 * attempt));
      }
    }
  }

  #stub(name: string): Stub {
    return this.#connect(checkNotReserved(checkId(name, "Lock name"), "Lock name", this.#access));
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
