import { Actor } from "../src/foundation/actor.ts";
import { type Duration, parseDuration } from "../src/foundation/duration.ts";
import { BatonError, checkId, invalidArgument } from "../src/foundation/errors.ts";
import type { Migration } from "../src/foundation/migrations.ts";
import { runMigrations } from "../src/foundation/migrations.ts";

/** Schema scope of the Lock actor's tables. */
const LOCK_SCHEMA = "baton.lock";

const LOCK_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "lock, holders, waiters",
    up: (sql) => {
      sql.run(`CREATE TABLE _baton_lock (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        permits INTEGER NOT NULL CHECK (permits > 0),
        fence INTEGER NOT NULL DEFAULT 0
      ) STRICT`);
      sql.run(`CREATE TABLE _baton_lock_holders (
        token TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        fence INTEGER NOT NULL,
        waiter TEXT,
        acquired_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
      ) STRICT`);
      // FIFO queue: seq order is grant order. A waiter row stays after its grant ('granted')
      // or timeout ('timed_out') for a while, so a caller re-attaching with its waiter id gets
      // the same answer.
      sql.run(`CREATE TABLE _baton_lock_waiters (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        waiter TEXT NOT NULL UNIQUE,
        owner TEXT NOT NULL,
        ttl_ms INTEGER NOT NULL,
        enqueued_at INTEGER NOT NULL,
        deadline INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('waiting', 'granted', 'timed_out')),
        token TEXT
      ) STRICT`);
    },
  },
];

/** Longest lease a caller may ask for. */
export const MAX_LEASE_TTL = 24 * 60 * 60 * 1000;
/** Longest a caller may wait in the queue in one acquire. */
export const MAX_LOCK_WAIT = 60 * 60 * 1000;
/** Most permits a semaphore may have. */
export const MAX_PERMITS = 1000;
/** How long an answered waiter is remembered for callers that re-attach. */
const WAITER_MEMORY_MS = 10 * 60 * 1000;

/** A granted lease. Pass it back to `renew` and `release`; send `fence` to the systems you write. */
export interface Lease {
  /** Unguessable id of this grant. */
  token: string;
  /** Strictly increases with every grant of this lock, across evictions and expiries. */
  fence: number;
  /** When the lease ends unless renewed (ms since the epoch). */
  expiresAt: number;
  owner: string;
}

/** One current holder, as `status()` shows it. */
export interface Holder {
  owner: string;
  fence: number;
  acquiredAt: number;
  expiresAt: number;
}

/** The lock's state. */
export interface LockStatus {
  /** Concurrent holders allowed (1 for a mutex). */
  permits: number;
  holders: Holder[];
  /** Callers waiting in line. */
  queue: number;
  /** True when no permit is free. */
  locked: boolean;
  /** The last fence issued (0 if never granted). */
  fence: number;
}

/** Options of `acquire`. */
export interface AcquireOptions {
  /** Who holds it (for status and debugging). 1-256 characters. */
  owner: string;
  /** Lease length; it expires unless renewed. At most 24 hours. */
  ttl: Duration;
  /** Wait in line up to this long (FIFO) instead of answering at once. At most 1 hour. */
  wait?: Duration;
  /**
   * Semaphore size (default 1, a mutex). Fixed when the lock is first taken: a caller that asks
   * for another number — omitting it asks for 1 — gets `PERMITS_MISMATCH`, so no caller can turn
   * a mutex into a semaphore.
   */
  permits?: number;
  /**
   * A secret that identifies this caller in the queue: a call that presents it again (after a
   * broken connection; the typed client does it for you) keeps its place or collects the lease
   * granted meanwhile, and `abandon` takes it as proof of who is giving up. Whoever knows it can
   * claim the lease, so make it unguessable (at least 16 characters, e.g. `crypto.randomUUID()`)
   * and never show it: it is not the `owner`, which `status()` shows to everyone.
   */
  waiterId?: string;
}

