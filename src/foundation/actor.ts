import { DurableObject } from "cloudflare:workers";
import { BatonError } from "./errors.ts";
import { FSM_TABLE_SQL, type MachineDefinition, StateMachine } from "./fsm.ts";
import { type Migration, runMigrations } from "./migrations.ts";
import { Scheduler } from "./scheduler/scheduler.ts";
import { type SchedulerOptions, TIMERS_TABLE_SQL, type TimerMap } from "./scheduler/timer-table.ts";
import { Sql } from "./sql.ts";
import { VALUES_TABLE_SQL, ValueStore } from "./values.ts";

/**
 * Baton's own tables, in the schema scope `"baton"`. Append-only: add a migration, never edit one.
 */
export const FRAMEWORK_MIGRATIONS: readonly Migration[] = [
  { version: 1, name: "timers", up: (sql) => sql.run(TIMERS_TABLE_SQL) },
  { version: 2, name: "values", up: (sql) => sql.run(VALUES_TABLE_SQL) },
  { version: 3, name: "state machines", up: (sql) => sql.run(FSM_TABLE_SQL) },
];

/**
 * Schema scope of the migrations an actor subclass declares with {@link Actor.migrations}.
 *
 * @example
 * ```ts
 * schemaVersion(sql, APP_SCHEMA); // version of your actor's own schema
 * ```
 */
export const APP_SCHEMA = "app";

/**
 * The base class of Baton's actors, and of yours: a SQLite-backed Durable Object with
 *
 * - `this.sql` — a typed SQL helper ({@link Sql});
 * - schema migrations — Baton's tables and the ones you declare in {@link Actor.migrations},
 *   applied once per wake, before any request;
 * - `this.timers` — a durable {@link Scheduler}: many timers over the one alarm, with retries
 *   and dead letters;
 * - `this.values` — a {@link ValueStore} for codec-encoded values of any size;
 * - {@link Actor.machine} — persisted state machines.
 *
 * Bind the subclass under `new_sqlite_classes` in `wrangler.toml`. If you override `alarm()`,
 * call `super.alarm()` in it, or timers stop firing.
 *
 * @example
 * ```ts
 * import { Actor, type Migration } from "baton";
 *
 * type Timers = { expire: { key: string } };
 *
 * export class Cache extends Actor<Env, Timers> {
 *   constructor(ctx: DurableObjectState, env: Env) {
 *     super(ctx, env);
 *     this.timers.on("expire", ({ key }) => {
 *       this.sql.run("DELETE FROM entries WHERE key = ?", key);
 *     });
 *   }
 *
 *   protected override migrations(): Migration[] {
 *     return [{ version: 1, up: (sql) => sql.run("CREATE TABLE entries (key TEXT PRIMARY KEY, value TEXT)") }];
 *   }
 *
 *   async put(key: string, value: string, ttl: string) {
 *     this.sql.run("INSERT OR REPLACE INTO entries VALUES (?, ?)", key, value);
 *     await this.timers.schedule("expire", { key }, { after: ttl }, { key: `expire:${key}` });
 *   }
 * }
 * ```
 */
export abstract class Actor<
  Env = unknown,
  Timers extends TimerMap = TimerMap,
