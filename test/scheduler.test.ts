import {
  abortAllDurableObjects,
  env,
  evictDurableObject,
  runDurableObjectAlarm,
  runInDurableObject,
} from "cloudflare:test";
import { describe, expect, it } from "vitest";
import {
  drainAlarms,
  expectAlarmForNextTimer,
  expectBatonError,
  timerActor,
  uniqueName,
} from "./helpers.ts";

const HOUR = 3_600_000;

describe("scheduler: timers over one alarm", () => {
  it("fires a timer once when it is due, never early, then disarms the alarm", async () => {
    const stub = timerActor();
    const now = await stub.clock();
    const timer = await stub.schedule("record", { tag: "a" }, { after: "1h" });
    expect(timer).toMatchObject({ kind: "record", state: "pending", attempts: 0, key: null });
    expect(timer.dueAt).toBeGreaterThanOrEqual(now + HOUR);
    // The alarm is armed for the timer, an hour from now.
    await expectAlarmForNextTimer(stub);

    // A minute early: the alarm runs, nothing fires, the alarm stays armed for the timer.
    await stub.advanceClock(HOUR - 60_000);
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(await stub.firedCount()).toBe(0);
    await expectAlarmForNextTimer(stub); // re-armed for the minute that is left

    await stub.advanceClock(60_000);
    await drainAlarms(stub);
    const fired = await stub.fired();
    expect(fired).toHaveLength(1);
    expect(fired[0]).toMatchObject({ tag: "a", attempt: 1, timerId: timer.id });
    expect(fired[0]!.firedAt).toBeGreaterThanOrEqual(timer.dueAt);
    expect(await stub.pendingCount()).toBe(0);
    expect(await stub.alarmAt()).toBeNull();
    // A further alarm delivery finds nothing to do.
    expect(await runDurableObjectAlarm(stub)).toBe(false);
    expect(await stub.firedCount()).toBe(1);
  });

  it("runs due timers in due-time order (ties by creation) and arms for the earliest", async () => {
    const stub = timerActor();
    const base = (await stub.clock()) + HOUR;
    await stub.schedule("record", { tag: "c" }, { at: base + 30 });
    await stub.schedule("record", { tag: "a" }, { at: base + 10 });
    await stub.schedule("record", { tag: "d" }, { at: new Date(base + 30) });
    await stub.schedule("record", { tag: "b" }, { at: base + 20 });
    expect(await stub.nextDue()).toBe(base + 10);
    await stub.advanceClock(HOUR + 100);
    await drainAlarms(stub);
    expect(await stub.firedTags()).toEqual(["a", "b", "c", "d"]);
  });

  it("keeps millisecond resolution: a timer 1 ms later waits for the next tick", async () => {
    const stub = timerActor();
    const base = (await stub.clock()) + HOUR;
    await stub.schedule("record", { tag: "first" }, { at: base });
    await stub.schedule("record", { tag: "second" }, { at: base + 1 });
    await stub.advanceClock(base - (await stub.clock()));
    await runDurableObjectAlarm(stub);
    expect(await stub.firedTags()).toEqual(["first"]);
    await stub.advanceClock(1);
    await drainAlarms(stub);
    expect(await stub.firedTags()).toEqual(["first", "second"]);
  });

  it("is idempotent per key while the timer is pending, and reusable after it fired", async () => {
    const stub = timerActor();
    const first = await stub.schedule("record", { tag: "k1" }, { after: "1h" }, { key: "job" });
    const again = await stub.schedule("record", { tag: "k2" }, { after: "2h" }, { key: "job" });
    expect(again.id).toBe(first.id);
    expect(again.payload).toEqual({ tag: "k1" });
    expect(await stub.pendingCount()).toBe(1);
    await stub.advanceClock(HOUR);
    await drainAlarms(stub);
    const next = await stub.schedule("record", { tag: "k3" }, { after: "1h" }, { key: "job" });
    expect(next.id).not.toBe(first.id);
    expect((await stub.getTimer("job"))?.id).toBe(next.id);
  });

  it("cancels by id and by key; the alarm left early by a cancel re-arms for the next timer", async () => {
    const stub = timerActor();
    const a = await stub.schedule("record", { tag: "a" }, { after: "1h" });
    const b = await stub.schedule("record", { tag: "b" }, { after: "2h" }, { key: "b" });
    await stub.schedule("record", { tag: "c" }, { after: "3h" });
    const armedA = await stub.alarmAt();
    const setsBefore = await stub.alarmSets();
    expect(await stub.cancel(a.id)).toBe(true);
    expect(await stub.nextDue()).toBe(b.dueAt);
    // A cancel writes no alarm: it stays at a's time ...
    expect(await stub.alarmSets()).toBe(setsBefore);
    expect(await stub.alarmAt()).toBe(armedA);
    // ... and that early wake runs nothing and re-arms for b (due an hour after it).
    await stub.advanceClock(HOUR);
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(await stub.firedCount()).toBe(0);
    await expectAlarmForNextTimer(stub);
    expect(await stub.cancel("b")).toBe(true);
    expect(await stub.cancel("b")).toBe(false);
    expect(await stub.cancel(123456)).toBe(false);
    expect(await stub.cancelKind("record")).toBe(1);
    // No live timer left: the alarm that stayed wakes the object once, for nothing.
    expect(await stub.alarmAt()).not.toBeNull();
    await stub.advanceClock(4 * HOUR);
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(await stub.firedCount()).toBe(0);
    expect(await stub.alarmAt()).toBeNull();
    expect(await runDurableObjectAlarm(stub)).toBe(false);
  });

  it("runs due timers in the calling event with runDue(); the alarm still set then finds nothing", async () => {
    const stub = timerActor();
    await stub.schedule("record", { tag: "later" }, { after: "1h" });
    await stub.schedule("record", { tag: "now" }, { after: 0 });
    const setsBefore = await stub.alarmSets();
    expect(await stub.runDue()).toMatchObject({ succeeded: 1, more: false });
    expect(await stub.firedTags()).toEqual(["now"]);
    // No alarm write for that: the armed alarm is early, and its wake re-arms for "later".
    expect(await stub.alarmSets()).toBe(setsBefore);
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(await stub.firedTags()).toEqual(["now"]);
    await expectAlarmForNextTimer(stub);
    await stub.advanceClock(HOUR);
    await drainAlarms(stub);
    expect(await stub.firedTags()).toEqual(["now", "later"]);
  });

  it("retries a throwing handler with backoff, then dead-letters it without delaying others", async () => {
    const stub = timerActor();
    const base = (await stub.clock()) + HOUR;
    const bad = await stub.schedule("fail", { tag: "bad" }, { at: base }, { maxAttempts: 3 });
    await stub.schedule("record", { tag: "good-1" }, { at: base + 1 });
    await stub.schedule("record", { tag: "good-2" }, { at: base + 2 });
    await stub.advanceClock(HOUR + 10);
    await runDurableObjectAlarm(stub);
    // The failure did not hold back the timers behind it.
    expect(await stub.firedTags()).toEqual(["good-1", "good-2"]);
    const afterFirst = await stub.getTimer(bad.id);
    expect(afterFirst).toMatchObject({ state: "pending", attempts: 1 });
    expect(afterFirst?.lastError).toMatch(/always fails/);
    // Backoff: 1 s after the first failure, 2 s after the second.
    const t1 = await stub.clock();
    expect(afterFirst!.dueAt).toBeGreaterThanOrEqual(t1 + 1000 - 50);
    expect(afterFirst!.dueAt).toBeLessThanOrEqual(t1 + 1000);

    await stub.advanceClock(999);
    await runDurableObjectAlarm(stub);
    expect((await stub.getTimer(bad.id))?.attempts).toBe(1); // not early
    await stub.advanceClock(1);
    await drainAlarms(stub);
    const afterSecond = await stub.getTimer(bad.id);
    expect(afterSecond).toMatchObject({ state: "pending", attempts: 2 });
    expect(afterSecond!.dueAt - (await stub.clock())).toBeGreaterThan(1000);

    await stub.advanceClock(2000);
    await drainAlarms(stub);
    const dead = await stub.deadLetters();
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ id: bad.id, state: "dead", attempts: 3, kind: "fail" });
    expect(await stub.pendingCount()).toBe(0);
    expect(await stub.alarmAt()).toBeNull();

    // A dead letter can be retried (fresh attempts) or purged.
    const retried = await stub.retry(bad.id);
    expect(retried).toMatchObject({ state: "pending", attempts: 0 });
    expect(await stub.alarmAt()).not.toBeNull();
    await stub.advanceClock(10 * 60_000);
    for (let i = 0; i < 3; i++) {
      await drainAlarms(stub);
      await stub.advanceClock(10 * 60_000);
    }
    expect(await stub.deadLetters()).toHaveLength(1);
    expect(await stub.purgeDeadLetters()).toBe(1);
    expect(await stub.list()).toEqual([]);
  });

  it("passes the attempt number to the handler and succeeds after transient failures", async () => {
    const stub = timerActor();
    await stub.schedule("flaky", { tag: "f", succeedOn: 3 }, { after: 0 });
    for (let i = 0; i < 3; i++) {
      await drainAlarms(stub);
      await stub.advanceClock(5_000);
    }
    expect(await stub.fired()).toMatchObject([{ tag: "f", attempt: 3 }]);
    expect(await stub.pendingCount()).toBe(0);
  });

  it("dead-letters a timer whose kind has no handler, with a clear reason", async () => {
    const stub = timerActor();
    const t = await stub.schedule("orphanKind", { tag: "x" }, { after: 0 });
    await stub.schedule("record", { tag: "after-orphan" }, { after: 1 });
    await stub.advanceClock(10);
    await drainAlarms(stub);
    const [dead] = await stub.deadLetters();
    expect(dead?.id).toBe(t.id);
    expect(dead?.lastError).toMatch(/NO_TIMER_HANDLER.*orphanKind/);
    expect(await stub.firedTags()).toEqual(["after-orphan"]);
  });

  it("runs each timer once when the alarm is delivered twice, concurrently or in a row", async () => {
    const stub = timerActor();
    const base = (await stub.clock()) + HOUR;
    for (let i = 0; i < 20; i++) await stub.schedule("record", { tag: `d${i}` }, { at: base + i });
    await stub.advanceClock(HOUR + 100);
    await runInDurableObject(stub, async (instance) => {
      await Promise.all([instance.alarm(), instance.alarm(), instance.alarm()]);
      await instance.alarm();
    });
    await runDurableObjectAlarm(stub);
    const tags = await stub.firedTags();
    expect(tags).toEqual(Array.from({ length: 20 }, (_, i) => `d${i}`));
  });

  it("runs overdue timers once each when the alarm arrives late", async () => {
    const stub = timerActor();
    for (let i = 0; i < 5; i++)
      await stub.schedule("record", { tag: `late${i}` }, { after: `${i + 1}m` });
    await stub.advanceClock(2 * 24 * HOUR); // two days late
    await drainAlarms(stub);
    expect(await stub.firedTags()).toEqual(["late0", "late1", "late2", "late3", "late4"]);
  });

  it("survives eviction between scheduling and firing, and re-arms a lost alarm on wake", async () => {
    const stub = timerActor();
    const t = await stub.schedule("record", { tag: "evicted" }, { after: "1h" });
    const armed = await stub.alarmAt();
    expect(armed).not.toBeNull();
    await evictDurableObject(stub);
    expect(await stub.alarmAt()).not.toBeNull();
    expect(await stub.nextDue()).toBe(t.dueAt);
    // An alarm lost outside the scheduler's knowledge is restored when the object wakes.
    await stub.dropAlarm();
    expect(await stub.alarmAt()).toBeNull();
    await evictDurableObject(stub);
    await expectAlarmForNextTimer(stub);
    expect(await stub.nextDue()).toBe(t.dueAt);
    await stub.schedule("record", { tag: "later" }, { after: "5h" });
    await expectAlarmForNextTimer(stub); // still the earliest (one hour), not the new one
    await stub.advanceClock(HOUR);
    await evictDurableObject(stub);
    await drainAlarms(stub);
    expect(await stub.fired()).toMatchObject([{ tag: "evicted", attempt: 1 }]);
    await stub.cancel("later" as never).catch(() => undefined);
    expect(await stub.wakes()).toBeGreaterThanOrEqual(4);
  });

  it("keeps timers across abortAllDurableObjects", async () => {
    const name = uniqueName("abort");
    await env.TimerActor.getByName(name).schedule("record", { tag: "aborted" }, { after: "30s" });
    await abortAllDurableObjects();
    // Stubs of an aborted object are broken; a new stub reaches the restarted object.
    const stub = env.TimerActor.getByName(name);
    await stub.advanceClock(30_000);
    await drainAlarms(stub);
    expect(await stub.firedTags()).toEqual(["aborted"]);
  });

  it("dead-letters a handler that kills the object every time, and still runs the others once", async () => {
    const name = uniqueName("crash");
    let stub = env.TimerActor.getByName(name);
    const base = (await stub.clock()) + HOUR;
    const crash = await stub.schedule("crash", { tag: "crash" }, { at: base }, { maxAttempts: 3 });
    await stub.schedule("record", { tag: "bystander" }, { at: base + 1 });
    await stub.advanceClock(HOUR + 10);
    for (let i = 0; i < 6; i++) {
      // Each crash breaks the stub; reach the restarted object through a new one.
      await runDurableObjectAlarm(stub).catch(() => "aborted");
      stub = env.TimerActor.getByName(name);
    }
    const dead = await stub.deadLetters();
    expect(dead.map((d) => d.id)).toEqual([crash.id]);
    expect(dead[0]?.lastError).toMatch(/evicted or reset while it ran/);
    // The crashing handler ran exactly maxAttempts times; the bystander once.
    expect((await stub.fired("crash")).length).toBe(3);
    expect((await stub.fired("bystander")).length).toBe(1);
    expect(await stub.pendingCount()).toBe(0);
  });

  it("lets a handler cancel a later timer of the same batch", async () => {
    const stub = timerActor();
    const base = (await stub.clock()) + HOUR;
    await stub.schedule("cancelOther", { tag: "canceller", key: "victim" }, { at: base });
    await stub.schedule("record", { tag: "victim" }, { at: base + 1 }, { key: "victim" });
    await stub.schedule("record", { tag: "survivor" }, { at: base + 2 });
    await stub.advanceClock(HOUR + 10);
    await drainAlarms(stub);
    expect(await stub.firedTags()).toEqual(["canceller", "survivor"]);
  });

  it("lets a handler reschedule itself under its own key", async () => {
    const stub = timerActor();
    await stub.schedule("repeat", { tag: "tick", times: 4 }, { after: 10 }, { key: "repeat:tick" });
    for (let i = 0; i < 6; i++) {
      await stub.advanceClock(10);
      await drainAlarms(stub);
    }
    const fired = await stub.fired("tick");
    expect(fired).toHaveLength(4);
    expect(new Set(fired.map((f) => f.timerId)).size).toBe(4);
    expect(await stub.pendingCount()).toBe(0);
  });

  it("keeps one timer per waiting key even when a handler schedules a key its batch holds", async () => {
    const stub = timerActor();
    const base = (await stub.clock()) + HOUR;
    // W runs first and schedules key K; X (key K) is claimed in the same batch but not started.
    await stub.schedule("scheduleKey", { tag: "W", key: "K" }, { at: base });
    const x = await stub.schedule("record", { tag: "X" }, { at: base + 1 }, { key: "K" });
    await stub.advanceClock(HOUR + 10);
    await drainAlarms(stub);
    expect(await stub.firedTags()).toEqual(["W", "X"]);
    expect((await stub.fired("X"))[0]?.timerId).toBe(x.id);
    expect(await stub.pendingCount()).toBe(0);
  });

  it("hands the unstarted rest of a batch back when a run reaches maxPerRun", async () => {
    const name = uniqueName("small-runs");
    let stub = env.TimerActor.getByName(name);
    await stub.configureScheduler(4, 3);
    await evictDurableObject(stub);
    stub = env.TimerActor.getByName(name);
    const base = (await stub.clock()) + HOUR;
    for (let i = 0; i < 8; i++) {
      await stub.schedule("record", { tag: `r${i}` }, { at: base + i }, { key: `k${i}` });
    }
    await stub.advanceClock(HOUR + 100);
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(await stub.firedTags()).toEqual(["r0", "r1", "r2"]);
    // Nothing is left claimed: the rest is pending, keys intact, and the alarm is re-armed.
    const left = await stub.list();
    expect(left.map((t) => [t.state, t.key, t.attempts])).toEqual(
      Array.from({ length: 5 }, (_, i) => ["pending", `k${i + 3}`, 0]),
    );
    await expectAlarmForNextTimer(stub);
    const runs = await drainAlarms(stub);
    expect(runs).toBe(2);
    expect(await stub.firedTags()).toEqual(Array.from({ length: 8 }, (_, i) => `r${i}`));
  });

  it("dead-letters a timer whose payload cannot be decoded, and keeps inspection working", async () => {
    const stub = timerActor();
    const bad = await stub.schedule("record", { tag: "bad" }, { after: 0 });
    await stub.schedule("record", { tag: "good" }, { after: 1 });
    await stub.corruptPayload(bad.id);
    expect((await stub.getTimer(bad.id))?.payload).toBeUndefined();
    await stub.advanceClock(10);
    await drainAlarms(stub);
    expect(await stub.firedTags()).toEqual(["good"]);
    const [dead] = await stub.deadLetters();
    expect(dead).toMatchObject({ id: bad.id, state: "dead", attempts: 1 });
    expect(dead?.lastError).toMatch(/cannot be decoded/);
  });

  it("removes a timer cancelled while its handler runs, even when the handler then fails", async () => {
    const stub = timerActor();
    await stub.schedule("cancelSelfThenThrow", { tag: "c" }, { after: 0 });
    await drainAlarms(stub);
    await stub.advanceClock(10 * 60_000);
    await drainAlarms(stub);
    expect(await stub.fired("c")).toHaveLength(1);
    expect(await stub.fired("c:self=true:other=false")).toHaveLength(1);
    expect(await stub.list()).toEqual([]);
  });

  it("handles 10,000 timers in one object: one alarm for the earliest, each fires once, in order, in bounded runs", async () => {
    const stub = timerActor("ten-thousand");
    const base = (await stub.clock()) + HOUR;
    const setsBefore = await stub.alarmSets();
    await stub.scheduleShuffled(10_000, base);
    expect((await stub.alarmSets()) - setsBefore).toBe(1);
    expect(await stub.pendingCount()).toBe(10_000);
    expect(await stub.nextDue()).toBe(base);
    expect(await stub.alarmAt()).not.toBeNull();
    await stub.advanceClock(HOUR + 10_000);
    const runs = await drainAlarms(stub);
    // maxPerRun (2000) bounds each alarm invocation.
    expect(runs).toBeGreaterThanOrEqual(5);
    const tags = await stub.firedTags();
    expect(tags).toHaveLength(10_000);
    expect(tags).toEqual(Array.from({ length: 10_000 }, (_, i) => `t${i}`));
    expect(await stub.pendingCount()).toBe(0);
    expect(await stub.alarmAt()).toBeNull();
  });
});

