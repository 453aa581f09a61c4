import { decodeSync, encodeSync } from "./codec.ts";
import { type Duration, parseDuration } from "./duration.ts";
import { BatonError, invalidArgument } from "./errors.ts";
import { chunkParams, placeholders, type Sql } from "./sql.ts";

/**
 * A durable timer table multiplexed over the object's single alarm.
 *
 * Invariants:
 * - A timer row exists until its handler has succeeded (then it is deleted), it was cancelled,
 *   or it ran out of attempts (then it stays, `state = 'dead'`, as a dead letter).
 * - Outside an alarm run, the object's alarm is set to the earliest due time of a live timer,
 *   or deleted when there is none. Inside a run, re-arming waits for the end of the run and never
 *   targets a time at or before "now" (a workerd alarm re-set to "now" inside `alarm()` is lost).
 * - Due timers are claimed in batches (`state = 'claimed'`) and the claim is committed before
 *   any handler of the batch runs. Rows found claimed when a run starts lost their runner to an
 *   eviction or a crash (runs are serialized, so nothing else can own them). The earliest was
 *   the one running (handlers run in order and a success deletes its row): its attempt is
 *   counted and it is retried alone, each attempt committed before its handler starts; the rest
 *   of the batch goes back to pending, unblamed. A handler that kills the object every time
 *   therefore ends dead-lettered after `maxAttempts` runs instead of looping.
 * - `attempts` counts attempts started.
 * - Runs are serialized: an alarm delivered while another run is in flight joins that run, so a
 *   duplicate delivery never runs a timer twice.
 */

/** Maps each timer kind to its payload type. */
export type TimerMap = Record<string, unknown>;

/** The lifecycle state of a stored timer. */
export type TimerState = "pending" | "running" | "dead";

/** A stored timer as the inspection methods return it. */
export interface TimerInfo<K extends string = string, P = unknown> {
  id: number;
  kind: K;
  payload: P;
  /** When it is due, in ms since the epoch. */
  dueAt: number;
  key: string | null;
  state: TimerState;
  /** Attempts started so far. */
  attempts: number;
  maxAttempts: number;
  /** Message of the last failure, if any. */
  lastError: string | null;
  createdAt: number;
}

/** Runs one timer. Throwing (or rejecting) counts as a failed attempt. */
export type TimerHandler<P, K extends string = string> = (
  payload: P,
  timer: TimerInfo<K, P>,
) => void | Promise<void>;

/** When a timer is due: at a time, or after a duration from now. */
export type When = { at: Date | number } | { after: Duration };

/** Options for one timer. */
export interface ScheduleOptions {
  /**
   * Idempotency key: while a pending timer with this key exists, scheduling again returns it
   * unchanged instead of adding a second one.
   */
  key?: string;
  /** Attempts before the timer is dead-lettered. Default: the scheduler's `maxAttempts`. */
  maxAttempts?: number;
}

/** Tuning for a {@link Scheduler}. Defaults suit most actors. */
export interface SchedulerOptions {
  /** Attempts per timer before it is dead-lettered. Default 5. */
  maxAttempts?: number;
  /** First retry delay after a failed attempt; doubles each attempt. Default 1 second. */
  retryDelay?: Duration;
  /** Cap on the retry delay. Default 5 minutes. */
  maxRetryDelay?: Duration;
  /** Rows read per query while draining due timers. Default 256. */
  batchSize?: number;
  /** Timers run per alarm invocation before the rest is left to the next alarm. Default 2000. */
  maxPerRun?: number;
  /** Wall-time budget of one alarm invocation, in ms. Default 10 seconds. */
  timeBudgetMs?: number;
}

/** What one {@link Scheduler.run} did. */
export interface RunReport {
  /** Handlers that succeeded. */
  succeeded: number;
  /** Attempts that failed and will be retried. */
  retried: number;
  /** Timers moved to the dead-letter state. */
  deadLettered: number;
  /** True if due timers were left for the next alarm (batch or time budget reached). */
  more: boolean;
}

/** Filters for {@link Scheduler.list}. */
export interface ListTimersOptions {
  kind?: string;
  state?: TimerState;
  /** Default 100, at most 1000. */
  limit?: number;
}

interface TimerRow {
  id: number;
  kind: string;
  due_at: number;
  payload: ArrayBuffer;
  key: string | null;
  state: TimerState | "claimed";
  attempts: number;
  max_attempts: number;
  last_error: string | null;
  created_at: number;
  [column: string]: string | number | ArrayBuffer | null;
}

