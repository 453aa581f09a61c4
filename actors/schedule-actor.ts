import { inputDigest } from "../src/execution/digest.ts";
import type { ExecutionInfo, Value } from "../src/execution/types.ts";
import { Actor } from "../src/foundation/actor.ts";
import { decode, encode } from "../src/foundation/codec.ts";
import { BatonError, invalidArgument } from "../src/foundation/errors.ts";
import {
  MAX_BACKFILL,
  MAX_CATCHUP,
  type RunReason,
  SCHEDULE_REGISTRY,
  type ScheduleInfo,
  type ScheduleList,
  type ScheduleRun,
  type ScheduleSpec,
  type ScheduleSummary,
  type ScheduleUpdate,
} from "../src/protocol/schedules.ts";
import type { ExecutionActor } from "./execution-actor.ts";
import { listSummaries, registerSummary, unregister } from "./schedule/registry.ts";
import {
  activeRuns,
  pruneRuns,
  type RunRow,
  runRow,
  runStatus,
  setRunStatus,
  toRun,
} from "./schedule/runs.ts";
import { checkScheduleId, checkSpec, type Settings } from "./schedule/spec.ts";
import {
  anchorOf,
  infoOf,
  SCHEDULE_MIGRATIONS,
  SCHEDULE_SCHEMA,
  type ScheduleRow,
  settingsOf,
  specOf,
  summaryOf,
  timingOfRow,
} from "./schedule/state.ts";

type ScheduleTimers = {
  /** The next fire (key `fire:<time>`). */
  fire: Record<string, never>;
  /** Starts the execution of the run for `fireAt` (retried until it exists or is refused). */
  start: { fireAt: number };
  /** buffer-one: checks whether the running run ended, to start the buffered fire. */
  drain: { delay: number };
  /** Sends this schedule's summary to the registry (key `register:<version>`). */
  register: Record<string, never>;
  /** A deleted schedule leaves the registry (a tombstone at `version`). */
  unregister: { id: string; version: number };
};

/** Start errors that a retry cannot fix: the run is recorded `start_failed`. */
const REFUSED = new Set([
  "UNKNOWN_WORKFLOW",
  "INVALID_INPUT",
  "INVALID_ARGUMENT",
  "INVALID_DURATION",
  "EXECUTION_CONFLICT",
  "PAYLOAD_TOO_LARGE",
  "SERIALIZATION_ERROR",
  "CONFIGURATION_ERROR",
  "FORBIDDEN",
]);
/** A fire's alarm this much (plus the jitter) after it is a missed fire (catch-up). */
const GRACE_MS = 60_000;
/** Tries of a run's start before it is recorded `start_failed`. */
const START_ATTEMPTS = 20;
/** buffer-one: how often the running run is checked at first, and at most. */
const DRAIN_FIRST_MS = 5_000;
const DRAIN_MAX_MS = 60_000;
/** Runs whose status a refresh asks for at once. */
const REFRESH_BATCH = 20;

type ExecutionStub = DurableObjectStub<ExecutionActor<unknown>>;

/**
 * The Schedule actor: one instance per schedule id. It starts an execution of a workflow per
 * fire — a cron expression in an IANA time zone, or a fixed interval — with the deterministic id
 * `<schedule id>/<fire time, ISO>`, so a duplicate or late alarm never starts a fire's run twice.
 * Overlap (`skip`, `buffer-one`, `allow`) and catch-up after missed fires (`none`, `one`, `all`)
 * are policies; the schedule keeps its recent runs with their outcomes. Its alarm is its only
 * scheduler. The instance named `baton:schedules` lists every schedule of the namespace.
 *
 * Bind it under `new_sqlite_classes`, give it the Execution actor namespace (binding
 * "Executions" by default, or the schedule's `binding`), and call it through {@link schedules}.
 *
 * @example
 * ```ts
 * export { ScheduleActor as Schedules } from "baton";
 * // wrangler.toml: [[durable_objects.bindings]] name = "Schedules", class_name = "Schedules"
 * await schedules(env.Schedules).create({ id: "nightly-report", workflow: "report", cron: "0 2 * * *", timezone: "Europe/Berlin" });
 * ```
 */
