/**
 * The Worker the tests run in. Its actors expose the foundation's in-actor APIs over native RPC
 * so tests go through real stubs, real SQLite and real alarms.
 */
import { DurableObject } from "cloudflare:workers";
import devWorker from "../examples/dev/worker.ts";
import { Orders, orderFlow, Payments } from "../examples/orders/orders.ts";
import { Reminders } from "../examples/reminders/reminders.ts";
import {
  Actor,
  type BatonApi,
  BatonService,
  CheckpointActor,
  dashboard,
  ExecutionActor,
  ExecutionIndex,
  gateway,
  type IndexUpdate,
  type ListTimersOptions,
  LockActor,
  type Migration,
  ScheduleActor,
  type ScheduleOptions,
  type SchedulerOptions,
  type TimerInfo,
  type When,
} from "../src/index.ts";
import {
  CompatExecutions,
  Contexts,
  Lifecycle,
  Patient,
  Pipeline3,
  Stamps,
  Trip,
} from "./compat-workflows.ts";
import { kitWorkflows } from "./kit-workflows.ts";
import { TestLongWorkflow, TestWorkflow } from "./ports/vitest-workflows.ts";
import { Demo, Demo2, Demo3 } from "./ports/workers-sdk-fixture.ts";
import { MyWorkflow } from "./ports/workflows-starter.ts";
import { allWorkflows, codeVariant, greet, liveActors, patchVariants, shape } from "./workflows.ts";

// The Workflows programs (test/ports, test/compat-workflows.ts): each class is its own
// WorkerEntrypoint too, bound to itself as a Workflow binding in wrangler.toml.
export {
  CompatExecutions,
  Contexts,
  Demo,
  Demo2,
  Demo3,
  Lifecycle,
  MyWorkflow,
  Orders,
  Patient,
  Payments,
  Pipeline3,
  Reminders,
  Stamps,
  TestLongWorkflow,
  TestWorkflow,
  Trip,
};

export interface Env {
  TimerActor: DurableObjectNamespace<TimerActor>;
  PlainActor: DurableObjectNamespace<PlainActor>;
  Reminders: DurableObjectNamespace<Reminders>;
  TestExecutions: DurableObjectNamespace<TestExecutions>;
  Probe: DurableObjectNamespace<Probe>;
  Orders: DurableObjectNamespace<Orders>;
  Payments: DurableObjectNamespace<Payments>;
  Locks: DurableObjectNamespace<TestLocks>;
  Checkpoints: DurableObjectNamespace<TestCheckpoints>;
  ExecutionIndex: DurableObjectNamespace<TestIndex>;
  KvBacked: DurableObjectNamespace<KvBackedExecutions>;
  KitExecutions: DurableObjectNamespace<KitExecutions>;
  Executions: DurableObjectNamespace<CompatExecutions>;
  Schedules: DurableObjectNamespace<TestSchedules>;
  WORKFLOW: Workflow;
  WORKFLOW2: Workflow;
  WORKFLOW3: Workflow<{ doRetry: boolean; errorMessage: string }>;
  MY_WORKFLOW: Workflow;
  TEST_WORKFLOW: Workflow;
  TEST_LONG_WORKFLOW: Workflow;
  ORDERS: Fetcher;
  PLATFORM: Service<Platform>;
  TEST_TOKEN: string;
  BATON_TOKEN: string;
}

declare global {
  namespace Cloudflare {
    // The `env` of `cloudflare:test` is this Worker's env.
    interface Env extends TestEnv {}
  }
}

type TestEnv = Env;

/** Timer kinds the test actor handles. */
export type TestTimers = {
  /** Appends to the `fired` log. */
  record: { tag: string };
  /** Always throws. */
  fail: { tag: string };
  /** Throws until attempt `succeedOn`, then records. */
  flaky: { tag: string; succeedOn: number };
  /** Records, then aborts the object (as an out-of-memory or a reset would). */
  crash: { tag: string };
  /** Cancels the timer with `key`, then records. */
  cancelOther: { tag: string; key: string };
  /** Records, then schedules itself again under the same key until `times` runs are done. */
  repeat: { tag: string; times: number };
  /** A kind the actor has no handler for. */
  orphanKind: { tag: string };
  /** Records, then schedules a `record` timer due now under `key`. */
  scheduleKey: { tag: string; key: string };
  /** Records, cancels itself, then throws. */
  cancelSelfThenThrow: { tag: string };
};