const TABLE = "_baton_timers";
/**
 * Largest encoded timer payload; keep payloads small and store bulk data elsewhere.
 *
 * @example
 * ```ts
 * // Too big for a timer: store it and schedule a reference instead.
 * await this.values.put("jobs", jobId, bigInput);
 * await this.timers.schedule("job", { jobId }, { after: "1m" });
 * ```
 */
export const MAX_TIMER_PAYLOAD_BYTES = 256 * 1024;
const MAX_KIND = 128;
const MAX_KEY = 512;

/** Framework migration statements that create the timer table. */
export const TIMERS_TABLE_SQL = `
CREATE TABLE ${TABLE} (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL,
  due_at INTEGER NOT NULL,
  payload BLOB NOT NULL,
  key TEXT,
  -- claimed: taken by a batch of the current run; running: an attempt counted one at a time
  -- (recovery); both read as "running" outside.
  state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'claimed', 'running', 'dead')),
  attempts INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL,
  last_error TEXT,
  created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX ${TABLE}_due ON ${TABLE} (due_at, id) WHERE state <> 'dead';
CREATE UNIQUE INDEX ${TABLE}_key ON ${TABLE} (key) WHERE key IS NOT NULL AND state = 'pending';
`;

/**
 * The durable scheduler of an {@link Actor}: many timers, one alarm. Reach it as
 * `this.timers` inside an actor.
 *
 * @example
 * ```ts
 * type Timers = { remind: { user: string } };
 * class Reminders extends Actor<Env, Timers> {
 *   constructor(ctx: DurableObjectState, env: Env) {
 *     super(ctx, env);
 *     this.timers.on("remind", async ({ user }) => notify(user));
 *   }
 *   async remind(user: string) {
 *     await this.timers.schedule("remind", { user }, { after: "1h" }, { key: `remind:${user}` });
 *   }
 * }
 * ```
 */
export class Scheduler<T extends TimerMap = TimerMap> {
  readonly #sql: Sql;
  readonly #storage: DurableObjectStorage;
  readonly #now: () => number;
  readonly #handlers = new Map<string, TimerHandler<unknown>>();
  readonly #maxAttempts: number;
  readonly #retryDelay: number;
  readonly #maxRetryDelay: number;
  readonly #batchSize: number;
  readonly #maxPerRun: number;
  readonly #timeBudgetMs: number;
  /** The alarm time this instance last set (real clock); undefined when unknown. */
  #armedAt: number | null | undefined;
  #running: Promise<RunReport> | null = null;
  /** Id of the timer whose handler is running now, if any. */
  #inFlight: number | null = null;

  constructor(
    storage: DurableObjectStorage,
    sql: Sql,
    now: () => number,
    options: SchedulerOptions = {},
  ) {
    this.#storage = storage;
    this.#sql = sql;
    this.#now = now;
    this.#maxAttempts = positiveInt("maxAttempts", options.maxAttempts ?? 5);
    this.#retryDelay = parseDuration(options.retryDelay ?? "1s");
    this.#maxRetryDelay = parseDuration(options.maxRetryDelay ?? "5 minutes");
    this.#batchSize = positiveInt("batchSize", options.batchSize ?? 256);
    this.#maxPerRun = positiveInt("maxPerRun", options.maxPerRun ?? 2000);
    this.#timeBudgetMs = positiveInt("timeBudgetMs", options.timeBudgetMs ?? 10_000);
  }

  /**
   * Registers the handler for a timer kind. Register every kind in the actor's constructor, so
   * handlers exist before any alarm runs. A due timer whose kind has no handler is dead-lettered
   * with `NO_TIMER_HANDLER`.
   */
  on<K extends keyof T & string>(kind: K, handler: TimerHandler<T[K], K>): this {
    checkKind(kind);
    this.#handlers.set(kind, handler as unknown as TimerHandler<unknown>);
    return this;
  }

  /**
   * Schedules a timer and makes sure the alarm will fire for it. Returns the stored timer (the
   * existing one when `options.key` matches a pending timer).
   *
   * @throws BatonError `INVALID_ARGUMENT`, `INVALID_DURATION`, `SERIALIZATION_ERROR` or
   *   `PAYLOAD_TOO_LARGE`; nothing is stored then.
   */
  async schedule<K extends keyof T & string>(
    kind: K,
    payload: T[K],
    when: When,
    options: ScheduleOptions = {},
  ): Promise<TimerInfo<K, T[K]>> {
    const [timer] = await this.scheduleMany([{ kind, payload, when, ...options }]);
    return timer as TimerInfo<K, T[K]>;
  }

