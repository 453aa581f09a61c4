/**
 * The lock soak's actors: the Lock actor under soak (with a clock the soak moves forward) and the
 * external monitor that sees every critical section. (Owned by the lock soak; see
 * test/soak/locks.soak.ts.)
 *
 * What the monitor checks — the Lock actor's own promise: at any moment of the lock's clock, at
 * most one lease is valid (granted, not released, not past its expiry), and fences strictly
 * increase with every grant.
 *
 * - A critical section opens at `enter(holder, fence, expiresAt)` (right after the grant) and
 *   closes at `leave` (right before the release). `renewed` moves its expiry.
 * - An **overlap** is an `enter` while another section is open AND its lease is still valid on
 *   the lock's clock (`expiresAt > now`): two holders inside with valid leases at once. A
 *   section whose holder stalled (stopped renewing and releasing) stays open in the monitor
 *   after its expiry, but it no longer counts: the lock promised nothing past the expiry, and
 *   what protects the resource from then on is the fence.
 * - A **fence regression** is an `enter` whose fence is not above every fence entered before
 *   (a repeated fence included).
 * - The monitor is also the fenced resource: `write(fence)` is refused once a higher fence has
 *   entered or written (as a store that keeps the highest fence it has seen). A stalled holder
 *   writes late, after its successor entered: that write must be refused (the soak counts an
 *   accepted one as a **stale write**, a failure: the successor's fence was not higher).
 *
 * The Lock actor and the monitor read the same clock (`lockClock`, kept on `globalThis` so that
 * every module instance of the isolate shares it): real time plus the offset the soak adds to
 * make a stalled lease expire at once.
 */
import { DurableObject } from "cloudflare:workers";
import { LockActor } from "../../src/index.ts";

/** The lock soak's clock: `Date.now() + offset`, shared by the Lock actor and the monitor. */
const shared = globalThis as unknown as Record<symbol, { offset: number } | undefined>;
const CLOCK = Symbol.for("baton.soak.lockClock");
shared[CLOCK] ??= { offset: 0 };
export const lockClock: { offset: number } = shared[CLOCK];

/** The lock's time now (ms since the epoch). */
export function lockNow(): number {
  return Date.now() + lockClock.offset;
}

/** The Lock actor under soak: its clock is the soak's. */
export class SoakLocks extends LockActor {
  protected override now(): number {
    return lockNow();
  }
}

/** What the monitor found, for the summary line and the failure details. */
export interface MonitorReport {
  sections: number;
  overlaps: number;
  regressions: number;
  /** Writes accepted by the fenced resource. */
  writes: number;
  /** Writes refused by fence (stalled holders writing after their successor entered). */
  refused: number;
  /** Sections entered after their own lease had already expired (a very slow holder). */
  lateEnters: number;
  /** Leaves of sections that were never entered or had been left already. */
  badLeaves: number;
  /** Sections still open. */
  open: number;
  maxFence: number;
  /** The first problems, in order. */
  problems: string[];
}

const MAX_PROBLEMS = 20;