export class ScheduleActor<Env = unknown> extends Actor<Env, ScheduleTimers> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.timers
      .on("fire", () => this.#fire())
      .on("start", ({ fireAt }, timer) => this.#startRun(fireAt, timer.attempts))
      .on("drain", ({ delay }) => this.#drain(delay))
      .on("register", () => this.#register())
      .on("unregister", async ({ id, version }) => {
        // Created again meanwhile: its own registration (a higher version) replaces the old one.
        if (!this.#row()) await this.#registry().unregisterSchedule(id, version);
      });
  }

  protected override frameworkSchemas() {
    return [{ scope: SCHEDULE_SCHEMA, migrations: SCHEDULE_MIGRATIONS }];
  }

  /** Reading a schedule that was never created stores nothing. */
  protected override deferSchema(): boolean {
    return true;
  }

  // ---- the schedule ----------------------------------------------------------------------------

  /**
   * Creates this schedule. Idempotent: the same spec again returns the schedule; another spec
   * under this id fails with `SCHEDULE_CONFLICT` (use `update`).
   *
   * @throws BatonError `INVALID_ARGUMENT` / `INVALID_DURATION` naming the bad value (a bad cron
   *   expression, an unknown time zone, an interval under 1 second …), `SCHEDULE_CONFLICT`,
   *   `CONFIGURATION_ERROR` (no such Execution binding), `FORBIDDEN` (a reserved id).
   */
  async create(spec: ScheduleSpec): Promise<ScheduleInfo> {
    if (typeof spec !== "object" || spec === null) {
      invalidArgument("schedule", "must be an object { id, workflow, cron | every, … }", spec);
    }
    const id = this.#checkName(spec.id);
    if (spec.paused !== undefined && typeof spec.paused !== "boolean") {
      invalidArgument("paused", "must be true or false", spec.paused);
    }
    const now = this.now();
    const settings = await checkSpec(spec, now, true);
    this.#executions(settings.binding);
    this.#namespaceOfSelf(); // list() needs it: refused now rather than at the first change
    const digest = await inputDigest("schedule", { ...settings, paused: spec.paused === true });
    const existing = this.#row();
    if (existing) {
      if (existing.digest === digest) return this.describe();
      throw new BatonError(
        "SCHEDULE_CONFLICT",
        `Schedule "${id}" already exists with other settings. Change it with update(), or delete it first.`,
        { id },
      );
    }
    const input = await encode(settings.input);
    if (this.#row()) return this.create(spec); // a concurrent create won during the await
    this.ensureSchema();
    const anchor = anchorOf(settings, now);
    this.sql.transaction(() => {
      this.sql.run(
        `INSERT INTO _baton_schedule (id, schedule_id, digest, settings, input, anchor, paused,
           cursor, version, created_at, updated_at) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        id,
        digest,
        JSON.stringify({ ...settings, input: null }),
        input,
        anchor,
        spec.paused === true ? 1 : 0,
        // Fires before the creation (or just before startAt) are not missed ones.
        Math.max(now, anchor - 1),
        // Above the tombstone a deletion of this id may still be sending (its timer's version).
        this.timers
          .list({ kind: "unregister", limit: 1000 })
          .reduce((max, t) => Math.max(max, (t.payload as { version: number }).version), 1),
        now,
        now,
      );
      this.#armNext(now);
      this.#changed(now);
    });
    return this.describe();
  }

  /**
   * The schedule's settings, state and recent runs (their statuses asked of their executions).
   *
   * @throws BatonError `SCHEDULE_NOT_FOUND`.
   */
  async describe(): Promise<ScheduleInfo> {
    this.#require();
    await this.#refresh(false);
    const row = this.#require();
    return infoOf(this.sql, row, await decode<Value>(row.input));
  }

  /** Stops firing until `resume()`; fires meanwhile never happen (nothing to catch up). */
  async pause(): Promise<ScheduleInfo> {
    this.#require();
    await this.#settleDue();
    const row = this.#require();
    if (!row.paused) {
      const now = this.now();
      this.sql.transaction(() => {
        this.sql.run("UPDATE _baton_schedule SET paused = 1, next_fire_at = NULL WHERE id = 1");
        this.#changed(now);
      });
      // After the commit: a fire timer left by a failure here finds the schedule paused.
      await this.#cancelFires(null);
    }
    return this.describe();
  }

  /** Fires again from now on (fires while paused are not caught up). */
  async resume(): Promise<ScheduleInfo> {
    const row = this.#require();
    if (row.paused) {
      const now = this.now();
      const armed = this.sql.transaction(() => {
        this.sql.run(
          "UPDATE _baton_schedule SET paused = 0, cursor = MAX(cursor, ?) WHERE id = 1",
          now,
        );
        const key = this.#armNext(now);
        this.#changed(now);
        return key;
      });
      await this.#cancelFires(armed);
    }
    return this.describe();
  }

  /**
   * Changes the schedule's settings (any but its id); the next fire is computed again. Runs
   * already started are not touched.
   *
   * @throws BatonError as `create`, and `SCHEDULE_NOT_FOUND`.
   */
  update(patch: ScheduleUpdate): Promise<ScheduleInfo> {
    return this.#update(patch, 1);
  }

  async #update(patch: ScheduleUpdate, attempt: number): Promise<ScheduleInfo> {
    this.#require();
    if (typeof patch !== "object" || patch === null) {
      invalidArgument("update", "must be an object of the settings to change", patch);
    }
    if ("id" in patch || "paused" in patch) {
      invalidArgument("update", "cannot change id or paused (use pause() and resume())", patch);
    }
    // A fire already due (its alarm waiting out the jitter, or late) happens under the old settings.
    await this.#settleDue();
    const row = this.#require();
    const current = settingsOf(row);
    const merged: ScheduleUpdate & { workflow?: unknown } = {
      ...specOf(current, await decode<Value>(row.input)),
      ...patch,
    };
    // Giving one of cron / every replaces the other.
    if (patch.cron !== undefined && patch.every === undefined) merged.every = undefined;
    if (patch.every !== undefined && patch.cron === undefined) merged.cron = undefined;
    const now = this.now();
    const settings = await checkSpec(merged, now, false);
    this.#executions(settings.binding);
    const digest = await inputDigest("schedule", { ...settings, paused: row.paused === 1 });
    const input = await encode(settings.input);
    const anchor =
      settings.startAt === null && current.everyMs === settings.everyMs
        ? row.anchor
        : anchorOf(settings, now);
    // Another change came in during the awaits: merge into that one instead (a few times).
    if (this.#require().version !== row.version) {
      if (attempt >= 5) {
        throw new BatonError(
          "SCHEDULE_CONFLICT",
          "The schedule kept changing during update(); try again.",
        );
      }
      return this.#update(patch, attempt + 1);
    }
    const armed = this.sql.transaction(() => {
      this.sql.run(
        `UPDATE _baton_schedule SET digest = ?, settings = ?, input = ?, anchor = ?,
           cursor = MAX(?, COALESCE(last_fire_at, 0)) WHERE id = 1`,
        digest,
        JSON.stringify({ ...settings, input: null }),
        input,
        anchor,
        // As at creation: fires before now (or before the first) are not missed ones.
        Math.max(now, anchor - 1),
      );
      const key = this.#armNext(now);
      pruneRuns(this.sql, settings.keep);
      this.#changed(now);
      return key;
    });
    await this.#cancelFires(armed);
    return this.describe();
  }

  /**
   * Deletes the schedule: no more fires, its state and runs list gone (the executions it started
   * stay). Deleting one that does not exist does nothing.
   */
  async delete(): Promise<void> {
    const row = this.#row();
    if (!row) return;
    // Gone first, with a retried timer that takes it out of the list under a version newer than
    // any registration it sent (the registry keeps that as a tombstone, so a registration still
    // in flight cannot bring it back).
    const version = nextVersion(row.version);
    this.sql.transaction(() => {
      this.sql.run("DELETE FROM _baton_schedule_runs");
      this.sql.run("DELETE FROM _baton_schedule");
      this.timers.enqueue(
        "unregister",
        { id: row.schedule_id, version },
        { after: 0 },
        { key: `unregister:${version}`, maxAttempts: 500 },
      );
    });
    for (const kind of ["fire", "start", "drain", "register"] as const) {
      await this.timers.cancelKind(kind).catch(() => 0); // each finds the schedule gone
    }
    await this.timers.runDue();
  }

  /**
   * Starts a run now (fire time = now), whatever the overlap policy, and returns it. The schedule's
   * next fire is not moved.
   *
   * @throws BatonError `SCHEDULE_NOT_FOUND`.
   */
  async trigger(): Promise<ScheduleRun> {
    this.#require();
    const now = this.now();
    this.sql.transaction(() => {
      this.#record(now, "trigger", "starting");
      this.#changed(now);
    });
    await this.timers.runDue();
    return this.#run(now);
  }

  /**
   * Starts a run for every fire time in `[from, to)` (at most 1,000; none in the future), whatever
   * the overlap policy. A fire that already has a run is not run again (its execution id is the
   * same), so a backfill can be repeated safely.
   *
   * @throws BatonError `INVALID_ARGUMENT` (bad or future range, too many fires), `SCHEDULE_NOT_FOUND`.
   */
  async backfill(from: Date | number, to: Date | number): Promise<ScheduleRun[]> {
    const row = this.#require();
    const start = from instanceof Date ? from.getTime() : from;
    const end = to instanceof Date ? to.getTime() : to;
    const now = this.now();
    if (typeof start !== "number" || !Number.isSafeInteger(start) || start < 0) {
      invalidArgument("from", "must be a Date or a time in ms since the epoch", from);
    }
    if (typeof end !== "number" || !Number.isSafeInteger(end) || end <= start) {
      invalidArgument("to", "must be a Date or a time after from", to);
    }
    if (end > now + 1) invalidArgument("to", "must not be in the future", to);
    const fires = timingOfRow(row)
      .latest(end - 1, MAX_BACKFILL + 1, start - 1)
      .reverse();
    if (fires.length > MAX_BACKFILL) {
      invalidArgument("from", `covers more than ${MAX_BACKFILL} fires: backfill in parts`, from);
    }
    this.sql.transaction(() => {
      for (const fireAt of fires) this.#record(fireAt, "backfill", "starting");
      this.#changed(now);
    });
    await this.timers.runDue();
    return fires.map((fireAt) => this.#run(fireAt));
  }

  // ---- the registry (the instance named baton:schedules) -----------------------------------------

  /** @internal The registry's copy of a schedule (from that schedule's actor). */
  registerSchedule(summary: ScheduleSummary, version: number): void {
    this.#requireRegistry();
    this.ensureSchema();
    registerSummary(this.sql, summary, version);
  }

  /** @internal A deleted schedule leaves the registry; registrations up to `version` are refused. */
  unregisterSchedule(id: string, version: number): void {
    this.#requireRegistry();
    this.ensureSchema();
    unregister(this.sql, id, version);
  }

  /** A page of every schedule of this namespace, in id order (call it on `baton:schedules`). */
  listSchedules(query: { limit?: number; cursor?: string | null } = {}): ScheduleList {
    this.#requireRegistry();
    return listSummaries(this.schemaReady ? this.sql : null, query);
  }

  // ---- firing ----------------------------------------------------------------------------------

  /** Handles a fire that is due but not handled yet (its alarm still to come: jitter, lateness). */
  async #settleDue(): Promise<void> {
    const row = this.#row();
    if (row && !row.paused && row.next_fire_at !== null && row.next_fire_at <= this.now()) {
      await this.#fire();
    }
  }

  /** Cancels the pending fire timers but `keep` (the one just armed). */
  async #cancelFires(keep: string | null): Promise<void> {
    for (const timer of this.timers.list({ kind: "fire", state: "pending", limit: 1000 })) {
      if (timer.key !== keep) await this.timers.cancel(timer.id);
    }
  }

  /** The fire timer: handles every fire due now by the catch-up and overlap policies. */
  async #fire(): Promise<void> {
    const before = this.#row();
    if (!before) return;
    // The overlap check needs the runs' statuses (not under allow); the row is read again after.
    if (settingsOf(before).overlap !== "allow") await this.#refresh(true);
    const row = this.#row();
    if (!row || row.paused) return;
    const settings = settingsOf(row);
    const now = this.now();
    const due = timingOfRow(row).latest(now, MAX_CATCHUP + 1, row.cursor); // newest first
    this.sql.transaction(() => {
      const latest = due[0];
      if (latest !== undefined) {
        const onTime = now - latest <= GRACE_MS + settings.jitterMs;
        const chosen =
          settings.catchup === "all"
            ? due.slice(0, MAX_CATCHUP).reverse()
            : settings.catchup === "one" || onTime
              ? [latest]
              : [];
        const dropped = due.length - chosen.length;
        for (const fireAt of chosen) {
          this.#admit(fireAt, fireAt === latest && onTime ? "scheduled" : "catchup", settings);
        }
        this.sql.run(
          "UPDATE _baton_schedule SET cursor = ?, last_fire_at = ?, skipped = skipped + ? WHERE id = 1",
          latest,
          latest,
          dropped,
        );
      }
      this.#armNext(now);
      pruneRuns(this.sql, settings.keep);
      this.#changed(now);
    });
  }

  /** One fire under the overlap policy: started, skipped, or buffered. */
  #admit(fireAt: number, reason: RunReason, settings: Settings): void {
    const busy = activeRuns(this.sql) > 0;
    // A fire that already has a run (a trigger or backfill made it) is left as it is.
    if (runRow(this.sql, fireAt)) return;
    if (!busy || settings.overlap === "allow") {
      this.#record(fireAt, reason, "starting");
      return;
    }
    const row = this.#require();
    if (settings.overlap === "buffer-one" && row.buffered === null) {
      this.#record(fireAt, reason, "buffered");
      this.sql.run("UPDATE _baton_schedule SET buffered = ? WHERE id = 1", fireAt);
      this.timers.enqueue(
        "drain",
        { delay: DRAIN_FIRST_MS },
        { after: DRAIN_FIRST_MS },
        { key: `drain:${fireAt}` },
      );
      return;
    }
    if (this.#record(fireAt, reason, "skipped")) {
      this.sql.run("UPDATE _baton_schedule SET skipped = skipped + 1 WHERE id = 1");
    }
  }

  /**
   * Records a run and, to start it, its start timer; whether a run was recorded. A fire already
   * recorded keeps its run, but a backfill or trigger starts one that was skipped or whose start
   * was refused.
   */
  #record(fireAt: number, reason: RunReason, status: "starting" | "skipped" | "buffered"): boolean {
    const row = this.#require();
    const executionId = `${row.schedule_id}/${new Date(fireAt).toISOString()}`;
    const again =
      reason === "backfill" || reason === "trigger"
        ? `UPDATE SET status = 'starting', reason = excluded.reason, error = NULL,
             recorded_at = excluded.recorded_at WHERE status IN ('skipped', 'start_failed')`
        : "NOTHING";
    const added = this.sql.one<{ fire_at: number }>(
      `INSERT INTO _baton_schedule_runs (fire_at, execution_id, reason, status, recorded_at)
       VALUES (?, ?, ?, ?, ?) ON CONFLICT (fire_at) DO ${again} RETURNING fire_at`,
      fireAt,
      executionId,
      reason,
      status,
      this.now(),
    );
    if (added && status === "starting") {
      this.timers.enqueue(
        "start",
        { fireAt },
        { after: 0 },
        { key: `start:${fireAt}`, maxAttempts: START_ATTEMPTS },
      );
    }
    return added !== undefined;
  }

  /** The start timer: creates the run's execution (idempotent: its id is the fire's). */
  async #startRun(fireAt: number, attempts: number): Promise<void> {
    const row = this.#row();
    const run = row ? runRow(this.sql, fireAt) : undefined;
    if (!row || run?.status !== "starting") return;
    const settings = settingsOf(row);
    try {
      const stub = this.#executions(settings.binding).getByName(run.execution_id);
      const info = (await stub.start(settings.workflow, await decode<Value>(row.input), {
        id: run.execution_id,
        ...(settings.timeoutMs === null ? {} : { timeout: settings.timeoutMs }),
      })) as ExecutionInfo;
      setRunStatus(this.sql, fireAt, runStatus(info.status), info.error);
    } catch (error) {
      const code = (error as { code?: unknown })?.code;
      const refused = typeof code === "string" && REFUSED.has(code);
      if (!refused && attempts < START_ATTEMPTS) throw error; // the timer tries again
      const message = error instanceof Error ? error.message : String(error);
      setRunStatus(this.sql, fireAt, "start_failed", {
        code: typeof code === "string" ? code : "STEP_FAILED",
        message,
      });
    }
  }

  /** buffer-one: starts the buffered fire once no run is going, else looks again later. */
  async #drain(delay: number): Promise<void> {
    await this.#refresh(true);
    const row = this.#row();
    if (!row || row.buffered === null) return;
    if (activeRuns(this.sql) > 0) {
      const next = Math.min(delay * 2, DRAIN_MAX_MS);
      // This timer is still claimed: the next one needs a key of its own.
      await this.timers.schedule(
        "drain",
        { delay: next },
        { after: delay },
        { key: `drain:${this.now()}` },
      );
      return;
    }
    const fireAt = row.buffered;
    this.sql.transaction(() => {
      this.sql.run("UPDATE _baton_schedule SET buffered = NULL WHERE id = 1");
      this.sql.run(
        "UPDATE _baton_schedule_runs SET status = 'starting' WHERE fire_at = ? AND status = 'buffered'",
        fireAt,
      );
      this.timers.enqueue(
        "start",
        { fireAt },
        { after: 0 },
        { key: `start:${fireAt}`, maxAttempts: START_ATTEMPTS },
      );
      this.#changed(this.now());
    });
  }

  /** Arms the fire timer for the next fire after `now` (or records that there is none). */
  #armNext(now: number): string | null {
    const row = this.#require();
    const settings = settingsOf(row);
    const next = row.paused ? null : timingOfRow(row).next(Math.max(now, row.cursor));
    this.sql.run("UPDATE _baton_schedule SET next_fire_at = ? WHERE id = 1", next);
    if (next === null) return null;
    const jitter = settings.jitterMs > 0 ? Math.floor(Math.random() * settings.jitterMs) : 0;
    // One timer per fire time: a duplicate arming of the same fire is the same timer. Callers
    // that change the timing cancel the pending one first.
    this.timers.enqueue("fire", {}, { at: next + jitter }, { key: `fire:${next}` });
    return `fire:${next}`;
  }

  // ---- runs --------------------------------------------------------------------------------------

  /**
   * Asks the executions of the runs that may still be going how they are, newest first, 20 at a
   * time; `untilGoing` (the overlap check) stops at the first batch with a run still going. A run
   * still `starting` whose start timer is gone (dead-lettered) is asked too.
   */
  async #refresh(untilGoing: boolean): Promise<void> {
    const row = this.#row();
    if (!row) return;
    const settings = settingsOf(row);
    const runs = this.sql
      .all<RunRow>(
        `SELECT * FROM _baton_schedule_runs
         WHERE status IN ('starting', 'pending', 'running', 'paused') ORDER BY fire_at DESC`,
      )
      .filter((run) => {
        if (run.status !== "starting") return true;
        const timer = this.timers.get(`start:${run.fire_at}`);
        return timer === undefined || timer.state === "dead";
      });
    for (let i = 0; i < runs.length; i += REFRESH_BATCH) {
      const batch = runs.slice(i, i + REFRESH_BATCH);
      await Promise.all(batch.map((run) => this.#ask(run, settings.binding)));
      const going = batch.some((run) => {
        const status = runRow(this.sql, run.fire_at)?.status;
        return (
          status === "starting" ||
          status === "pending" ||
          status === "running" ||
          status === "paused"
        );
      });
      if (untilGoing && going) return;
    }
  }

  /** One run's status, from its execution. */
  async #ask(run: RunRow, binding: string): Promise<void> {
    try {
      const stub = this.#executions(binding).getByName(run.execution_id);
      const info = (await stub.status()) as ExecutionInfo;
      setRunStatus(this.sql, run.fire_at, runStatus(info.status), info.error);
    } catch (error) {
      if ((error as { code?: unknown })?.code !== "EXECUTION_NOT_FOUND") return; // last known stands
      // Deleted (or its retention ran out), or never started (its start timer gave up).
      setRunStatus(
        this.sql,
        run.fire_at,
        run.status === "starting" ? "start_failed" : "cancelled",
        {
          code: "EXECUTION_NOT_FOUND",
          message:
            run.status === "starting"
              ? "The run's execution could not be started."
              : "The run's execution was deleted.",
        },
      );
    }
  }

  #run(fireAt: number): ScheduleRun {
    const row = runRow(this.sql, fireAt);
    if (!row) {
      throw new BatonError("STORAGE_ERROR", `The run of fire ${fireAt} is missing.`, { fireAt });
    }
    return toRun(row);
  }

  // ---- state -------------------------------------------------------------------------------------

  #row(): ScheduleRow | undefined {
    if (!this.schemaReady) return undefined;
    return this.sql.one<ScheduleRow>("SELECT * FROM _baton_schedule WHERE id = 1");
  }

  #require(): ScheduleRow {
    const row = this.#row();
    if (!row) {
      throw new BatonError(
        "SCHEDULE_NOT_FOUND",
        `No schedule "${this.ctx.id.name ?? "?"}": it was never created, or it was deleted.`,
        { id: this.ctx.id.name ?? null },
      );
    }
    return row;
  }

  /** A change: the version moves and the registry gets the new summary (a retried timer). */
  #changed(now: number): void {
    // Above the last, and at least the real time in ms (see nextVersion).
    const version = this.sql.value<number>(
      "UPDATE _baton_schedule SET version = MAX(version + 1, ?), updated_at = ? WHERE id = 1 RETURNING version",
      Date.now(),
      now,
    ) as number;
    this.timers.enqueue("register", {}, { after: 0 }, { key: `register:${version}` });
  }

  /** The register timer: the registry gets this schedule's summary (again if it changed since). */
  async #register(): Promise<void> {
    for (let i = 0; i < 5; i++) {
      const row = this.#row();
      if (!row) return;
      await this.#registry().registerSchedule(summaryOf(this.sql, row), row.version);
      if (this.#row()?.version === row.version) return;
    }
  }

  // ---- bindings ----------------------------------------------------------------------------------

  /** This actor's own name as the schedule id (a call with another id is refused). */
  #checkName(id: unknown): string {
    const checked = checkScheduleId(id);
    const own = this.ctx.id.name;
    if (own !== undefined && own !== checked) {
      invalidArgument("id", `must be this Schedule actor's name ("${own}")`, id);
    }
    return checked;
  }

  #requireRegistry(): void {
    if (this.ctx.id.name !== SCHEDULE_REGISTRY) {
      throw new BatonError(
        "INVALID_ARGUMENT",
        `Only the Schedule actor named "${SCHEDULE_REGISTRY}" lists schedules; this one is "${this.ctx.id.name ?? "?"}".`,
      );
    }
  }

  #registry(): DurableObjectStub<ScheduleActor> {
    return this.#namespaceOfSelf().getByName(SCHEDULE_REGISTRY);
  }

  /** The namespace this actor belongs to, found in its env (the binding of its own class). */
  #namespaceOfSelf(): DurableObjectNamespace<ScheduleActor> {
    const env = this.env as Record<string, unknown>;
    const name = this.registryBinding;
    const ns = env[name] as { getByName?: unknown } | undefined;
    if (!ns || typeof ns.getByName !== "function") {
      throw new BatonError(
        "CONFIGURATION_ERROR",
        `The Schedule actor needs its own namespace bound as "${name}" in its env (set registryBinding in a subclass for another name).`,
        { binding: name },
      );
    }
    return ns as DurableObjectNamespace<ScheduleActor>;
  }

  /** Name of this actor's own namespace binding in its env (for the registry). Default "Schedules". */
  protected readonly registryBinding: string = "Schedules";

  #executions(binding: string): DurableObjectNamespace<ExecutionActor<unknown>> & {
    getByName(name: string): ExecutionStub;
  } {
    const ns = (this.env as Record<string, unknown>)[binding] as
      | { getByName?: unknown }
      | undefined;
    if (!ns || typeof ns.getByName !== "function") {
      throw new BatonError(
        "CONFIGURATION_ERROR",
        `The Schedule actor has no Execution actor namespace bound as "${binding}" in its env. Bind it, or give the schedule's binding.`,
        { binding },
      );
    }
    return ns as never;
  }
}

/**
 * The version of a schedule's next change: above the last, and at least the real time in ms, so
 * a schedule created again under a deleted one's id outranks that one's tombstone.
 */
function nextVersion(version: number): number {
  return Math.max(version + 1, Date.now());
}