  /**
   * Schedules many timers with one alarm update (set once, to the earliest). All are validated
   * before any is stored; they are stored in one transaction.
   */
  async scheduleMany<K extends keyof T & string>(
    timers: ReadonlyArray<{ kind: K; payload: T[K]; when: When } & ScheduleOptions>,
  ): Promise<Array<TimerInfo<K, T[K]>>> {
    if (!Array.isArray(timers)) invalidArgument("timers", "must be an array", timers);
    const now = this.#now();
    const prepared = timers.map((timer) => {
      checkKind(timer.kind);
      if (timer.key !== undefined) checkKey(timer.key);
      const maxAttempts = positiveInt("maxAttempts", timer.maxAttempts ?? this.#maxAttempts);
      const payload = encodeSync(timer.payload);
      if (payload.byteLength > MAX_TIMER_PAYLOAD_BYTES) {
        throw new BatonError(
          "PAYLOAD_TOO_LARGE",
          `Timer payload of kind "${timer.kind}" is ${payload.byteLength} bytes encoded; the limit is ${MAX_TIMER_PAYLOAD_BYTES}. Store the data elsewhere and pass a reference.`,
          { kind: timer.kind, bytes: payload.byteLength, limit: MAX_TIMER_PAYLOAD_BYTES },
        );
      }
      return { ...timer, maxAttempts, payload, dueAt: dueTime(timer.when, now) };
    });
    const stored = this.#sql.transaction(() =>
      prepared.map((timer) => {
        if (timer.key !== undefined) {
          const existing = this.#sql.one<TimerRow>(
            `SELECT * FROM ${TABLE} WHERE key = ? AND state = 'pending'`,
            timer.key,
          );
          if (existing) return existing;
        }
        const row = this.#sql.one<TimerRow>(
          `INSERT INTO ${TABLE} (kind, due_at, payload, key, max_attempts, created_at)
           VALUES (?, ?, ?, ?, ?, ?) RETURNING *`,
          timer.kind,
          timer.dueAt,
          timer.payload,
          timer.key ?? null,
          timer.maxAttempts,
          now,
        );
        return row as TimerRow;
      }),
    );
    if (stored.length > 0) {
      const earliest = Math.min(...stored.map((row) => row.due_at));
      await this.#armFor(earliest);
    }
    return stored.map((row) => toInfo(row) as TimerInfo<K, T[K]>);
  }

  /**
   * Cancels a timer by id or idempotency key, whatever its state, except the one whose handler
   * is running right now (it finishes). Returns whether a timer was removed.
   */
  async cancel(idOrKey: number | string): Promise<boolean> {
    checkIdOrKey(idOrKey);
    const where = typeof idOrKey === "number" ? "id = ?" : "key = ?";
    const removed = this.#sql.run(
      `DELETE FROM ${TABLE} WHERE ${where} AND id IS NOT ?`,
      idOrKey,
      this.#inFlight,
    );
    if (removed > 0) await this.#rearm();
    return removed > 0;
  }

  /** Cancels every timer of a kind (but a running handler); returns how many were removed. */
  async cancelKind<K extends keyof T & string>(kind: K): Promise<number> {
    checkKind(kind);
    const removed = this.#sql.run(
      `DELETE FROM ${TABLE} WHERE kind = ? AND id IS NOT ?`,
      kind,
      this.#inFlight,
    );
    if (removed > 0) await this.#rearm();
    return removed;
  }

  /** One timer by id or key (pending first), or `undefined`. */
  get(idOrKey: number | string): TimerInfo | undefined {
    checkIdOrKey(idOrKey);
    const row =
      typeof idOrKey === "number"
        ? this.#sql.one<TimerRow>(`SELECT * FROM ${TABLE} WHERE id = ?`, idOrKey)
        : this.#sql.one<TimerRow>(
            `SELECT * FROM ${TABLE} WHERE key = ? ORDER BY (state = 'dead'), id LIMIT 1`,
            idOrKey,
          );
    return row ? toInfo(row) : undefined;
  }

  /** Stored timers in due order (dead letters included unless filtered out). */
  list(options: ListTimersOptions = {}): TimerInfo[] {
    const limit = options.limit ?? 100;
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > 1000) {
      invalidArgument("limit", "must be an integer from 1 to 1000", limit);
    }
    if (options.state !== undefined && !["pending", "running", "dead"].includes(options.state)) {
      invalidArgument("state", 'must be "pending", "running" or "dead"', options.state);
    }
    const clauses: string[] = [];
    const params: Array<string | number> = [];
    if (options.kind !== undefined) {
      checkKind(options.kind);
      clauses.push("kind = ?");
      params.push(options.kind);
    }
    if (options.state === "running") clauses.push("state IN ('claimed', 'running')");
    else if (options.state !== undefined) {
      clauses.push("state = ?");
      params.push(options.state);
    }
    const where = clauses.length ? `WHERE ${clauses.join(" AND ")}` : "";
    return this.#sql
      .all<TimerRow>(
        `SELECT * FROM ${TABLE} ${where} ORDER BY due_at, id LIMIT ?`,
        ...params,
        limit,
      )
      .map(toInfo);
  }

  /** Timers that ran out of attempts, oldest first. */
  deadLetters(limit = 100): TimerInfo[] {
    return this.list({ state: "dead", limit });
  }

  /** Number of live (not dead) timers. */
  pendingCount(): number {
    return this.#sql.value<number>(`SELECT COUNT(*) FROM ${TABLE} WHERE state <> 'dead'`) ?? 0;
  }

  /**
   * Puts a dead letter back in the queue with fresh attempts, due now (or at `when`).
   *
   * @throws BatonError `TIMER_NOT_FOUND` if `id` is not a dead letter.
   */
  async retry(id: number, when?: When): Promise<TimerInfo> {
    if (!Number.isSafeInteger(id)) invalidArgument("id", "must be an integer", id);
    const due = when ? dueTime(when, this.#now()) : this.#now();
    const row = this.#sql.one<TimerRow>(
      `UPDATE ${TABLE} SET state = 'pending', attempts = 0, due_at = ?,
         key = CASE WHEN key IS NOT NULL AND EXISTS (SELECT 1 FROM ${TABLE} t WHERE t.key = ${TABLE}.key AND t.state = 'pending') THEN NULL ELSE key END
       WHERE id = ? AND state = 'dead' RETURNING *`,
      due,
      id,
    );
    if (!row) {
      throw new BatonError("TIMER_NOT_FOUND", `No dead-lettered timer has id ${id}.`, { id });
    }
    await this.#armFor(row.due_at);
    return toInfo(row);
  }

  /** Deletes dead letters (all, or the given ids); returns how many were deleted. */
  purgeDeadLetters(ids?: readonly number[]): number {
    if (ids === undefined) return this.#sql.run(`DELETE FROM ${TABLE} WHERE state = 'dead'`);
    if (!Array.isArray(ids) || !ids.every((id) => Number.isSafeInteger(id))) {
      invalidArgument("ids", "must be an array of timer ids (integers)", ids);
    }
    let removed = 0;
    for (const chunk of chunkParams(ids)) {
      removed += this.#sql.run(
        `DELETE FROM ${TABLE} WHERE state = 'dead' AND id IN (${placeholders(chunk.length)})`,
        ...chunk,
      );
    }
    return removed;
  }

  /** Earliest due time of a live timer (actor clock), or null. */
  nextDue(): number | null {
    return (
      this.#sql.value<number>(`SELECT MIN(due_at) FROM ${TABLE} WHERE state <> 'dead'`) ?? null
    );
  }

  /**
   * Makes sure the alarm is armed for the earliest timer. Called when the object wakes, so an
   * object evicted or restarted with timers in its table comes back by itself.
   */
  async wake(): Promise<void> {
    this.#armedAt = await this.#storage.getAlarm();
    await this.#rearm();
  }

  /**
   * Runs due timers in due order. Call it from the actor's `alarm()` (the {@link Actor} base does).
   * A second call while a run is in flight joins that run.
   */
  run(): Promise<RunReport> {
    if (this.#running) return this.#running;
    // The alarm that invoked us is consumed: inside alarm() workerd reports no alarm set.
    this.#armedAt = null;
    this.#running = this.#drain().finally(async () => {
      this.#running = null;
      await this.#rearm();
    });
    return this.#running;
  }

  async #drain(): Promise<RunReport> {
    const report: RunReport = { succeeded: 0, retried: 0, deadLettered: 0, more: false };
    const started = Date.now();
    let ran = 0;
    const budgetLeft = () => ran < this.#maxPerRun && Date.now() - started < this.#timeBudgetMs;

    // Rows left claimed by a run that never finished (eviction, crash, reset). Runs are
    // sequential and a success deletes its row, so the earliest claimed row is the one that was
    // running when the object died: count that attempt. The rest of its batch never started:
    // give it back unblamed.
    const interrupted = this.#sql.one<{ id: number }>(
      `SELECT id FROM ${TABLE} WHERE state = 'claimed' ORDER BY due_at, id LIMIT 1`,
    );
    if (interrupted) {
      this.#sql.run(
        `UPDATE ${TABLE} SET state = 'running', attempts = attempts + 1 WHERE id = ?`,
        interrupted.id,
      );
      this.#sql.run(`UPDATE ${TABLE} SET state = 'pending' WHERE state = 'claimed'`);
    }
    // Orphans ('running': an attempt that was cut short) run one at a time, each attempt counted
    // and committed before the handler starts, so only the timer that kills the object climbs
    // towards its dead letter.
    for (;;) {
      const orphan = this.#sql.one<TimerRow>(
        `SELECT * FROM ${TABLE} WHERE state = 'running' ORDER BY due_at, id LIMIT 1`,
      );
      if (!orphan) break;
      if (!budgetLeft()) return { ...report, more: true };
      ran++;
      if (orphan.attempts >= orphan.max_attempts) {
        this.#deadLetter(
          orphan.id,
          `handler did not finish in ${orphan.attempts} attempt(s): the object was evicted or reset while it ran`,
        );
        report.deadLettered++;
        continue;
      }
      this.#sql.run(`UPDATE ${TABLE} SET attempts = attempts + 1 WHERE id = ?`, orphan.id);
      await this.#storage.sync();
      await this.#runOne({ ...orphan, attempts: orphan.attempts + 1 }, report);
    }

    for (;;) {
      if (!budgetLeft()) {
        report.more =
          this.#sql.one(
            `SELECT 1 AS due FROM ${TABLE} WHERE state = 'pending' AND due_at <= ? LIMIT 1`,
            this.#now(),
          ) !== undefined;
        return report;
      }
      const limit = Math.min(this.#batchSize, this.#maxPerRun - ran);
      // Claim a batch of due timers and commit the claim before any handler runs: if the object
      // dies mid-batch, the rows left 'running' are the evidence the orphan pass above uses.
      const batch = this.#sql.all<TimerRow>(
        `UPDATE ${TABLE} SET state = 'claimed' WHERE id IN (
           SELECT id FROM ${TABLE} WHERE state = 'pending' AND due_at <= ? ORDER BY due_at, id LIMIT ?
         ) RETURNING *`,
        this.#now(),
        limit,
      );
      if (batch.length === 0) return report;
      batch.sort((a, b) => a.due_at - b.due_at || a.id - b.id);
      await this.#storage.sync();
      for (const row of batch) {
        if (!budgetLeft()) {
          // Hand the unstarted rest of the batch back, untouched.
          this.#sql.run(
            `UPDATE ${TABLE} SET state = 'pending' WHERE state = 'claimed' AND id IN (SELECT value FROM json_each(?))`,
            JSON.stringify(batch.slice(batch.indexOf(row)).map((r) => r.id)),
          );
          report.more = true;
          return report;
        }
        ran++;
        await this.#runOne({ ...row, attempts: row.attempts + 1 }, report);
      }
    }
  }

  /** Runs one claimed timer; `row.attempts` already counts this attempt. */
  async #runOne(row: TimerRow, report: RunReport): Promise<void> {
    // A handler earlier in this run may have cancelled this timer.
    const current = this.#sql.one<{ state: string }>(
      `SELECT state FROM ${TABLE} WHERE id = ?`,
      row.id,
    );
    if (current?.state !== "claimed" && current?.state !== "running") return;
    const handler = this.#handlers.get(row.kind);
    if (!handler) {
      this.#deadLetter(
        row.id,
        `NO_TIMER_HANDLER: no handler is registered for timer kind "${row.kind}". Register it with timers.on() in the actor's constructor, then retry the dead letter.`,
      );
      report.deadLettered++;
      return;
    }
    const info = toInfo({ ...row, state: "running" });
    this.#inFlight = row.id;
    try {
      await handler(info.payload, info);
      this.#sql.run(`DELETE FROM ${TABLE} WHERE id = ?`, row.id);
      report.succeeded++;
    } catch (error) {
      const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      if (row.attempts >= row.max_attempts) {
        this.#sql.run(
          `UPDATE ${TABLE} SET state = 'dead', attempts = ?, last_error = ? WHERE id = ?`,
          row.attempts,
          message,
          row.id,
        );
        report.deadLettered++;
      } else {
        const delay = Math.min(this.#retryDelay * 2 ** (row.attempts - 1), this.#maxRetryDelay);
        // Back to pending for a retry. If the handler scheduled a new pending timer with the
        // same key meanwhile, that one keeps the key (the unique index covers pending rows).
        this.#sql.run(
          `UPDATE ${TABLE} SET state = 'pending', attempts = ?, due_at = ?, last_error = ?,
             key = CASE WHEN key IS NOT NULL AND EXISTS (SELECT 1 FROM ${TABLE} t WHERE t.key = ${TABLE}.key AND t.state = 'pending') THEN NULL ELSE key END
           WHERE id = ?`,
          row.attempts,
          this.#now() + delay,
          message,
          row.id,
        );
        report.retried++;
      }
    } finally {
      this.#inFlight = null;
    }
  }

  #deadLetter(id: number, message: string): void {
    this.#sql.run(`UPDATE ${TABLE} SET state = 'dead', last_error = ? WHERE id = ?`, message, id);
  }

  /** Arms the alarm for a new timer due at `due` if that is earlier than what is armed. */
  async #armFor(due: number): Promise<void> {
    if (this.#running) return; // the run re-arms when it ends
    const real = this.#toReal(due);
    if (this.#armedAt !== undefined && this.#armedAt !== null && this.#armedAt <= real) return;
    await this.#setAlarm(real);
  }

  /** Sets the alarm to the earliest live timer, or deletes it when there is none. */
  async #rearm(): Promise<void> {
    if (this.#running) return;
    const next = this.nextDue();
    if (next === null) {
      if (this.#armedAt !== null) {
        await this.#storage.deleteAlarm();
        this.#armedAt = null;
      }
      return;
    }
    const real = this.#toReal(next);
    if (this.#armedAt === real) return;
    await this.#setAlarm(real);
  }

  async #setAlarm(real: number): Promise<void> {
    // Never at or before "now": a re-arm to "now" from inside alarm() is lost by workerd
    // (cloudflare/workerd#6866), and a past time means "as soon as possible" anyway.
    const at = Math.max(real, Date.now() + 1);
    await this.#storage.setAlarm(at);
    this.#armedAt = at;
  }

  /** Converts the actor clock (which tests may shift) to the real clock the alarm uses. */
  #toReal(actorTime: number): number {
    return actorTime - (this.#now() - Date.now());
  }
}