/** Sees every critical section enter and leave; the fenced resource the holders write to. */
export class LockMonitor extends DurableObject {
  #sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Cloudflare.Env) {
    super(ctx, env);
    this.#sql = ctx.storage.sql;
    this.#sql.exec(
      `CREATE TABLE IF NOT EXISTS sections (
         fence INTEGER PRIMARY KEY, holder TEXT NOT NULL, entered_at INTEGER NOT NULL,
         expires_at INTEGER NOT NULL, left_at INTEGER);
       CREATE TABLE IF NOT EXISTS open_sections (
         fence INTEGER PRIMARY KEY, holder TEXT NOT NULL, expires_at INTEGER NOT NULL);
       CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL);
       CREATE TABLE IF NOT EXISTS problems (n INTEGER PRIMARY KEY AUTOINCREMENT, text TEXT NOT NULL);`,
    );
  }

  #count(name: string): number {
    return (
      this.#sql.exec<{ n: number }>("SELECT n FROM counters WHERE name = ?", name).toArray()[0]
        ?.n ?? 0
    );
  }

  #bump(name: string, by = 1): void {
    this.#sql.exec(
      "INSERT INTO counters (name, n) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET n = n + excluded.n",
      name,
      by,
    );
  }

  #setMax(name: string, value: number): void {
    this.#sql.exec(
      "INSERT INTO counters (name, n) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET n = MAX(n, excluded.n)",
      name,
      value,
    );
  }

  #problem(text: string): void {
    this.#sql.exec("INSERT INTO problems (text) VALUES (?)", text);
  }

  /** A holder entered its critical section with the lease `fence` expiring at `expiresAt`. */
  enter(
    holder: string,
    fence: number,
    expiresAt: number,
  ): { overlaps: number; regression: boolean } {
    const now = lockNow();
    const last = this.#count("max_fence");
    let regression = false;
    if (fence <= last) {
      regression = true;
      this.#bump("regressions");
      this.#problem(`fence regression: ${holder} entered with fence ${fence} after fence ${last}`);
    }
    if (expiresAt <= now) {
      // Its lease ran out before it got here: it may not touch the resource; not a grant out of
      // order (its successor may be inside already).
      this.#bump("late_enters");
    }
    const others = this.#sql
      .exec<{ fence: number; holder: string; expires_at: number }>(
        "SELECT fence, holder, expires_at FROM open_sections WHERE expires_at > ? AND fence <> ?",
        now,
        fence,
      )
      .toArray();
    if (expiresAt > now && others.length > 0) {
      this.#bump("overlaps", others.length);
      for (const o of others) {
        this.#problem(
          `overlap: ${holder} (fence ${fence}) entered at ${now} while ${o.holder} (fence ${o.fence}) was inside with a lease valid until ${o.expires_at}`,
        );
      }
    }
    const inserted = this.#sql.exec(
      "INSERT OR IGNORE INTO sections (fence, holder, entered_at, expires_at) VALUES (?, ?, ?, ?)",
      fence,
      holder,
      now,
      expiresAt,
    ).rowsWritten;
    if (inserted === 0) {
      // A fence entered twice: counted above as a regression (fence <= last).
      return { overlaps: others.length, regression };
    }
    this.#sql.exec(
      "INSERT INTO open_sections (fence, holder, expires_at) VALUES (?, ?, ?)",
      fence,
      holder,
      expiresAt,
    );
    this.#bump("sections");
    this.#setMax("max_fence", fence);
    // The resource hears of the new fence: from now on, older fences are refused.
    this.#setMax("resource_fence", fence);
    return { overlaps: expiresAt > now ? others.length : 0, regression };
  }

  /** The holder of `fence` renewed its lease until `expiresAt`. */
  renewed(fence: number, expiresAt: number): void {
    this.#sql.exec("UPDATE open_sections SET expires_at = ? WHERE fence = ?", expiresAt, fence);
    this.#sql.exec("UPDATE sections SET expires_at = ? WHERE fence = ?", expiresAt, fence);
  }

  /**
   * A write to the fenced resource: accepted unless a higher fence has entered or written (the
   * resource keeps the highest fence it has seen, as a fenced store does).
   */
  write(fence: number): { accepted: boolean } {
    if (fence < this.#count("resource_fence")) {
      this.#bump("refused");
      return { accepted: false };
    }
    this.#setMax("resource_fence", fence);
    this.#bump("writes");
    return { accepted: true };
  }

  /** The holder of `fence` left its critical section (before releasing, or late after a stall). */
  leave(holder: string, fence: number): void {
    const gone = this.#sql.exec("DELETE FROM open_sections WHERE fence = ?", fence).rowsWritten;
    if (gone === 0) {
      this.#bump("bad_leaves");
      this.#problem(`bad leave: ${holder} left fence ${fence}, which was not open`);
      return;
    }
    this.#sql.exec("UPDATE sections SET left_at = ? WHERE fence = ?", lockNow(), fence);
  }

  /** The highest fence entered so far. */
  maxFence(): number {
    return this.#count("max_fence");
  }

  /** Everything found. */
  report(): MonitorReport {
    return {
      sections: this.#count("sections"),
      overlaps: this.#count("overlaps"),
      regressions: this.#count("regressions"),
      writes: this.#count("writes"),
      refused: this.#count("refused"),
      lateEnters: this.#count("late_enters"),
      badLeaves: this.#count("bad_leaves"),
      open:
        this.#sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM open_sections").toArray()[0]?.n ??
        0,
      maxFence: this.#count("max_fence"),
      problems: this.#sql
        .exec<{ text: string }>("SELECT text FROM problems ORDER BY n LIMIT ?", MAX_PROBLEMS)
        .toArray()
        .map((p) => p.text),
    };
  }
}