/** What `acquire` answers. */
export type AcquireResult =
  | { acquired: true; lease: Lease }
  | { acquired: false; holders: Holder[]; queue: number };

type LockTimers = {
  /** The earliest lease's TTL ran out: expire due leases, hand their permits on. */
  sweep: Record<string, never>;
  /** A waiter's wait ran out. */
  "wait-timeout": { waiter: string };
  /** Forget answered waiters. */
  forget: Record<string, never>;
};

interface HolderRow {
  token: string;
  owner: string;
  fence: number;
  waiter: string | null;
  acquired_at: number;
  expires_at: number;
  [column: string]: string | number | null;
}

interface WaiterRow {
  seq: number;
  waiter: string;
  owner: string;
  ttl_ms: number;
  enqueued_at: number;
  deadline: number;
  state: "waiting" | "granted" | "timed_out";
  token: string | null;
  [column: string]: string | number | null;
}

/**
 * The Lock actor: one instance per lock name. Leases with a TTL (expired by alarm), fencing
 * tokens that strictly increase, renew and release, a persisted FIFO wait queue with a wait
 * timeout (`LOCK_TIMEOUT`), and an optional semaphore mode (N permits).
 *
 * Bind it under `new_sqlite_classes` (subclass it or export it as is) and call it through the
 * typed client {@link locks}.
 *
 * @example
 * ```ts
 * export { LockActor as Locks } from "baton";
 * // wrangler.toml: [[durable_objects.bindings]] name = "Locks", class_name = "Locks"
 * const result = await locks(env.Locks).withLock("invoice-42", { owner: "worker-a", ttl: "30s", wait: "5s" },
 *   async (lease) => writeInvoice({ fence: lease.fence }));
 * ```
 */