function toInfo(row: TimerRow): TimerInfo {
  return {
    id: row.id,
    kind: row.kind,
    payload: decodeSync(row.payload),
    dueAt: row.due_at,
    key: row.key,
    state: row.state === "claimed" ? "running" : row.state,
    attempts: row.attempts,
    maxAttempts: row.max_attempts,
    lastError: row.last_error,
    createdAt: row.created_at,
  };
}

function dueTime(when: When, now: number): number {
  if (typeof when !== "object" || when === null) {
    invalidArgument("when", "must be { at: Date | number } or { after: duration }", when);
  }
  if ("at" in when) {
    const at = when.at instanceof Date ? when.at.getTime() : when.at;
    if (typeof at !== "number" || !Number.isFinite(at) || at < 0) {
      invalidArgument("when.at", "must be a valid Date or a time in ms since the epoch", when.at);
    }
    return Math.ceil(at);
  }
  if ("after" in when) return now + parseDuration(when.after);
  return invalidArgument("when", "must be { at: Date | number } or { after: duration }", when);
}

function checkKind(kind: unknown): asserts kind is string {
  if (typeof kind !== "string" || kind.length === 0 || kind.length > MAX_KIND) {
    invalidArgument("Timer kind", `must be a string of 1 to ${MAX_KIND} characters`, kind);
  }
}

function checkIdOrKey(idOrKey: unknown): void {
  if (typeof idOrKey === "number") {
    if (!Number.isSafeInteger(idOrKey)) invalidArgument("id", "must be an integer", idOrKey);
  } else if (typeof idOrKey === "string") checkKey(idOrKey);
  else invalidArgument("Timer id or key", "must be an integer id or a string key", idOrKey);
}

function checkKey(key: unknown): asserts key is string {
  if (typeof key !== "string" || key.length === 0 || key.length > MAX_KEY) {
    invalidArgument("Timer key", `must be a string of 1 to ${MAX_KEY} characters`, key);
  }
}

function positiveInt(name: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) {
    invalidArgument(name, "must be a positive integer", value);
  }
  return value;
}