export interface FiredRow {
  seq: number;
  tag: string;
  kind: string;
  timerId: number;
  attempt: number;
  dueAt: number;
  firedAt: number;
  [key: string]: string | number;
}

type Kind = keyof TestTimers & string;
/** A timer of this actor, with its payload typed (`unknown` does not cross a typed stub). */
export type TestTimer = TimerInfo<Kind, TestTimers[Kind]>;
type OrderState = "pending" | "processing" | "shipped" | "delivered" | "cancelled";
type OrderEvent = "start" | "ship" | "deliver" | "cancel";

/** An actor built on the Baton base class, with a clock the tests move. */
export class TimerActor extends Actor<Env, TestTimers> {
  /** setAlarm calls seen by this instance (counted by wrapping the storage method). */
  #alarmSets = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const setAlarm = ctx.storage.setAlarm.bind(ctx.storage);
    ctx.storage.setAlarm = (time, options) => {
      this.#alarmSets++;
      return setAlarm(time, options);
    };
    this.sql.run("UPDATE test_meta SET wakes = wakes + 1");
    this.timers
      .on("record", (p, t) => this.#log(p.tag, t))
      .on("fail", () => {
        throw new Error("this handler always fails");
      })
      .on("flaky", (p, t) => {
        if (t.attempts < p.succeedOn) throw new Error(`flaky attempt ${t.attempts}`);
        this.#log(p.tag, t);
      })
      .on("crash", async (p, t) => {
        this.#log(p.tag, t);
        await this.ctx.storage.sync();
        this.ctx.abort("crash test");
      })
      .on("cancelOther", async (p, t) => {
        await this.timers.cancel(p.key);
        this.#log(p.tag, t);
      })
      .on("scheduleKey", async (p, t) => {
        this.#log(p.tag, t);
        await this.timers.schedule(
          "record",
          { tag: `${p.tag}-scheduled` },
          { after: 0 },
          { key: p.key },
        );
      })
      .on("cancelSelfThenThrow", async (p, t) => {
        this.#log(p.tag, t);
        const self = await this.timers.cancel(t.id);
        // Cancelling something else that does not exist says so, even after the self-cancel.
        const other = await this.timers.cancel("no-such-timer");
        this.#log(`${p.tag}:self=${self}:other=${other}`, t);
        throw new Error("fails after cancelling itself");
      })
      .on("repeat", async (p, t) => {
        this.#log(p.tag, t);
        const done = this.sql.value<number>("SELECT COUNT(*) FROM fired WHERE tag = ?", p.tag) ?? 0;
        if (done < p.times) {
          await this.timers.schedule("repeat", p, { after: 10 }, { key: `repeat:${p.tag}` });
        }
      });
  }

  protected override migrations(): Migration[] {
    return [
      {
        version: 1,
        name: "test tables",
        up: (sql) => {
          sql.run(`CREATE TABLE fired (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, tag TEXT NOT NULL, kind TEXT NOT NULL,
            timer_id INTEGER NOT NULL, attempt INTEGER NOT NULL, due_at INTEGER NOT NULL,
            fired_at INTEGER NOT NULL) STRICT`);
          // The actor's clock is frozen at creation and moves only through advanceClock().
          sql.run("CREATE TABLE test_meta (clock INTEGER NOT NULL, wakes INTEGER NOT NULL)");
          sql.run("INSERT INTO test_meta VALUES (?, 0)", Date.now());
        },
      },
      {
        version: 2,
        name: "migration log",
        up: (sql) => {
          sql.run("CREATE TABLE migration_log (version INTEGER NOT NULL, at INTEGER NOT NULL)");
          sql.run("INSERT INTO migration_log VALUES (2, ?)", Date.now());
        },
      },
      {
        version: 3,
        name: "scheduler options",
        up: (sql) => {
          sql.run("ALTER TABLE test_meta ADD COLUMN batch_size INTEGER");
          sql.run("ALTER TABLE test_meta ADD COLUMN max_per_run INTEGER");
        },
      },
    ];
  }