export class LockActor<Env = unknown> extends Actor<Env, LockTimers> {
  readonly #waiting = new Map<
    string,
    { resolve: (lease: Lease) => void; reject: (e: unknown) => void }
  >();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    runMigrations(this.sql, LOCK_SCHEMA, LOCK_MIGRATIONS);
    this.timers
      .on("sweep", async () => {
        await this.#expireDue();
        const next = this.sql.value<number>("SELECT MIN(expires_at) FROM _baton_lock_holders");
        if (next !== null && next !== undefined) await this.#armSweep(next);
      })
      .on("wait-timeout", ({ waiter }) => {
        const row = this.sql.one<WaiterRow>(
          "SELECT * FROM _baton_lock_waiters WHERE waiter = ?",
          waiter,
        );
        if (row && row.deadline <= this.now()) this.#timeOut(waiter);
      })
      .on("forget", async () => {
        this.sql.run(
          "DELETE FROM _baton_lock_waiters WHERE state <> 'waiting' AND enqueued_at < ?",
          this.now() - WAITER_MEMORY_MS,
        );
        if (
          this.sql.value<number>(
            "SELECT COUNT(*) FROM _baton_lock_waiters WHERE state <> 'waiting'",
          )
        ) {
          await this.timers.schedule("forget", {}, { after: WAITER_MEMORY_MS }, { key: "forget" });
        }
      });
  }

  /**
   * Takes the lock (a permit of it) for `ttl`. Without `wait`, answers at once with who holds it;
   * with `wait`, queues FIFO until granted.
   *
   * @throws BatonError `LOCK_TIMEOUT` when `wait` runs out (the caller is out of the queue, and
   *   nothing is held for it); `PERMITS_MISMATCH`; `INVALID_ARGUMENT`, `INVALID_DURATION`.
   */
  async acquire(options: AcquireOptions): Promise<AcquireResult> {
    const { owner, ttlMs, waitMs, permits, waiterId } = checkAcquire(options);
    await this.#expireDue();
    this.#ensureLock(permits);
    if (waiterId !== undefined) {
      const known = this.sql.one<WaiterRow>(
        "SELECT * FROM _baton_lock_waiters WHERE waiter = ?",
        waiterId,
      );
      const reattached = known ? await this.#reattach(known) : undefined;
      if (reattached) return reattached;
      const held = this.sql.one<HolderRow>(
        "SELECT * FROM _baton_lock_holders WHERE waiter = ?",
        waiterId,
      );
      if (held) return { acquired: true, lease: toLease(held) };
    }
    const queued =
      this.sql.value<number>("SELECT COUNT(*) FROM _baton_lock_waiters WHERE state = 'waiting'") ??
      0;
    // Fair: a free permit goes to the queue first.
    if (queued === 0 && this.#free() > 0) {
      const lease = this.#grant(owner, ttlMs, waiterId ?? null);
      await this.#armExpiry(lease);
      return { acquired: true, lease };
    }
    if (waitMs === undefined || waitMs === 0) {
      return { acquired: false, holders: this.#holders(), queue: queued };
    }
    const waiter = waiterId ?? crypto.randomUUID();
    const now = this.now();
    this.sql.run(
      `INSERT INTO _baton_lock_waiters (waiter, owner, ttl_ms, enqueued_at, deadline, state)
       VALUES (?, ?, ?, ?, ?, 'waiting')`,
      waiter,
      owner,
      ttlMs,
      now,
      now + waitMs,
    );
    // A waiter id asked again after timing out may still have its old timer pending: replace it.
    await this.timers.cancel(`wait:${waiter}`);
    await this.timers.schedule(
      "wait-timeout",
      { waiter },
      { at: now + waitMs },
      { key: `wait:${waiter}` },
    );
    return { acquired: true, lease: await this.#await(waiter) };
  }

  /**
   * Extends a lease you hold by `ttl` from now.
   *
   * @throws BatonError `LEASE_EXPIRED` if it ran out, `NOT_HOLDER` if it was released or is not
   *   yours; nothing changes then.
   */
  async renew(lease: Lease, ttl: Duration): Promise<Lease> {
    checkLease(lease);
    const ttlMs = checkTtl(ttl);
    await this.#expireDue();
    const held = this.#requireHeld(lease);
    const expiresAt = this.now() + ttlMs;
    this.sql.run(
      "UPDATE _baton_lock_holders SET expires_at = ? WHERE token = ?",
      expiresAt,
      held.token,
    );
    const renewed = { ...toLease(held), expiresAt };
    // The sweep may now come early for this lease: it finds nothing due and re-arms.
    await this.#armSweep(expiresAt);
    return renewed;
  }

  /**
   * Releases a lease; the next waiter gets the permit at once.
   *
   * @throws BatonError `LEASE_EXPIRED` or `NOT_HOLDER` for a stale lease (nothing changes).
   */
  async release(lease: Lease): Promise<void> {
    checkLease(lease);
    await this.#expireDue();
    const held = this.#requireHeld(lease);
    this.sql.run("DELETE FROM _baton_lock_holders WHERE token = ?", held.token);
    await this.#grantNext();
  }

  /** Holders, their expiries, the queue length and the last fence. */
  async status(): Promise<LockStatus> {
    await this.#expireDue();
    const lock = this.sql.one<{ permits: number; fence: number }>(
      "SELECT permits, fence FROM _baton_lock WHERE id = 1",
    );
    const holders = this.#holders();
    const permits = lock?.permits ?? 1;
    return {
      permits,
      holders,
      queue:
        this.sql.value<number>(
          "SELECT COUNT(*) FROM _baton_lock_waiters WHERE state = 'waiting'",
        ) ?? 0,
      locked: holders.length >= permits,
      fence: lock?.fence ?? 0,
    };
  }

  /** True when no permit is free. */
  async isLocked(): Promise<boolean> {
    return (await this.status()).locked;
  }

  /**
   * For a caller giving up: returns the lease granted to `waiterId` if it still holds one
   * (`claimed`), else withdraws its place in the queue (`withdrawn`), else does nothing (`none`).
   * With `release: true` a lease it holds is released instead of returned (`released`).
   */
  async abandon(
    waiterId: string,
    options: { release?: boolean } = {},
  ): Promise<
    { outcome: "claimed"; lease: Lease } | { outcome: "released" | "withdrawn" | "none" }
  > {
    checkWaiter(waiterId);
    await this.#expireDue();
    const held = this.sql.one<HolderRow>(
      "SELECT * FROM _baton_lock_holders WHERE waiter = ?",
      waiterId,
    );
    if (held) {
      if (!options?.release) return { outcome: "claimed", lease: toLease(held) };
      this.sql.run("DELETE FROM _baton_lock_holders WHERE token = ?", held.token);
      await this.#grantNext();
      return { outcome: "released" };
    }
    const waiting = this.sql.one<WaiterRow>(
      "SELECT * FROM _baton_lock_waiters WHERE waiter = ? AND state = 'waiting'",
      waiterId,
    );
    if (!waiting) return { outcome: "none" };
    this.sql.run("DELETE FROM _baton_lock_waiters WHERE seq = ?", waiting.seq);
    this.#waiting.get(waiterId)?.reject(lockTimeout(waiting));
    this.#waiting.delete(waiterId);
    await this.timers.cancel(`wait:${waiterId}`);
    return { outcome: "withdrawn" };
  }

  // ---- internals ---------------------------------------------------------------------------------

  /** Creates the lock with `permits`, or checks that it has that many (an omitted count is 1). */
  #ensureLock(permits: number): void {
    const lock = this.sql.one<{ permits: number }>("SELECT permits FROM _baton_lock WHERE id = 1");
    if (!lock) {
      this.sql.run("INSERT INTO _baton_lock (id, permits, fence) VALUES (1, ?, 0)", permits);
      return;
    }
    if (permits !== lock.permits) {
      throw new BatonError(
        "PERMITS_MISMATCH",
        `This lock has ${lock.permits} permit(s); the caller asked for ${permits}. Every caller of one lock must agree on its permits.`,
        { permits: lock.permits, requested: permits },
      );
    }
  }

  #free(): number {
    const permits = this.sql.value<number>("SELECT permits FROM _baton_lock WHERE id = 1") ?? 1;
    const held = this.sql.value<number>("SELECT COUNT(*) FROM _baton_lock_holders") ?? 0;
    return permits - held;
  }

  #holders(): Holder[] {
    return this.sql.all<HolderRow>("SELECT * FROM _baton_lock_holders ORDER BY fence").map((h) => ({
      owner: h.owner,
      fence: h.fence,
      acquiredAt: h.acquired_at,
      expiresAt: h.expires_at,
    }));
  }

  /** Issues a lease (fence + 1). Synchronous: call it with no await before its writes commit. */
  #grant(owner: string, ttlMs: number, waiter: string | null): Lease {
    const now = this.now();
    const fence =
      this.sql.value<number>(
        "UPDATE _baton_lock SET fence = fence + 1 WHERE id = 1 RETURNING fence",
      ) ?? 1;
    const token = crypto.randomUUID();
    this.sql.run(
      "INSERT INTO _baton_lock_holders (token, owner, fence, waiter, acquired_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
      token,
      owner,
      fence,
      waiter,
      now,
      now + ttlMs,
    );
    return { token, fence, expiresAt: now + ttlMs, owner };
  }

  /**
   * Makes sure the sweep timer runs by `at`. One timer serves every lease: it is due no later
   * than the earliest expiry (possibly earlier, after a release or a renewal: then it finds
   * nothing due and re-arms), so granting and releasing cost no alarm update in the common case.
   */
  async #armSweep(at: number): Promise<void> {
    const sweep = this.timers.get("sweep");
    if (sweep?.state === "pending") {
      if (sweep.dueAt > at) await this.timers.reschedule("sweep", { at });
      return;
    }
    await this.timers.schedule("sweep", {}, { at }, { key: "sweep" });
  }

  async #armExpiry(lease: Lease): Promise<void> {
    await this.#armSweep(lease.expiresAt);
  }

  /** Hands free permits to waiters, oldest first. */
  async #grantNext(): Promise<void> {
    const granted: Array<{ waiter: string; lease: Lease }> = [];
    while (this.#free() > 0) {
      const next = this.sql.one<WaiterRow>(
        "SELECT * FROM _baton_lock_waiters WHERE state = 'waiting' ORDER BY seq LIMIT 1",
      );
      if (!next) break;
      // Its wait ran out (the timeout alarm is late): it gets LOCK_TIMEOUT, not the lock.
      if (next.deadline <= this.now()) {
        this.#timeOut(next.waiter);
        continue;
      }
      const lease = this.#grant(next.owner, next.ttl_ms, next.waiter);
      this.sql.run(
        "UPDATE _baton_lock_waiters SET state = 'granted', token = ? WHERE seq = ?",
        lease.token,
        next.seq,
      );
      granted.push({ waiter: next.waiter, lease });
    }
    for (const { waiter, lease } of granted) {
      await this.timers.cancel(`wait:${waiter}`);
      await this.#armExpiry(lease);
      this.#waiting.get(waiter)?.resolve(lease);
      this.#waiting.delete(waiter);
    }
    if (granted.length > 0)
      await this.timers.schedule("forget", {}, { after: WAITER_MEMORY_MS }, { key: "forget" });
  }

  #timeOut(waiter: string): void {
    const row = this.sql.one<WaiterRow>(
      "SELECT * FROM _baton_lock_waiters WHERE waiter = ?",
      waiter,
    );
    if (row?.state !== "waiting") return;
    this.sql.run("UPDATE _baton_lock_waiters SET state = 'timed_out' WHERE seq = ?", row.seq);
    this.#waiting.get(waiter)?.reject(lockTimeout(row));
    this.#waiting.delete(waiter);
    void this.timers.schedule("forget", {}, { after: WAITER_MEMORY_MS }, { key: "forget" });
  }

  /**
   * A caller asks again with its waiter id: after a broken connection (it keeps its place, or
   * gets the lease granted meanwhile), or after its wait or its lease ran out (then it is a new
   * request, answered by the caller of this method).
   */
  async #reattach(row: WaiterRow): Promise<AcquireResult | undefined> {
    if (row.state === "granted") {
      const held = row.token
        ? this.sql.one<HolderRow>("SELECT * FROM _baton_lock_holders WHERE token = ?", row.token)
        : undefined;
      if (held) return { acquired: true, lease: toLease(held) };
    } else if (row.state === "waiting") {
      if (this.now() < row.deadline)
        return { acquired: true, lease: await this.#await(row.waiter) };
      this.#timeOut(row.waiter);
    }
    this.sql.run("DELETE FROM _baton_lock_waiters WHERE seq = ?", row.seq);
    return undefined;
  }

  #await(waiter: string): Promise<Lease> {
    // A previous connection of the same waiter is superseded by this one.
    this.#waiting
      .get(waiter)
      ?.reject(
        new BatonError("LOCK_TIMEOUT", "Superseded by a newer call with the same waiter id."),
      );
    return new Promise<Lease>((resolve, reject) => this.#waiting.set(waiter, { resolve, reject }));
  }

  #requireHeld(lease: Lease): HolderRow {
    const held = this.sql.one<HolderRow>(
      "SELECT * FROM _baton_lock_holders WHERE token = ?",
      lease.token,
    );
    const now = this.now();
    if (held && held.expires_at > now) return held;
    if (held || lease.expiresAt <= now) {
      throw new BatonError(
        "LEASE_EXPIRED",
        `The lease with fence ${lease.fence} expired at ${isoTime(held?.expires_at ?? lease.expiresAt)}.`,
        {
          fence: lease.fence,
        },
      );
    }
    throw new BatonError(
      "NOT_HOLDER",
      `The lease with fence ${lease.fence} is not held (it was released or superseded).`,
      {
        fence: lease.fence,
      },
    );
  }

  /** Drops leases past their expiry (when an alarm is late) and hands their permits on. */
  async #expireDue(): Promise<void> {
    const due = this.sql.all<{ token: string }>(
      "SELECT token FROM _baton_lock_holders WHERE expires_at <= ?",
      this.now(),
    );
    if (due.length === 0) return;
    for (const { token } of due) this.#expire(token);
    await this.#grantNext();
  }

  #expire(token: string): void {
    this.sql.run(
      "DELETE FROM _baton_lock_holders WHERE token = ? AND expires_at <= ?",
      token,
      this.now(),
    );
  }
}

