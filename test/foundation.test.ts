import { env, evictDurableObject, runInDurableObject, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { Reminders } from "../examples/reminders/reminders.ts";
import {
  BatonError,
  chunkParams,
  isBatonError,
  type Migration,
  parseDuration,
  placeholders,
  runMigrations,
  Sql,
  StateMachine,
  schemaVersion,
} from "../src/index.ts";
import { expectBatonError, timerActor, uniqueName } from "./helpers.ts";

describe("durations", () => {
  it.each([
    ["250ms", 250],
    ["30s", 30_000],
    ["5 minutes", 300_000],
    ["1h", 3_600_000],
    ["2 days", 172_800_000],
    ["1.5s", 1_500],
    [" 10 sec ", 10_000],
    ["3 weeks", 1_814_400_000],
    ["42", 42],
    [1500, 1500],
    [0, 0],
    [0.2, 1],
  ] as const)("parses %j as %d ms", (input, ms) => {
    expect(parseDuration(input)).toBe(ms);
  });

  it.each([
    "soon",
    "",
    "5 fortnights",
    "-5s",
    "1e3s",
    "5 m s",
    -1,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    "99999999999999999999 days",
  ])("rejects %j with INVALID_DURATION quoting the text", (input) => {
    try {
      parseDuration(input as string);
      expect.unreachable();
    } catch (error) {
      expect(isBatonError(error, "INVALID_DURATION")).toBe(true);
      expect((error as Error).message).toContain(
        typeof input === "string" ? JSON.stringify(input) : String(input),
      );
    }
  });

  it("rejects values that are neither numbers nor strings", () => {
    for (const bad of [null, undefined, {}, [], true]) {
      expect(() => parseDuration(bad as unknown as string)).toThrowError(/Invalid duration/);
    }
  });
});

describe("errors across RPC", () => {
  it("keeps code and details across a real stub, and the guard recognizes them", async () => {
    const stub = env.PlainActor.getByName(uniqueName("errors"));
    const error = await stub.throwBaton("STORAGE_ERROR").catch((e: unknown) => e);
    expect(isBatonError(error)).toBe(true);
    expect(isBatonError(error, "STORAGE_ERROR")).toBe(true);
    expect(isBatonError(error, "INVALID_ARGUMENT")).toBe(false);
    expect(error).toMatchObject({ code: "STORAGE_ERROR", details: { extra: 42 } });
    // The class does not cross RPC: that is why the guard exists.
    expect(error instanceof BatonError).toBe(false);
  });

  it("keeps its code across RPC when its cause held a value RPC cannot clone", async () => {
    // A function crosses native RPC as a stub; the codec's error about it names the value.
    const stub = env.Checkpoints.getByName(uniqueName("errors-cause"));
    const error = await stub.save("doc", (() => 1) as never).catch((e: unknown) => e);
    expect(isBatonError(error, "SERIALIZATION_ERROR")).toBe(true);
    // Locally the cause is a plain copy: name, message, stack, and a Baton cause's code/details.
    const inner = new BatonError("STORAGE_ERROR", "disk", { statement: "SELECT 1" });
    const outer = new BatonError("MIGRATION_ERROR", "failed", {}, { cause: inner });
    expect(outer.cause).toMatchObject({
      name: "BatonError",
      message: "disk",
      code: "STORAGE_ERROR",
      details: { statement: "SELECT 1" },
    });
    expect((outer.cause as Error).stack).toBe(inner.stack);
    const odd = new BatonError("STORAGE_ERROR", "x", {}, { cause: { value: () => 1 } });
    expect(typeof odd.cause).toBe("string");
    expect(structuredClone(odd).message).toBe("x");
  });

  it("does not mistake another error with a code for a Baton error", async () => {
    const stub = env.PlainActor.getByName(uniqueName("errors"));
    const error = await stub.throwPlain().catch((e: unknown) => e);
    expect(isBatonError(error)).toBe(false);
    expect(isBatonError({ code: "NOT_A_CODE", baton: true })).toBe(false);
    expect(isBatonError(null)).toBe(false);
    expect(isBatonError("INVALID_ARGUMENT")).toBe(false);
    expect(isBatonError(new BatonError("NOT_A_CODE" as "INVALID_ARGUMENT", "x"))).toBe(false);
    expect(isBatonError(new BatonError("INVALID_ARGUMENT", "x"), "INVALID_ARGUMENT")).toBe(true);
  });
});

describe("sql helper", () => {
  it("types rows and reports a failing statement with its SQL text", async () => {
    const stub = timerActor("sql");
    const error = await expectBatonError(stub.badStatement(), "STORAGE_ERROR", /no_such_table/);
    expect(error.details?.statement).toBe("SELECT * FROM no_such_table WHERE id = ?");
  });

  it("binds booleans, bigints and views, refuses over 100 parameters, and chunks lists", async () => {
    const stub = env.PlainActor.getByName(uniqueName("sql"));
    await runInDurableObject(stub, (_instance, state) => {
      const sql = new Sql(state.storage);
      sql.run("CREATE TABLE t (id INTEGER PRIMARY KEY, flag INTEGER, big TEXT, data BLOB)");
      const view = new Uint8Array([9, 1, 2, 3, 9]).subarray(1, 4);
      sql.run("INSERT INTO t VALUES (?, ?, ?, ?)", 1, true, 2n ** 70n, view);
      const row = sql.one<{ id: number; flag: number; big: string; data: ArrayBuffer }>(
        "SELECT * FROM t WHERE id = ?",
        1,
      );
      expect(row?.flag).toBe(1);
      expect(row?.big).toBe((2n ** 70n).toString());
      expect([...new Uint8Array(row!.data)]).toEqual([1, 2, 3]);
      expect(sql.one("SELECT * FROM t WHERE id = ?", 2)).toBeUndefined();
      expect(sql.value<number>("SELECT COUNT(*) FROM t")).toBe(1);

      const ids = Array.from({ length: 250 }, (_, i) => i + 10);
      expect(() =>
        sql.run(`INSERT INTO t (id) VALUES ${ids.map(() => "(?)").join(", ")}`, ...ids),
      ).toThrowError(/at most 100/);
      for (const chunk of chunkParams(ids)) {
        sql.run(`INSERT INTO t (id) VALUES ${chunk.map(() => "(?)").join(", ")}`, ...chunk);
      }
      expect(sql.value<number>("SELECT COUNT(*) FROM t")).toBe(251);
      expect(placeholders(3)).toBe("?, ?, ?");

      // A throwing transaction leaves nothing behind.
      expect(() =>
        sql.transaction(() => {
          sql.run("DELETE FROM t");
          throw new Error("abort");
        }),
      ).toThrowError("abort");
      expect(sql.value<number>("SELECT COUNT(*) FROM t")).toBe(251);

      // An async callback would commit before its work: refused and rolled back.
      expect(() =>
        sql.transaction(async () => {
          sql.run("DELETE FROM t");
        }),
      ).toThrowError(/must be synchronous/);
      expect(sql.value<number>("SELECT COUNT(*) FROM t")).toBe(251);
    });
  });
});

describe("migrations", () => {
  const m = (version: number, table: string): Migration => ({
    version,
    name: table,
    up: (sql) => {
      sql.run(`CREATE TABLE ${table} (id INTEGER)`);
      sql.run("INSERT INTO applied VALUES (?)", version);
    },
  });

  it("applies each migration once across several wakes and records the version", async () => {
    const stub = env.PlainActor.getByName(uniqueName("migrations"));
    const setup = (sql: Sql) => sql.run("CREATE TABLE IF NOT EXISTS applied (version INTEGER)");
    await runInDurableObject(stub, (_i, state) => {
      const sql = new Sql(state.storage);
      setup(sql);
      expect(schemaVersion(sql, "app")).toBe(0);
      expect(runMigrations(sql, "app", [m(1, "a")])).toBe(1);
      expect(runMigrations(sql, "app", [m(1, "a")])).toBe(1);
    });
    await evictDurableObject(stub);
    await runInDurableObject(stub, (_i, state) => {
      const sql = new Sql(state.storage);
      expect(runMigrations(sql, "app", [m(1, "a"), m(2, "b"), m(3, "c")])).toBe(3);
      // Another scope counts on its own.
      expect(runMigrations(sql, "other", [m(1, "x")])).toBe(1);
    });
    await evictDurableObject(stub);
    await runInDurableObject(stub, (_i, state) => {
      const sql = new Sql(state.storage);
      expect(runMigrations(sql, "app", [m(1, "a"), m(2, "b"), m(3, "c")])).toBe(3);
      expect(schemaVersion(sql, "app")).toBe(3);
      expect(sql.all("SELECT version FROM applied ORDER BY rowid")).toEqual([
        { version: 1 },
        { version: 2 },
        { version: 3 },
        { version: 1 },
      ]);
    });
  });

  it("rolls back a failing migration, keeps the earlier ones, and says which failed", async () => {
    const stub = env.PlainActor.getByName(uniqueName("migrations"));
    await runInDurableObject(stub, (_i, state) => {
      const sql = new Sql(state.storage);
      sql.run("CREATE TABLE applied (version INTEGER)");
      const broken: Migration = {
        version: 2,
        name: "broken",
        up: (s) => {
          s.run("CREATE TABLE half (id INTEGER)");
          s.run("THIS IS NOT SQL");
        },
      };
      let caught: unknown;
      try {
        runMigrations(sql, "app", [m(1, "a"), broken]);
      } catch (error) {
        caught = error;
      }
      expect(isBatonError(caught, "MIGRATION_ERROR")).toBe(true);
      expect((caught as Error).message).toMatch(/Migration 2 \(broken\)/);
      expect(schemaVersion(sql, "app")).toBe(1);
      expect(sql.value("SELECT COUNT(*) FROM sqlite_master WHERE name = 'half'")).toBe(0);
    });
  });

  it("refuses a misnumbered list and code older than the data", async () => {
    const stub = env.PlainActor.getByName(uniqueName("migrations"));
    await runInDurableObject(stub, (_i, state) => {
      const sql = new Sql(state.storage);
      sql.run("CREATE TABLE applied (version INTEGER)");
      expect(() => runMigrations(sql, "app", [m(2, "a")])).toThrowError(/numbered 1, 2, 3/);
      expect(() => runMigrations(sql, "app", [m(1, "a"), m(1, "b")])).toThrowError(/position 2/);
      expect(() => runMigrations(sql, "", [])).toThrowError(/scope/);
      runMigrations(sql, "app", [m(1, "a"), m(2, "b")]);
      expect(() => runMigrations(sql, "app", [m(1, "a")])).toThrowError(/older than the data/);
      expect(schemaVersion(sql, "app")).toBe(2);
    });
  });

  it("runs an actor's own migrations once per wake, before any call", async () => {
    const stub = timerActor("actor-migrations");
    expect(await stub.wakes()).toBe(1);
    await evictDurableObject(stub);
    expect(await stub.wakes()).toBe(2);
    await evictDurableObject(stub);
    expect(await stub.wakes()).toBe(3);
    expect(await stub.migrationLog()).toBe(1);
  });
});

describe("persisted state machine", () => {
  it("transitions, guards invalid events with the valid ones, and reloads after eviction", async () => {
    const stub = timerActor("fsm");
    expect(await stub.orderState()).toEqual({
      state: "pending",
      valid: ["start", "cancel"],
      transitions: 0,
    });
    expect(await stub.orderSend("start")).toBe("processing");
    expect(await stub.orderSend({ type: "ship" })).toBe("shipped");
    const error = await expectBatonError(
      stub.orderSend("cancel"),
      "INVALID_TRANSITION",
      /"shipped"/,
    );
    expect(error.message).toMatch(/Valid events: \[deliver\]/);
    expect(error.details).toMatchObject({
      state: "shipped",
      event: "cancel",
      validEvents: ["deliver"],
    });
    await evictDurableObject(stub);
    expect(await stub.orderState()).toEqual({
      state: "shipped",
      valid: ["deliver"],
      transitions: 2,
    });
    expect(await stub.orderCan("deliver")).toBe(true);
    expect(await stub.orderCan("start")).toBe(false);
    expect(await stub.orderSend("deliver")).toBe("delivered");
    // Terminal state: nothing is valid.
    await expectBatonError(stub.orderSend("start"), "INVALID_TRANSITION", /Valid events: \[\]/);
    // onTransition ran in the same transaction as each change.
    expect((await stub.fired()).map((f) => f.tag)).toEqual([
      "pending-start->processing",
      "processing-ship->shipped",
      "shipped-deliver->delivered",
    ]);
    expect(await stub.orderReset()).toBe("pending");
    expect((await stub.orderState()).state).toBe("pending");
  });

  it("rolls a transition back when onTransition throws, and rejects malformed events", async () => {
    const stub = env.PlainActor.getByName(uniqueName("fsm"));
    await runInDurableObject(stub, (_i, state) => {
      const sql = new Sql(state.storage);
      runMigrations(sql, "fsm", [
        {
          version: 1,
          up: (s) =>
            s.run(
              "CREATE TABLE _baton_fsm (name TEXT PRIMARY KEY, state TEXT NOT NULL, transitions INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL) STRICT",
            ),
        },
      ]);
      const door = new StateMachine<"open" | "closed", "open" | "close">(sql, {
        name: "door",
        initial: "closed",
        transitions: { closed: { open: "open" }, open: { close: "closed" } },
        onTransition: ({ to }) => {
          if (to === "open") throw new Error("jammed");
        },
      });
      expect(() => door.send("open")).toThrowError("jammed");
      expect(door.state).toBe("closed");
      expect(door.transitionCount).toBe(0);
      expect(() => door.send({} as { type: "open" })).toThrowError(/Event must be/);
      expect(() => door.send("toString" as "open")).toThrowError(/does not handle/);
      expect(() => new StateMachine(sql, { name: "", initial: "a", transitions: {} })).toThrowError(
        /Machine name/,
      );
    });
  });
});

describe("dev Worker and the reminders example", () => {
  it("lists the bound actors at GET /", async () => {
    const response = await SELF.fetch("http://baton.test/");
    expect(response.status).toBe(200);
    const body = (await response.json()) as { actors: string[] };
    expect(body.actors).toEqual(expect.arrayContaining(["PlainActor", "Reminders", "TimerActor"]));
  });

  it("stores a reminder, fires it by timer, and rejects a bad duration with its code", async () => {
    const user = uniqueName("ada");
    const post = (body: unknown) =>
      SELF.fetch(`http://baton.test/reminders/${user}`, {
        method: "POST",
        body: JSON.stringify(body),
      });
    const bad = await post({ text: "hi", after: "1 fortnight" });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: "INVALID_DURATION" });
    const created = await post({ text: "stand up", after: "0ms" });
    expect(created.status).toBe(201);
    const stub = env.Reminders.getByName(user);
    await runInDurableObject(stub, (instance: Reminders) => instance.alarm());
    const list = (await (await SELF.fetch(`http://baton.test/reminders/${user}`)).json()) as Array<{
      text: string;
      sentAt: number | null;
    }>;
    expect(list).toHaveLength(1);
    expect(list[0]?.text).toBe("stand up");
    expect(list[0]?.sentAt).not.toBeNull();
  });
});