  protected override schedulerOptions(): SchedulerOptions {
    const row = this.sql.one<{ batch_size: number | null; max_per_run: number | null }>(
      "SELECT batch_size, max_per_run FROM test_meta",
    );
    return {
      ...(row?.batch_size ? { batchSize: row.batch_size } : {}),
      ...(row?.max_per_run ? { maxPerRun: row.max_per_run } : {}),
    };
  }

  /** Stores scheduler options; they apply from the next wake (evict the object). */
  configureScheduler(batchSize: number, maxPerRun: number): void {
    this.sql.run("UPDATE test_meta SET batch_size = ?, max_per_run = ?", batchSize, maxPerRun);
  }

  /** Overwrites a timer's stored payload with bytes that cannot be decoded. */
  corruptPayload(id: number): void {
    this.sql.run(
      "UPDATE _baton_timers SET payload = ? WHERE id = ?",
      new Uint8Array([0xba, 1, 0, 0xff, 0xfe]),
      id,
    );
  }

  protected override now(): number {
    return this.sql.value<number>("SELECT clock FROM test_meta") ?? Date.now();
  }

  #log(tag: string, timer: TimerInfo): void {
    this.sql.run(
      "INSERT INTO fired (tag, kind, timer_id, attempt, due_at, fired_at) VALUES (?, ?, ?, ?, ?, ?)",
      tag,
      timer.kind,
      timer.id,
      timer.attempts,
      timer.dueAt,
      this.now(),
    );
  }

  // ---- clock -------------------------------------------------------------------------------

  /** Moves this actor's clock forward by `ms`; returns the new actor time. */
  advanceClock(ms: number): number {
    this.sql.run("UPDATE test_meta SET clock = clock + ?", ms);
    return this.now();
  }

  clock(): number {
    return this.now();
  }

  // ---- scheduler over RPC ------------------------------------------------------------------

  schedule<K extends Kind>(kind: K, payload: TestTimers[K], when: When, options?: ScheduleOptions) {
    return this.timers.schedule(kind, payload, when, options);
  }

  scheduleMany(
    timers: Array<{ kind: Kind; payload: TestTimers[Kind]; when: When } & ScheduleOptions>,
  ) {
    return this.timers.scheduleMany(timers);
  }

  /** Schedules `count` record timers due at shuffled times `base + i` (one RPC, one call). */
  async scheduleShuffled(count: number, base: number): Promise<number> {
    const order = Array.from({ length: count }, (_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const j = (i * 7919 + 13) % (i + 1);
      [order[i], order[j]] = [order[j] as number, order[i] as number];
    }
    await this.timers.scheduleMany(
      order.map((i) => ({
        kind: "record" as const,
        payload: { tag: `t${i}` },
        when: { at: base + i },
      })),
    );
    return count;
  }

  cancel(idOrKey: number | string) {
    return this.timers.cancel(idOrKey);
  }

  cancelKind(kind: Kind) {
    return this.timers.cancelKind(kind);
  }

  getTimer(idOrKey: number | string): TestTimer | undefined {
    return this.timers.get(idOrKey) as TestTimer | undefined;
  }

  list(options?: ListTimersOptions): TestTimer[] {
    return this.timers.list(options) as TestTimer[];
  }

  deadLetters(): TestTimer[] {
    return this.timers.deadLetters() as TestTimer[];
  }

  async retry(id: number, when?: When): Promise<TestTimer> {
    return (await this.timers.retry(id, when)) as TestTimer;
  }

  purgeDeadLetters(ids?: number[]) {
    return this.timers.purgeDeadLetters(ids);
  }

  pendingCount() {
    return this.timers.pendingCount();
  }

  nextDue() {
    return this.timers.nextDue();
  }

  /** The object's alarm time (real clock), or null. */
  alarmAt(): Promise<number | null> {
    return this.ctx.storage.getAlarm();
  }

  /** setAlarm calls made by this instance so far. */
  alarmSets(): number {
    return this.#alarmSets;
  }

  /** Clears the alarm without touching the timer table (simulates a lost alarm). */
  async dropAlarm(): Promise<void> {
    await this.ctx.storage.deleteAlarm();
  }

  fired(tag?: string): FiredRow[] {
    const rows = this.sql.all<{
      seq: number;
      tag: string;
      kind: string;
      timer_id: number;
      attempt: number;
      due_at: number;
      fired_at: number;
    }>(
      tag === undefined
        ? "SELECT * FROM fired ORDER BY seq"
        : "SELECT * FROM fired WHERE tag = ? ORDER BY seq",
      ...(tag === undefined ? [] : [tag]),
    );
    return rows.map((r) => ({
      seq: r.seq,
      tag: r.tag,
      kind: r.kind,
      timerId: r.timer_id,
      attempt: r.attempt,
      dueAt: r.due_at,
      firedAt: r.fired_at,
    }));
  }

  /** Runs the due timers in this event, as an actor does after scheduling one due now. */
  runDue() {
    return this.timers.runDue();
  }

  firedCount(): number {
    return this.sql.value<number>("SELECT COUNT(*) FROM fired") ?? 0;
  }

  /** Tags fired, in firing order, as one compact string list (for large checks). */
  firedTags(): string[] {
    return this.sql.all<{ tag: string }>("SELECT tag FROM fired ORDER BY seq").map((r) => r.tag);
  }

  wakes(): number {
    return this.sql.value<number>("SELECT wakes FROM test_meta") ?? 0;
  }

  migrationLog(): number {
    return this.sql.value<number>("SELECT COUNT(*) FROM migration_log") ?? 0;
  }

  // ---- values, codec and SQL -----------------------------------------------------------------

  async putValue(key: string, value: Record<string, unknown> | string | number | Uint8Array) {
    return this.values.put("test", key, value);
  }

  /** The stored value (typed loosely: tests compare it structurally). */
  getValue(
    key: string,
  ): Promise<Record<string, unknown> | string | number | Uint8Array | undefined> {
    return this.values.get("test", key);
  }

  valueRows(key: string): number {
    return (
      this.sql.value<number>(
        "SELECT COUNT(*) FROM _baton_values WHERE ns = 'test' AND key = ?",
        key,
      ) ?? 0
    );
  }

  valueKeys(): string[] {
    return this.values.keys("test");
  }

  deleteValue(key: string): boolean {
    return this.values.delete("test", key);
  }

  /** Runs a statement that fails, so tests can see the error it raises. */
  badStatement(): void {
    this.sql.run("SELECT * FROM no_such_table WHERE id = ?", 1);
  }

  // ---- state machine ------------------------------------------------------------------------

  #order() {
    return this.machine<OrderState, OrderEvent>({
      name: "order",
      initial: "pending",
      transitions: {
        pending: { start: "processing", cancel: "cancelled" },
        processing: { ship: "shipped", cancel: "cancelled" },
        shipped: { deliver: "delivered" },
      },
      onTransition: ({ from, to, event }) => {
        this.sql.run(
          "INSERT INTO fired (tag, kind, timer_id, attempt, due_at, fired_at) VALUES (?, 'fsm', 0, 0, 0, ?)",
          `${from}-${event}->${to}`,
          this.now(),
        );
      },
    });
  }

  orderSend(event: OrderEvent | { type: OrderEvent }): OrderState {
    return this.#order().send(event);
  }

  orderState(): { state: OrderState; valid: OrderEvent[]; transitions: number } {
    const order = this.#order();
    return { state: order.state, valid: order.validEvents(), transitions: order.transitionCount };
  }

  orderCan(event: OrderEvent): boolean {
    return this.#order().can(event);
  }

  orderReset(): OrderState {
    return this.#order().reset();
  }
}