/** A time for a message: ISO 8601, or the number as given when no Date can show it. */
function isoTime(ms: number): string {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? `${ms} ms` : date.toISOString();
}

function toLease(row: HolderRow): Lease {
  return { token: row.token, fence: row.fence, expiresAt: row.expires_at, owner: row.owner };
}

function lockTimeout(row: WaiterRow): BatonError {
  return new BatonError(
    "LOCK_TIMEOUT",
    `Timed out after waiting ${row.deadline - row.enqueued_at} ms for the lock.`,
    { waitedMs: row.deadline - row.enqueued_at, owner: row.owner },
  );
}

function checkTtl(ttl: Duration): number {
  const ms = parseDuration(ttl);
  if (ms <= 0 || ms > MAX_LEASE_TTL) {
    invalidArgument("ttl", `must be more than 0 and at most ${MAX_LEASE_TTL} ms (24 hours)`, ttl);
  }
  return ms;
}

function checkAcquire(options: AcquireOptions): {
  owner: string;
  ttlMs: number;
  waitMs: number | undefined;
  permits: number;
  waiterId: string | undefined;
} {
  if (typeof options !== "object" || options === null) {
    invalidArgument("options", "must be { owner, ttl, wait?, permits?, waiterId? }", options);
  }
  const { owner, ttl, wait, permits, waiterId } = options;
  checkId(owner, "owner");
  const ttlMs = checkTtl(ttl);
  let waitMs: number | undefined;
  if (wait !== undefined) {
    waitMs = parseDuration(wait);
    if (waitMs > MAX_LOCK_WAIT)
      invalidArgument("wait", `must be at most ${MAX_LOCK_WAIT} ms (1 hour)`, wait);
  }
  if (
    permits !== undefined &&
    (!Number.isSafeInteger(permits) || permits < 1 || permits > MAX_PERMITS)
  ) {
    invalidArgument("permits", `must be an integer from 1 to ${MAX_PERMITS}`, permits);
  }
  if (waiterId !== undefined) {
    checkWaiter(waiterId);
    if (waiterId === owner) {
      invalidArgument(
        "waiterId",
        "must not be the owner: status() shows owners to everyone, and the waiter id claims the lease",
        waiterId,
      );
    }
  }
  return { owner, ttlMs, waitMs, permits: permits ?? 1, waiterId };
}

/** Shortest waiter id: a waiter id is a secret (see {@link AcquireOptions.waiterId}). */
const MIN_WAITER_ID = 16;

function checkWaiter(waiterId: unknown): asserts waiterId is string {
  checkId(waiterId, "waiterId");
  if ((waiterId as string).length < MIN_WAITER_ID) {
    invalidArgument(
      "waiterId",
      `is a secret that claims the lease: at least ${MIN_WAITER_ID} characters (use crypto.randomUUID()), never a predictable name`,
      waiterId,
    );
  }
}

function checkLease(lease: Lease): void {
  if (
    typeof lease !== "object" ||
    lease === null ||
    typeof lease.token !== "string" ||
    typeof lease.fence !== "number" ||
    typeof lease.expiresAt !== "number"
  ) {
    invalidArgument("lease", "must be a lease returned by acquire()", lease);
  }
}
