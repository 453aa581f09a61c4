import { decodeSync, encodeSync } from "../codec.ts";
import { parseDuration } from "../duration.ts";
import { BatonError, invalidArgument } from "../errors.ts";
import type { Sql } from "../sql.ts";
import { AlarmClock } from "./alarm.ts";
import {
  checkIdOrKey,
  checkKey,
  checkKind,
  dueTime,
  KEEP_KEY_UNLESS_WAITING_TWIN,
  type ListTimersOptions,
  MAX_TIMER_PAYLOAD_BYTES,
  messageOf,
  positiveInt,
  type RunReport,
  rowInfo,
  type ScheduleOptions,
  type SchedulerOptions,
  TABLE,
  type TimerHandler,
  type TimerInfo,
  type TimerMap,
  type TimerRow,
  toInfo,
  type When,
} from "./timer-table.ts";

/**
 * A durable timer table multiplexed over the object's single alarm.
 *
 * Invariants:
 * - A timer row exists until its handler has succeeded (then it is deleted), it was cancelled,
 *   or it ran out of attempts (then it stays, `state = 'dead'`, as a dead letter).
 * - Outside an alarm run, the object's alarm is set at or before the earliest due time of a live
 *   timer. Scheduling an earlier timer moves it earlier at once; cancelling a timer or moving one
 *   later leaves it where it is (every alarm write is a committed write, so cancels and renewals
 *   stay cheap): that early alarm finds nothing due and re-arms for the earliest timer.
 *   Inside a run, re-arming waits for the end of the run and never targets a time at or before
 *   "now" (a workerd alarm re-set to "now" inside `alarm()` is lost). Baton owns the alarm: do
 *   not call `setAlarm`/`deleteAlarm` yourself in an {@link Actor}.
 * - States: `pending` → `claimed` (taken by a batch; the claim is committed before any handler of
 *   the batch starts) → `running` (its handler started; `attempts` already counts it) → deleted,
 *   back to `pending` for a retry, or `dead`.
 * - Runs are serialized, so rows found `claimed` or `running` when a run starts lost their runner
 *   to an eviction or a crash. They are recovered one at a time, each attempt counted and
 *   committed before its handler starts: a handler that kills the object every time ends
 *   dead-lettered after `maxAttempts` attempts instead of looping, and its batch-mates run
 *   normally. (A row still `claimed` never had its start recorded, so it is not blamed.)
 * - A key identifies at most one timer that has not started yet (`pending` or `claimed`):
 *   scheduling a key that is waiting returns that timer. A running handler may schedule its own
 *   key again (periodic jobs).
 * - An alarm delivered while a run is in flight joins that run, so a duplicate delivery never
 *   runs a timer twice.
 */

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
  #running: Promise<RunReport> | null = null;
  readonly #alarm: AlarmClock;
  /** Id of the timer whose handler is running now, if any. */
  #inFlight: number | null = null;
  /** Set when the running timer was cancelled: its row goes when the handler returns. */
  #inFlightCancelled = false;

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
    this.#alarm = new AlarmClock(
      storage,
      now,
      () => this.nextDue(),
      () => this.#running !== null,
    );
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
    const stored = this.#store(timers);
    let earliest = Number.POSITIVE_INFINITY;
    for (const row of stored) if (row.due_at < earliest) earliest = row.due_at;
    if (stored.length > 0) await this.#alarm.armFor(earliest);
    return stored.map((row) => toInfo(row) as TimerInfo<K, T[K]>);
  }

  /**
   * Stores a timer synchronously, so it can be part of a `sql.transaction` with the change it
   * follows up (an outbox): both commit or neither does. The alarm is armed right after the
   * current synchronous block; if the object dies first, the timer runs at the next alarm the
   * object already had (or when it next wakes). Otherwise like {@link Scheduler.schedule}.
   *
   * @example
   * ```ts
   * this.sql.transaction(() => {
   *   this.sql.run("UPDATE orders SET status = 'paid' WHERE id = ?", id);
   *   this.timers.enqueue("notify", { id }, { after: 0 }, { key: `notify:${id}` });
   * });
   * ```
   */
  enqueue<K extends keyof T & string>(
    kind: K,
    payload: T[K],
    when: When,
    options: ScheduleOptions = {},
  ): TimerInfo<K, T[K]> {
    const [row] = this.#store([{ kind, payload, when, ...options }]) as [TimerRow];
    queueMicrotask(() => {
      this.#alarm.armFor(row.due_at).catch(() => {
        // Arming failed (the object is going away): the next wake re-arms from the table.
      });
    });
    return toInfo(row) as TimerInfo<K, T[K]>;
  }

  #store<K extends keyof T & string>(
    timers: ReadonlyArray<{ kind: K; payload: T[K]; when: When } & ScheduleOptions>,
  ): TimerRow[] {
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
            `SELECT * FROM ${TABLE} WHERE key = ? AND state IN ('pending', 'claimed')`,
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
    return stored;
  }

  /**
   * Cancels a timer by id or idempotency key, whatever its state. A timer whose handler is running
   * right now finishes that run, and is then removed whatever its outcome (no retry). Returns
   * whether a timer was cancelled.
   */
  async cancel(idOrKey: number | string): Promise<boolean> {
    checkIdOrKey(idOrKey);
    const where = typeof idOrKey === "number" ? "id = ?" : "key = ?";
    const running = this.#inFlight;
    let hitRunning = false;
    if (running !== null) {
      hitRunning = !!this.#sql.one(
        `SELECT 1 AS hit FROM ${TABLE} WHERE ${where} AND id = ?`,
        idOrKey,
        running,
      );
      if (hitRunning) this.#inFlightCancelled = true;
    }
    const removed = this.#sql.run(
      `DELETE FROM ${TABLE} WHERE ${where} AND id IS NOT ?`,
      idOrKey,
      running,
    );
    if (removed > 0) await this.#alarm.rearm();
    return removed > 0 || hitRunning;
  }

  /** Cancels every timer of a kind (as {@link Scheduler.cancel}); returns how many. */
  async cancelKind<K extends keyof T & string>(kind: K): Promise<number> {
    checkKind(kind);
    const running = this.#inFlight;
    let count = 0;
    if (
      running !== null &&
      this.#sql.one(`SELECT 1 AS hit FROM ${TABLE} WHERE kind = ? AND id = ?`, kind, running)
    ) {
      this.#inFlightCancelled = true;
      count++;
    }
    const removed = this.#sql.run(
      `DELETE FROM ${TABLE} WHERE kind = ? AND id IS NOT ?`,
      kind,
      running,
    );
    if (removed > 0) await this.#alarm.rearm();
    return count + removed;
  }

  /**
   * Moves a timer that has not started yet (by id or key) to a new due time; returns it, or
   * `undefined` when there is no such timer waiting.
   *
   * @example
   * ```ts
   * // Debounce: push the flush back on every write.
   * (await this.timers.reschedule("flush", { after: "5s" })) ??
   *   (await this.timers.schedule("flush", {}, { after: "5s" }, { key: "flush" }));
   * ```
   */
  async reschedule(idOrKey: number | string, when: When): Promise<TimerInfo | undefined> {
    checkIdOrKey(idOrKey);
    const due = dueTime(when, this.#now());
    const where = typeof idOrKey === "number" ? "id = ?" : "key = ?";
    const row = this.#sql.one<TimerRow>(
      `UPDATE ${TABLE} SET due_at = ? WHERE ${where} AND state IN ('pending', 'claimed') RETURNING *`,
      due,
      idOrKey,
    );
    if (!row) return undefined;
    await this.#alarm.armFor(due);
    return toInfo(row);
  }

  /** One timer by id or key (pending first), or `undefined`. */
  get(idOrKey: number | string): TimerInfo | undefined {
    checkIdOrKey(idOrKey);
    const row =
      typeof idOrKey === "number"
        ? this.#sql.one<TimerRow>(`SELECT * FROM ${TABLE} WHERE id = ?`, idOrKey)
        : this.#sql.one<TimerRow>(
            `SELECT * FROM ${TABLE} WHERE key = ?
             ORDER BY CASE state WHEN 'pending' THEN 0 WHEN 'claimed' THEN 1 WHEN 'running' THEN 2 ELSE 3 END, id
             LIMIT 1`,
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
      `UPDATE ${TABLE} SET state = 'pending', attempts = 0, due_at = ?, ${KEEP_KEY_UNLESS_WAITING_TWIN}
       WHERE id = ? AND state = 'dead' RETURNING *`,
      due,
      id,
    );
    if (!row) {
      throw new BatonError("TIMER_NOT_FOUND", `No dead-lettered timer has id ${id}.`, { id });
    }
    await this.#alarm.armFor(row.due_at);
    return toInfo(row);
  }

  /** Deletes dead letters (all, or the given ids); returns how many were deleted. */
  purgeDeadLetters(ids?: readonly number[]): number {
    if (ids === undefined) return this.#sql.run(`DELETE FROM ${TABLE} WHERE state = 'dead'`);
    if (!Array.isArray(ids) || !ids.every((id) => Number.isSafeInteger(id))) {
      invalidArgument("ids", "must be an array of timer ids (integers)", ids);
    }
    return this.#sql.run(
      `DELETE FROM ${TABLE} WHERE state = 'dead' AND id IN (SELECT value FROM json_each(?))`,
      JSON.stringify(ids),
    );
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
    await this.#alarm.wake();
  }

  /**
   * Runs due timers in due order. Call it from the actor's `alarm()` (the {@link Actor} base
   * does): it treats the alarm as consumed and re-arms for what is left. A second call while a
   * run is in flight joins that run.
   */
  run(): Promise<RunReport> {
    // The alarm that invoked us is consumed (inside alarm() workerd reports none set), also when
    // this call joins a run in flight: that run re-arms when it ends.
    this.#alarm.consumed();
    return this.runDue();
  }

  /**
   * Runs the timers that are due now, in this event, instead of waiting for the alarm (which
   * stays armed; it finds nothing due). Use it right after scheduling a timer due now whose
   * handler should start at once: the row is committed first, so the alarm still runs it if this
   * run is cut short. Joins a run in flight.
   *
   * @example
   * ```ts
   * await this.timers.schedule("notify", { to }, { after: 0 }, { key: `notify:${to}` });
   * void this.timers.runDue(); // try now; retried by the alarm if it fails
   * ```
   */
  runDue(): Promise<RunReport> {
    if (this.#running) return this.#running;
    this.#running = this.#drain().finally(async () => {
      this.#running = null;
      await this.#alarm.rearm();
    });
    return this.#running;
  }

  async #drain(): Promise<RunReport> {
    const report: RunReport = { succeeded: 0, retried: 0, deadLettered: 0, more: false };
    // Date.now() moves only at I/O in workerd, so the time budget bites when handlers do I/O;
    // maxPerRun bounds a run of purely synchronous handlers.
    const started = Date.now();
    let ran = 0;
    const budgetLeft = () => ran < this.#maxPerRun && Date.now() - started < this.#timeBudgetMs;

    // Recovery: rows a previous run left claimed or running (see the invariants above).
    for (;;) {
      const orphan = this.#sql.one<TimerRow>(
        `SELECT * FROM ${TABLE} WHERE state IN ('claimed', 'running') AND id IS NOT ?
         ORDER BY due_at, id LIMIT 1`,
        this.#inFlight,
      );
      if (!orphan) break;
      if (!budgetLeft()) {
        report.more = true;
        return report;
      }
      ran++;
      if (orphan.state === "running" && orphan.attempts >= orphan.max_attempts) {
        this.#finish(
          orphan,
          "dead",
          `handler did not finish in ${orphan.attempts} attempt(s): the object was evicted or reset while it ran`,
          report,
        );
        continue;
      }
      this.#sql.run(
        `UPDATE ${TABLE} SET state = 'running', attempts = attempts + 1 WHERE id = ?`,
        orphan.id,
      );
      await this.#storage.sync();
      await this.#runStarted(
        { ...orphan, state: "running", attempts: orphan.attempts + 1 },
        report,
      );
    }

    for (;;) {
      const limit = Math.min(this.#batchSize, this.#maxPerRun - ran);
      if (limit <= 0 || !budgetLeft()) {
        report.more = this.#anyDue();
        return report;
      }
      // Claim a batch and commit the claim before any handler runs: if the object dies mid-batch,
      // the rows left claimed or running are the evidence the recovery pass uses.
      const batch = this.#sql.all<TimerRow>(
        `UPDATE ${TABLE} SET state = 'claimed' WHERE id IN (
           SELECT id FROM ${TABLE} WHERE state = 'pending' AND due_at <= ? ORDER BY due_at, id LIMIT ?
         ) RETURNING *`,
        this.#now(),
        limit,
      );
      if (batch.length === 0) return report;
      batch.sort((x, y) => x.due_at - y.due_at || x.id - y.id);
      await this.#storage.sync();
      for (let i = 0; i < batch.length; i++) {
        const row = batch[i] as TimerRow;
        if (i > 0 && !budgetLeft()) {
          // Hand the unstarted rest back. Claimed rows keep their place in the key index, so
          // this cannot clash with a timer scheduled meanwhile.
          this.#sql.run(
            `UPDATE ${TABLE} SET state = 'pending'
             WHERE state = 'claimed' AND id IN (SELECT value FROM json_each(?))`,
            JSON.stringify(batch.slice(i).map((r) => r.id)),
          );
          report.more = true;
          return report;
        }
        ran++;
        // Record the start (and the attempt). It also tells whether a handler earlier in this
        // run cancelled this timer. Not synced: the claim above is the crash evidence.
        const started = this.#sql.run(
          `UPDATE ${TABLE} SET state = 'running', attempts = attempts + 1
           WHERE id = ? AND state = 'claimed'`,
          row.id,
        );
        if (started === 0) continue;
        await this.#runStarted({ ...row, state: "running", attempts: row.attempts + 1 }, report);
      }
    }
  }

  /** Runs the handler of a timer whose start is recorded; `row.attempts` counts this attempt. */
  async #runStarted(row: TimerRow, report: RunReport): Promise<void> {
    const handler = this.#handlers.get(row.kind);
    if (!handler) {
      this.#finish(
        row,
        "dead",
        `NO_TIMER_HANDLER: no handler is registered for timer kind "${row.kind}". Register it with timers.on() in the actor's constructor, then retry the dead letter.`,
        report,
      );
      return;
    }
    let payload: unknown;
    try {
      payload = decodeSync(row.payload);
    } catch (error) {
      // Retrying cannot help: the stored bytes will not change.
      this.#finish(row, "dead", `payload cannot be decoded: ${messageOf(error)}`, report);
      return;
    }
    this.#inFlight = row.id;
    this.#inFlightCancelled = false;
    try {
      await handler(payload, { ...rowInfo(row), payload, state: "running" });
      this.#finish(row, "done", null, report);
    } catch (error) {
      this.#finish(
        row,
        row.attempts >= row.max_attempts ? "dead" : "retry",
        messageOf(error),
        report,
      );
    } finally {
      this.#inFlight = null;
      this.#inFlightCancelled = false;
    }
  }

  #finish(
    row: TimerRow,
    outcome: "done" | "retry" | "dead",
    message: string | null,
    report: RunReport,
  ): void {
    if (outcome === "done" || (row.id === this.#inFlight && this.#inFlightCancelled)) {
      this.#sql.run(`DELETE FROM ${TABLE} WHERE id = ?`, row.id);
      if (outcome === "done") report.succeeded++;
      return;
    }
    if (outcome === "dead") {
      this.#sql.run(
        `UPDATE ${TABLE} SET state = 'dead', attempts = ?, last_error = ? WHERE id = ?`,
        row.attempts,
        message,
        row.id,
      );
      report.deadLettered++;
      return;
    }
    const delay = Math.min(this.#retryDelay * 2 ** (row.attempts - 1), this.#maxRetryDelay);
    this.#sql.run(
      `UPDATE ${TABLE} SET state = 'pending', attempts = ?, due_at = ?, last_error = ?,
         ${KEEP_KEY_UNLESS_WAITING_TWIN}
       WHERE id = ?`,
      row.attempts,
      this.#now() + delay,
      message,
      row.id,
    );
    report.retried++;
  }

  #anyDue(): boolean {
    return (
      this.#sql.one(
        `SELECT 1 AS due FROM ${TABLE} WHERE state = 'pending' AND due_at <= ? LIMIT 1`,
        this.#now(),
      ) !== undefined
    );
  }

  /**
   * Moves the alarm to the earliest live timer now, or deletes it when there is none. Cancels and
   * later reschedules leave the alarm early (one wake that finds nothing due); call this when one
   * alarm write now is the better deal, for example when an object is done for a long while.
   * During a run it does nothing: the run re-arms when it ends.
   *
   * @example
   * ```ts
   * await this.timers.cancel("heartbeat");
   * await this.timers.syncAlarm(); // no early wake: the alarm goes to the next timer (or away)
   * ```
   */
  async syncAlarm(): Promise<void> {
    await this.#alarm.sync();
  }
}