/**
 * A plain Durable Object (no Baton base): tests run library functions against its storage with
 * `runInDurableObject`, and it throws a Baton error over RPC for the guard test.
 */
export class PlainActor extends DurableObject<Env> {
  async throwBaton(code: string): Promise<void> {
    const { BatonError } = await import("../src/foundation/errors.ts");
    throw new BatonError(code as "INVALID_ARGUMENT", `thrown with ${code}`, { extra: 42 });
  }

  async throwPlain(): Promise<void> {
    const error = new Error("not a baton error") as Error & { code: string };
    error.code = "INVALID_ARGUMENT";
    throw error;
  }
}

// biome-ignore lint/suspicious/noExplicitAny: a mixin's base takes any constructor arguments
type ActorClass = abstract new (...args: any[]) => Actor<Env, any>;

/**
 * A clock the tests move, for a Baton actor: kept in the actor's own SQLite (so it survives
 * eviction) and read by `now()`, which the actor's timers and expiries use.
 */
function withTestClock<B extends ActorClass>(Base: B) {
  abstract class TestClock extends Base {
    protected override migrations(): Migration[] {
      return [
        {
          version: 1,
          up: (sql) => {
            sql.run("CREATE TABLE test_clock (now INTEGER NOT NULL)");
            sql.run("INSERT INTO test_clock VALUES (?)", Date.now());
          },
        },
      ];
    }

    protected override now(): number {
      return this.sql.value<number>("SELECT now FROM test_clock") ?? Date.now();
    }

    advanceClock(ms: number): number {
      this.sql.run("UPDATE test_clock SET now = now + ?", ms);
      return this.now();
    }

    clock(): number {
      return this.now();
    }

    nextDue(): number | null {
      return this.timers.nextDue();
    }
  }
  return TestClock;
}