> extends DurableObject<Env> {
  /** Typed SQL over this object's database. */
  protected readonly sql: Sql;
  /** The durable timer scheduler (one alarm, many timers). */
  protected readonly timers: Scheduler<Timers>;
  /** Codec-encoded values of any size. */
  protected readonly values: ValueStore;

  /** Whether the schema is in place: false only while a deferred schema waits for a write. */
  #schemaReady = false;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = new Sql(ctx.storage);
    // Synchronous SQL, so the schema is ready before the subclass constructor body runs and
    // before any request or alarm reaches the object. An actor that defers its schema leaves a
    // new object (no tables yet) untouched: its reads find nothing and store nothing.
    try {
      if (!this.deferSchema() || this.migrations().length > 0 || hasSchema(this.sql)) {
        this.ensureSchema();
      }
    } catch (error) {
      throw withoutSqlite(error, new.target.name) ?? error;
    }
    this.values = new ValueStore(this.sql);
    this.timers = new Scheduler<Timers>(
      ctx.storage,
      this.sql,
      () => this.now(),
      this.schedulerOptions(),
    );
    // Only an object with live timers needs its alarm checked before the first request; one
    // without a schema has none.
    if (!this.#schemaReady) return;
    if (this.timers.nextDue() === null) void this.timers.wake();
    else void ctx.blockConcurrencyWhile(() => this.timers.wake());
  }

  /**
   * Whether this object's schema is in place. Only an actor kind that defers its schema (the
   * Execution actor) can be without one: a new object before its first write.
   */
  protected get schemaReady(): boolean {
    return this.#schemaReady;
  }

  /**
   * Applies the pending migrations (Baton's, the actor kind's, then yours); a no-op once done.
   * An actor that defers its schema calls it before its first write.
   *
   * @throws BatonError `MIGRATION_ERROR`.
   */
  protected ensureSchema(): void {
    if (this.#schemaReady) return;
    runMigrations(this.sql, "baton", FRAMEWORK_MIGRATIONS);
    for (const { scope, migrations } of this.frameworkSchemas()) {
      runMigrations(this.sql, scope, migrations);
    }
    const own = this.migrations();
    if (own.length > 0) runMigrations(this.sql, APP_SCHEMA, own);
    this.#schemaReady = true;
  }

  /**
   * @internal The schemas of a Baton actor kind (the Execution actor's tables ...), migrated
   * after Baton's own and before the app's. Called from the base constructor: return constants.
   */
  protected frameworkSchemas(): readonly { scope: string; migrations: readonly Migration[] }[] {
    return [];
  }

  /**
   * @internal Whether a new object (no tables yet) waits for its first write to create its
   * schema, so that reading an object that was never written leaves no storage behind. Only
   * without app migrations (yours run at every start, as they always do). An actor that answers
   * true checks {@link Actor.schemaReady} before reading and calls {@link Actor.ensureSchema}
   * before writing; its `alarm()` does nothing until then (there can be no timer).
   */
  protected deferSchema(): boolean {
    return false;
  }

  /**
   * The schema migrations of your actor's own tables (scope `"app"`), numbered from 1. They run
   * from the base constructor, so return a constant list: subclass fields are not set yet.
   */
  protected migrations(): readonly Migration[] {
    return [];
  }

  /** Scheduler tuning. Called from the base constructor, like {@link Actor.migrations}. */
  protected schedulerOptions(): SchedulerOptions {
    return {};
  }

  /**
   * The actor's clock in ms since the epoch; every due time is measured on it. Tests may
   * override it to move time forward deterministically.
   */
  protected now(): number {
    return Date.now();
  }

  /**
   * A persisted state machine stored in this object (see {@link StateMachine}).
   *
   * @example
   * ```ts
   * const door = this.machine<"open" | "closed", "open" | "close">({
   *   name: "door",
   *   initial: "closed",
   *   transitions: { closed: { open: "open" }, open: { close: "closed" } },
   * });
   * door.send("open");
   * ```
   */
  protected machine<S extends string, E extends string>(
    definition: MachineDefinition<S, E>,
  ): StateMachine<S, E> {
    return new StateMachine(this.sql, definition, () => this.now());
  }

  /** Runs due timers. Override only to add work, and call `super.alarm()`. */
  override async alarm(_info?: AlarmInvocationInfo): Promise<void> {
    if (!this.#schemaReady) return;
    await this.timers.run();
  }
}

/** Whether Baton's migrations ever ran in this object (one indexed lookup). */
function hasSchema(sql: Sql): boolean {
  return (
    sql.value<number>(
      "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_baton_migrations'",
    ) === 1
  );
}

/**
 * The error to give when the object has no SQLite storage (its class is bound without
 * `new_sqlite_classes`), naming the fix; `undefined` for any other error.
 */
function withoutSqlite(error: unknown, className: string): BatonError | undefined {
  const message = error instanceof Error ? error.message : String(error);
  if (!/SQL is not enabled/i.test(message)) return undefined;
  return new BatonError(
    "CONFIGURATION_ERROR",
    `Durable Object class "${className}" has no SQLite storage, and Baton's actors keep their state in SQLite. List it in new_sqlite_classes in a [[migrations]] entry of wrangler.toml, e.g.\n[[migrations]]\ntag = "v1"\nnew_sqlite_classes = ["${className}"]\n(A class already deployed with key-value storage cannot be switched: bind a new class name.)`,
    { class: className },
  );
}