describe("scheduler: bad input changes nothing", () => {
  it("rejects every malformed schedule with a clear code", async () => {
    const stub = timerActor();
    await stub.schedule("record", { tag: "keep" }, { after: "1h" });
    const cases: Array<[() => Promise<unknown>, string, RegExp]> = [
      // @ts-expect-error empty kind is not a kind
      [() => stub.schedule("", { tag: "x" }, { after: 1 }), "INVALID_ARGUMENT", /Timer kind/],
      // @ts-expect-error wrong type for kind
      [() => stub.schedule(42, { tag: "x" }, { after: 1 }), "INVALID_ARGUMENT", /Timer kind/],
      [
        () => stub.schedule("record", { tag: "x" }, { after: "soon" as "1s" }),
        "INVALID_DURATION",
        /"soon"/,
      ],
      [() => stub.schedule("record", { tag: "x" }, { after: -5 }), "INVALID_DURATION", /-5/],
      [
        () => stub.schedule("record", { tag: "x" }, { at: Number.NaN }),
        "INVALID_ARGUMENT",
        /when.at/,
      ],
      [() => stub.schedule("record", { tag: "x" }, { at: -1 }), "INVALID_ARGUMENT", /when.at/],
      // @ts-expect-error neither at nor after
      [() => stub.schedule("record", { tag: "x" }, {}), "INVALID_ARGUMENT", /when/],
      // @ts-expect-error not an object
      [() => stub.schedule("record", { tag: "x" }, null), "INVALID_ARGUMENT", /when/],
      [
        () => stub.schedule("record", { tag: "x" }, { after: 1 }, { key: "" }),
        "INVALID_ARGUMENT",
        /key/,
      ],
      [
        () => stub.schedule("record", { tag: "x" }, { after: 1 }, { key: "k".repeat(513) }),
        "INVALID_ARGUMENT",
        /key/,
      ],
      [
        () => stub.schedule("record", { tag: "x" }, { after: 1 }, { maxAttempts: 0 }),
        "INVALID_ARGUMENT",
        /maxAttempts/,
      ],
      [
        () => stub.schedule("record", { tag: "x".repeat(300_000) }, { after: 1 }),
        "PAYLOAD_TOO_LARGE",
        /limit/,
      ],
      [
        () =>
          stub.scheduleMany([
            { kind: "record", payload: { tag: "ok" }, when: { after: 1 } },
            { kind: "record", payload: { tag: "bad" }, when: { after: "nope" as "1s" } },
          ]),
        "INVALID_DURATION",
        /nope/,
      ],
      [() => stub.list({ limit: 0 }), "INVALID_ARGUMENT", /limit/],
      // @ts-expect-error unknown state
      [() => stub.list({ state: "done" }), "INVALID_ARGUMENT", /state/],
      [() => stub.retry(999), "TIMER_NOT_FOUND", /999/],
      [() => stub.retry(1.5), "INVALID_ARGUMENT", /id/],
      [() => stub.cancel(Number.NaN), "INVALID_ARGUMENT", /id/],
      [() => stub.cancel(""), "INVALID_ARGUMENT", /key/],
      // @ts-expect-error neither id nor key
      [() => stub.cancel({ id: 1 }), "INVALID_ARGUMENT", /id or key/],
      [() => stub.getTimer(-0.5), "INVALID_ARGUMENT", /id/],
      [() => stub.getTimer(""), "INVALID_ARGUMENT", /key/],
      // @ts-expect-error not a kind
      [() => stub.cancelKind(""), "INVALID_ARGUMENT", /Timer kind/],
      [() => stub.purgeDeadLetters([1, 2.5]), "INVALID_ARGUMENT", /ids/],
      [() => stub.list({ kind: "" }), "INVALID_ARGUMENT", /Timer kind/],
    ];
    for (const [call, code, message] of cases) {
      await expectBatonError(call(), code as "INVALID_ARGUMENT", message);
    }
    const left = await stub.list();
    expect(left.map((t) => t.payload)).toEqual([{ tag: "keep" }]);
  });

  it("rejects a payload that cannot be encoded with SERIALIZATION_ERROR", async () => {
    const stub = timerActor();
    await runInDurableObject(stub, async (instance) => {
      const error = await instance
        .schedule("record", { tag: "x", fn: () => 1 } as unknown as { tag: string }, { after: 1 })
        .catch((e: unknown) => e);
      expect(error).toMatchObject({ code: "SERIALIZATION_ERROR" });
      expect((error as Error).message).toMatch(/function/);
    });
    expect(await stub.pendingCount()).toBe(0);
  });
});