/** The Execution actor under test: every test workflow, and a clock the tests move. */
export class TestExecutions extends withTestClock(ExecutionActor<Env>) {
  readonly workflows = allWorkflows;
  protected override readonly childBinding = "TestExecutions";
  /** Low, so a test can reach the cap of live subscribers per execution. */
  protected override readonly maxLiveSubscribers = 20;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    if (ctx.id.name) liveActors.set(ctx.id.name, ctx);
  }

  /** Timers of this execution, for tests (dead letters, wake-ups, heartbeat). */
  timerList() {
    return this.timers
      .list()
      .map((t) => ({ kind: t.kind, key: t.key, dueAt: t.dueAt, state: t.state }));
  }

  /** Callers waiting in this actor for the execution's end. */
  resultWaits(): number {
    return this.pendingResultWaits();
  }

  /** Simulates deploying another phase of the `patchy` workflow's code to this execution. */
  setPatchVariant(variant: string): void {
    patchVariants.set(this.ctx.id.name ?? "", variant);
  }

  /** Simulates deploying changed workflow code (read by the `shape` workflow). */
  setCodeVariant(variant: string): void {
    codeVariant.current = variant;
  }
}

/** A plain Execution actor, as a user's: the test kit's (baton/testing) tests run on it. */
export class KitExecutions extends ExecutionActor<Env> {
  readonly workflows = [...kitWorkflows, shape];
  protected override readonly childBinding = "KitExecutions";
}

/** An Execution actor bound without `new_sqlite_classes` (a mistake a user can make). */
export class KvBackedExecutions extends ExecutionActor<Env> {
  readonly workflows = allWorkflows;
}

/** The platform entrypoint of examples/cross-worker, served from this Worker's actors. */
export class Platform extends BatonService<Env, TestExecutions> {
  protected override readonly bindings = {
    executions: "TestExecutions",
    locks: "Locks",
    checkpoints: "Checkpoints",
    index: "ExecutionIndex",
  };
}

/** The execution index, with a switch that makes it refuse updates (an outage). */
export class TestIndex extends ExecutionIndex<Env> {
  protected override migrations(): Migration[] {
    return [{ version: 1, up: (sql) => sql.run("CREATE TABLE test_outage (down INTEGER)") }];
  }

  override async apply(updates: IndexUpdate[]): Promise<number> {
    if (this.sql.value<number>("SELECT COUNT(*) FROM test_outage")) {
      throw new Error("the index is down (test)");
    }
    return super.apply(updates);
  }

  setDown(down: boolean): void {
    this.sql.run("DELETE FROM test_outage");
    if (down) this.sql.run("INSERT INTO test_outage VALUES (1)");
  }
}

/** The Lock actor under test, with a clock the tests move. */
export class TestLocks extends withTestClock(LockActor<Env>) {}

/** The Schedule actor under test, with a clock the tests move (and set). */
export class TestSchedules extends withTestClock(ScheduleActor<Env>) {
  /** Puts the clock at `at` (ms since the epoch): a schedule's day of a DST change, say. */
  setClock(at: number): number {
    this.sql.run("UPDATE test_clock SET now = ?", at);
    return this.now();
  }

  /** Timers of this schedule, for tests. */
  timerList() {
    return this.timers
      .list()
      .map((t) => ({ kind: t.kind, key: t.key, dueAt: t.dueAt, state: t.state }));
  }
}

/** The Checkpoint actor under test, with a clock the tests move. */
export class TestCheckpoints extends withTestClock(CheckpointActor<Env>) {
  /** Every stored token column, to check that no token is stored in clear. */
  tokenRows(): string[] {
    return this.sql
      .all<{ hash: string; execution_id: string; event: string }>(
        "SELECT hash, execution_id, event FROM _baton_tokens",
      )
      .map((r) => `${r.hash}|${r.execution_id}|${r.event}`);
  }
}

/** A test-owned recorder outside the executions: counters, records and gates. */
export class Probe extends DurableObject<Env> {
  readonly #gates = new Map<string, Array<() => void>>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.storage.sql.exec(
      "CREATE TABLE IF NOT EXISTS hits (key TEXT PRIMARY KEY, n INTEGER NOT NULL)",
    );
    ctx.storage.sql.exec(
      "CREATE TABLE IF NOT EXISTS records (seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT, value TEXT)",
    );
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS gates (key TEXT PRIMARY KEY)");
  }

  hit(key: string): number {
    return this.ctx.storage.sql
      .exec<{ n: number }>(
        "INSERT INTO hits VALUES (?, 1) ON CONFLICT (key) DO UPDATE SET n = n + 1 RETURNING n",
        key,
      )
      .one().n;
  }

  count(key: string): number {
    return (
      this.ctx.storage.sql.exec<{ n: number }>("SELECT n FROM hits WHERE key = ?", key).toArray()[0]
        ?.n ?? 0
    );
  }

  counts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const row of this.ctx.storage.sql.exec<{ key: string; n: number }>(
      "SELECT key, n FROM hits",
    ))
      out[row.key] = row.n;
    return out;
  }

  record(key: string, value: Record<string, string | number | null>): void {
    this.ctx.storage.sql.exec(
      "INSERT INTO records (key, value) VALUES (?, ?)",
      key,
      JSON.stringify(value),
    );
  }

  records(key: string): Array<Record<string, string | number | null>> {
    return this.ctx.storage.sql
      .exec<{ value: string }>("SELECT value FROM records WHERE key = ? ORDER BY seq", key)
      .toArray()
      .map((r) => JSON.parse(r.value));
  }

  /** Resolves once `openGate(key)` has been called (now or later). */
  async waitGate(key: string): Promise<void> {
    if (this.ctx.storage.sql.exec("SELECT 1 FROM gates WHERE key = ?", key).toArray().length)
      return;
    await new Promise<void>((resolve) => {
      this.#gates.set(key, [...(this.#gates.get(key) ?? []), resolve]);
    });
  }

  openGate(key: string): void {
    this.ctx.storage.sql.exec("INSERT OR IGNORE INTO gates VALUES (?)", key);
    for (const resolve of this.#gates.get(key) ?? []) resolve();
    this.#gates.delete(key);
  }
}

/** The gateway the tests call through SELF: the test workflows, behind a token. */
export const testGateway = gateway({
  workflows: allWorkflows,
  auth: { secret: "TEST_TOKEN" },
  bindings: { executions: "TestExecutions" },
  path: "/test/rpc",
  livePrefix: "/test",
});
/** The same API behind an `authorize` hook (a header) instead of a token. */
const hookGateway = gateway({
  workflows: allWorkflows,
  auth: { authorize: (request) => request.headers.get("X-Test-User") === "ada" },
  bindings: { executions: "TestExecutions" },
  path: "/hook/rpc",
  livePrefix: "/hook",
  origins: ["https://app.example"],
});
export type TestApi = BatonApi<typeof allWorkflows>;

/**
 * A multi-tenant gateway: the principal is the tenant (header `X-Tenant`), which reaches only
 * executions, locks and checkpoint scopes whose names start with `<tenant>/`, and lists only
 * with that `idPrefix`. Small budgets, so the tests reach them.
 */
const tenantGateway = gateway({
  workflows: allWorkflows,
  auth: { authorize: (request) => request.headers.get("X-Tenant") || false },
  can: async (tenant, operation, target) => {
    // An asynchronous policy that takes a varying time (as a lookup would): the gateway must
    // keep a session's writes in order all the same.
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 4));
    const mine = `${tenant}/`;
    if (target.kind === "execution") {
      // Executions under "<tenant>/write-only/" may be started but not read.
      if (operation === "execution.result" && target.id.startsWith(`${mine}write-only/`)) {
        return false;
      }
      return target.id.startsWith(mine);
    }
    if (target.kind === "list") return target.query.idPrefix === mine;
    if (target.kind === "lock") return target.name.startsWith(mine);
    if (target.kind === "schedule") return target.id.startsWith(mine);
    if (target.kind === "schedules") return false;
    return target.scope.startsWith(mine);
  },
  limits: {
    callsPerBatch: 5,
    callsPerSession: 30,
    responseBytesPerBatch: 256 * 1024,
    responseBytesPerSession: 512 * 1024,
    pendingResultsPerSession: 2,
    maxResultWait: "300ms",
  },
  bindings: { executions: "TestExecutions" },
  path: "/tenant/rpc",
  livePrefix: "/tenant",
});
/** A gateway that serves one workflow, `greet`: the defaults refuse every other one. */
const greetGateway = gateway({
  workflows: [greet],
  auth: { secret: "TEST_TOKEN" },
  bindings: { executions: "TestExecutions" },
  path: "/greet/rpc",
  livePrefix: "/greet",
});
export type GreetApi = BatonApi<[typeof greet]>;

/** Dashboards: behind the token; anonymous; per tenant (a header), read-only, with a policy. */
const dashboards = [
  dashboard({
    path: "/t/dashboard",
    auth: { secret: "TEST_TOKEN" },
    executions: { TestExecutions: allWorkflows, Orders: [orderFlow] },
  }),
  dashboard({
    path: "/a/dashboard",
    auth: { anonymous: true },
    executions: { TestExecutions: "*" },
  }),
  dashboard({
    path: "/p/dashboard",
    auth: { authorize: (request) => request.headers.get("X-Tenant") || false },
    // A tenant's executions, except the input and outcome of those under "<tenant>/secret/".
    can: (tenant, operation, target) =>
      target.kind === "execution"
        ? target.id.startsWith(`${tenant}/`) &&
          !(operation === "execution.result" && target.id.startsWith(`${tenant}/secret/`))
        : target.kind === "list"
          ? target.query.idPrefix === `${tenant}/`
          : false,
    readOnly: true,
    executions: { TestExecutions: "*" },
    bindings: { checkpoints: "NoSuchBinding" },
  }),
];

// The test gateways and dashboards, then the dev Worker's routes, so tests can call them
// through SELF.
export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    return (
      (await testGateway.fetch(request, env)) ??
      (await hookGateway.fetch(request, env)) ??
      (await tenantGateway.fetch(request, env)) ??
      (await greetGateway.fetch(request, env)) ??
      (await dashboards[0]?.fetch(request, env)) ??
      (await dashboards[1]?.fetch(request, env)) ??
      (await dashboards[2]?.fetch(request, env)) ??
      devWorker.fetch(request, env as never)
    );
  },
} satisfies ExportedHandler<Env>;
