import {
  env,
  evictDurableObject,
  runDurableObjectAlarm,
  runInDurableObject,
} from "cloudflare:test";
import { describe, expect, it } from "vitest";
import {
  type ErrorCode,
  executions,
  type ScheduleInfo,
  type ScheduleSummary,
  schedules,
} from "../src/index.ts";
import { advance, eventually, expectBatonError, uniqueName } from "./helpers.ts";
import { scheduled } from "./workflows.ts";

const client = () => schedules(env.Schedules);
const runs = () => executions(env.TestExecutions);
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/** A new schedule id and its actor. */
function scheduleStub(prefix = "sched") {
  const id = uniqueName(prefix);
  return { id, stub: env.Schedules.getByName(id) };
}

/** Moves the schedule's clock to `at` and runs every timer due by then. */
async function advanceTo(stub: ReturnType<typeof scheduleStub>["stub"], at: number) {
  const now = await stub.clock();
  if (at > now) await advance(stub, at - now);
}

const iso = (t: number) => new Date(t).toISOString();

/** Every schedule the registry lists, page by page. */
async function allSchedules(limit: number): Promise<ScheduleSummary[]> {
  const all: ScheduleSummary[] = [];
  let cursor: string | null = null;
  do {
    const page = await client().list({ limit, cursor });
    all.push(...page.schedules);
    cursor = page.cursor;
  } while (cursor);
  return all;
}

/** Fire times of the schedule's runs, oldest first. */
const fired = (info: ScheduleInfo) => info.runs.map((r) => iso(r.fireAt)).reverse();

describe("schedules: cron in a time zone", () => {
  const cases = [
    {
      zone: "Europe/Berlin",
      cron: "30 2 * * *",
      // Spring forward on 2027-03-28: 02:30 does not exist; it fires once, at 03:00 CEST.
      spring: [
        "2027-03-26T12:00:00Z",
        "2027-03-27T01:30:00.000Z",
        "2027-03-28T01:00:00.000Z",
        "2027-03-29T00:30:00.000Z",
      ],
      // Fall back on 2027-10-31: 02:30 happens twice; it fires once, at the first.
      fall: [
        "2027-10-29T12:00:00Z",
        "2027-10-30T00:30:00.000Z",
        "2027-10-31T00:30:00.000Z",
        "2027-11-01T01:30:00.000Z",
      ],
    },
    {
      zone: "America/New_York",
      cron: "30 2 * * *",
      spring: [
        "2027-03-12T12:00:00Z",
        "2027-03-13T07:30:00.000Z",
        "2027-03-14T07:00:00.000Z",
        "2027-03-15T06:30:00.000Z",
      ],
      fall: null,
    },
    {
      zone: "America/New_York",
      cron: "30 1 * * *",
      spring: null,
      fall: [
        "2027-11-05T12:00:00Z",
        "2027-11-06T05:30:00.000Z",
        "2027-11-07T05:30:00.000Z",
        "2027-11-08T06:30:00.000Z",
      ],
    },
  ];
  for (const c of cases) {
    for (const [season, times] of [
      ["spring", c.spring],
      ["fall", c.fall],
    ] as const) {
      if (!times) continue;
      it(`"${c.cron}" in ${c.zone} fires once a day across the ${season} DST change`, async () => {
        const { id, stub } = scheduleStub(`dst-${season}`);
        const [from, ...expected] = times;
        await stub.setClock(Date.parse(from as string));
        const info = await client().create({
          id,
          workflow: scheduled,
          input: {},
          cron: c.cron,
          timezone: c.zone,
          binding: "TestExecutions",
        });
        expect(iso(info.nextFireAt as number)).toBe(expected[0]);
        for (const [i, at] of expected.entries()) {
          await advanceTo(stub, Date.parse(at as string));
          const now = await client().get(id);
          expect(fired(now)).toEqual(expected.slice(0, i + 1));
        }
        const last = await client().get(id);
        // Each fire's run is an execution named after its fire time, started once.
        for (const run of last.runs) {
          expect(run.executionId).toBe(`${id}/${iso(run.fireAt)}`);
          expect(run.reason).toBe("scheduled");
          expect((await runs().get(run.executionId).status()).workflow).toBe("scheduled");
        }
        expect(last.lastFireAt).toBe(Date.parse(expected.at(-1) as string));
      });
    }
  }
});

describe("schedules: overlap", () => {
  /** An every-minute schedule whose runs hold until released. */
  async function holding(overlap: "skip" | "buffer-one" | "allow") {
    const { id, stub } = scheduleStub(`overlap-${overlap}`);
    const start = await stub.clock();
    await client().create({
      id,
      workflow: scheduled,
      input: { hold: true },
      every: "1 minute",
      overlap,
      binding: "TestExecutions",
    });
    return { id, stub, start };
  }

  it("skip (default): a fire while the last run still runs is skipped", async () => {
    const { id, stub, start } = await holding("skip");
    await advanceTo(stub, start + MINUTE);
    const first = (await client().get(id)).runs[0];
    expect(first?.status).toBe("running");
    await advanceTo(stub, start + 2 * MINUTE);
    let info = await client().get(id);
    expect(info.runs.map((r) => r.status)).toEqual(["skipped", "running"]);
    expect(info.skipped).toBe(1);
    await runs()
      .get(first?.executionId as string)
      .sendEvent("release", null);
    await eventually(
      () =>
        runs()
          .get(first?.executionId as string)
          .status(),
      (s) => s.status === "completed",
    );
    await advanceTo(stub, start + 3 * MINUTE);
    info = await client().get(id);
    expect(info.runs.map((r) => r.status)).toEqual(["running", "skipped", "completed"]);
  });

  it("buffer-one: one fire waits for the running run, later ones are skipped", async () => {
    const { id, stub, start } = await holding("buffer-one");
    await advanceTo(stub, start + MINUTE);
    await advanceTo(stub, start + 2 * MINUTE);
    await advanceTo(stub, start + 3 * MINUTE);
    let info = await client().get(id);
    expect(info.runs.map((r) => r.status)).toEqual(["skipped", "buffered", "running"]);
    const [, buffered, first] = info.runs;
    await runs()
      .get(first?.executionId as string)
      .sendEvent("release", null);
    await eventually(
      () =>
        runs()
          .get(first?.executionId as string)
          .status(),
      (s) => s.status === "completed",
    );
    await advance(stub, 5_000); // the buffered fire's check
    info = await client().get(id);
    const started = info.runs.find((r) => r.fireAt === buffered?.fireAt);
    expect(started?.status).toBe("running");
    expect(started?.executionId).toBe(`${id}/${iso(start + 2 * MINUTE)}`);
  });

  it("allow: every fire starts", async () => {
    const { id, stub, start } = await holding("allow");
    await advanceTo(stub, start + MINUTE);
    await advanceTo(stub, start + 2 * MINUTE);
    const info = await client().get(id);
    expect(info.runs.map((r) => r.status)).toEqual(["running", "running"]);
  });
});

describe("schedules: catch-up after missed fires", () => {
  /** Every 10 minutes; the actor sleeps through three fires (its alarm runs 35 minutes in). */
  async function missThree(catchup: "none" | "one" | "all") {
    const { id, stub } = scheduleStub(`catchup-${catchup}`);
    const start = await stub.clock();
    await client().create({
      id,
      workflow: scheduled,
      input: {},
      every: "10 minutes",
      catchup,
      overlap: "allow",
      binding: "TestExecutions",
    });
    await stub.advanceClock(35 * MINUTE);
    await runDurableObjectAlarm(stub);
    await advance(stub, 0);
    return { info: await client().get(id), start };
  }

  it("one (default): only the latest missed fire runs", async () => {
    const { info, start } = await missThree("one");
    expect(info.runs.map((r) => [r.fireAt - start, r.reason])).toEqual([[30 * MINUTE, "catchup"]]);
    expect(info.skipped).toBe(2);
    expect(info.nextFireAt).toBe(start + 40 * MINUTE);
  });

  it("all: every missed fire runs, oldest first", async () => {
    const { info, start } = await missThree("all");
    expect(info.runs.map((r) => r.fireAt - start).reverse()).toEqual([
      10 * MINUTE,
      20 * MINUTE,
      30 * MINUTE,
    ]);
    expect(info.runs.every((r) => r.reason === "catchup")).toBe(true);
    expect(info.skipped).toBe(0);
  });

  it("none: missed fires are dropped, the next one runs", async () => {
    const { info, start } = await missThree("none");
    expect(info.runs).toEqual([]);
    expect(info.skipped).toBe(3);
    expect(info.nextFireAt).toBe(start + 40 * MINUTE);
  });
});

describe("schedules: alarms and eviction", () => {
  it("a duplicate or late alarm never starts a fire's run twice", async () => {
    const { id, stub } = scheduleStub("dup");
    const start = await stub.clock();
    await client().create({
      id,
      workflow: scheduled,
      input: {},
      every: "1 hour",
      binding: "TestExecutions",
    });
    await advanceTo(stub, start + HOUR);
    await runInDurableObject(stub, (instance) => instance.alarm());
    await runDurableObjectAlarm(stub);
    await runInDurableObject(stub, (instance) => instance.alarm());
    const info = await client().get(id);
    expect(info.runs).toHaveLength(1);
    expect(info.nextFireAt).toBe(start + 2 * HOUR);
  });

  it("an eviction between fires loses nothing", async () => {
    const { id, stub } = scheduleStub("evict");
    const start = await stub.clock();
    await client().create({
      id,
      workflow: scheduled,
      input: {},
      every: "1 hour",
      binding: "TestExecutions",
    });
    await advanceTo(stub, start + HOUR);
    await evictDurableObject(stub);
    await advanceTo(stub, start + 2 * HOUR);
    expect(fired(await client().get(id))).toEqual([iso(start + HOUR), iso(start + 2 * HOUR)]);
  });
});

describe("schedules: operations", () => {
  it("pause, resume and delete", async () => {
    const { id, stub } = scheduleStub("ops");
    const start = await stub.clock();
    await client().create({
      id,
      workflow: scheduled,
      input: {},
      every: "1 hour",
      binding: "TestExecutions",
    });
    const paused = await client().pause(id);
    expect(paused).toMatchObject({ state: "paused", nextFireAt: null });
    await advanceTo(stub, start + 3 * HOUR);
    expect((await client().get(id)).runs).toEqual([]); // nothing fired, nothing to catch up
    const resumed = await client().resume(id);
    expect(resumed.state).toBe("active");
    expect(resumed.nextFireAt).toBe(start + 4 * HOUR);
    await client().delete(id);
    await expectBatonError(client().get(id), "SCHEDULE_NOT_FOUND");
    await advanceTo(stub, start + 5 * HOUR);
    await expectBatonError(client().get(id), "SCHEDULE_NOT_FOUND");
    await client().delete(id); // again: nothing to do
  });

  it("trigger runs now; backfill runs past fires once, even when repeated", async () => {
    const { id, stub } = scheduleStub("backfill");
    const start = await stub.clock();
    await client().create({
      id,
      workflow: scheduled,
      input: {},
      every: "1 hour",
      binding: "TestExecutions",
    });
    for (let h = 1; h <= 3; h++) await advanceTo(stub, start + h * HOUR);
    await advanceTo(stub, start + 3 * HOUR + MINUTE);
    const now = await stub.clock();
    const run = await client().trigger(id);
    expect(run).toMatchObject({ reason: "trigger", fireAt: now, executionId: `${id}/${iso(now)}` });
    expect(run.status).not.toBe("starting");
    const backfilled = await client().backfill(id, start, start + 3 * HOUR);
    // Fires at +1h and +2h ran already (scheduled); the backfill adds none of them again.
    expect(backfilled.map((r) => r.fireAt - start)).toEqual([HOUR, 2 * HOUR]);
    expect(backfilled.map((r) => r.reason)).toEqual(["scheduled", "scheduled"]);
    const info = await client().get(id);
    expect(info.runs).toHaveLength(4); // +1h, +2h, +3h and the trigger
    await expectBatonError(client().backfill(id, start, now + HOUR), "INVALID_ARGUMENT");
  });

  it("backfill before the schedule existed starts those runs", async () => {
    const { id, stub } = scheduleStub("backfill-past");
    const start = await stub.clock();
    await client().create({
      id,
      workflow: scheduled,
      input: {},
      every: "1 hour",
      startAt: start - 3 * HOUR,
      binding: "TestExecutions",
    });
    const out = await client().backfill(id, start - 3 * HOUR, start);
    expect(out.map((r) => [r.fireAt - start, r.reason])).toEqual([
      [-3 * HOUR, "backfill"],
      [-2 * HOUR, "backfill"],
      [-HOUR, "backfill"],
    ]);
  });

  it("create is idempotent; another spec under the id is a conflict; update changes the timing", async () => {
    const { id, stub } = scheduleStub("idem");
    const start = await stub.clock();
    const spec = {
      id,
      workflow: "scheduled",
      input: {},
      every: "1 hour",
      binding: "TestExecutions",
    } as const;
    const first = await client().create(spec);
    expect(await client().create(spec)).toEqual(first);
    await expectBatonError(client().create({ ...spec, every: "2 hours" }), "SCHEDULE_CONFLICT");
    const updated = await client().update(id, { cron: "*/15 * * * *" });
    expect(updated).toMatchObject({ cron: "*/15 * * * *", every: null });
    expect((updated.nextFireAt as number) - start).toBeLessThanOrEqual(15 * MINUTE);
  });

  it("each run gets the schedule's timeout as its deadline", async () => {
    const { id, stub } = scheduleStub("timeout");
    const start = await stub.clock();
    await client().create({
      id,
      workflow: scheduled,
      input: { hold: true },
      every: "1 hour",
      timeout: "10 minutes",
      binding: "TestExecutions",
    });
    await advanceTo(stub, start + HOUR);
    const run = (await client().get(id)).runs[0];
    const info = await runs()
      .get(run?.executionId as string)
      .status();
    expect(info.deadline).toBe(info.createdAt + 10 * MINUTE);
  });

  it("lists every schedule through the registry", async () => {
    const a = scheduleStub("list-a");
    const b = scheduleStub("list-b");
    await client().create({
      id: a.id,
      workflow: scheduled,
      input: {},
      every: "1 hour",
      binding: "TestExecutions",
    });
    await client().create({
      id: b.id,
      workflow: scheduled,
      input: {},
      cron: "0 * * * *",
      binding: "TestExecutions",
    });
    await client().pause(b.id);
    const listed = await eventually(
      () => allSchedules(50),
      (all) =>
        all.some((s) => s.id === a.id) && all.some((s) => s.id === b.id && s.state === "paused"),
    );
    expect(listed.find((s) => s.id === a.id)).toMatchObject({ workflow: "scheduled", every: HOUR });
    await client().delete(a.id);
    const after = await client().list({ limit: 500 });
    expect(after.schedules.some((s) => s.id === a.id)).toBe(false);
  });
});

describe("schedules: bad input", () => {
  const base = { workflow: "scheduled", input: {}, binding: "TestExecutions" };
  const cases: Array<[string, Record<string, unknown>, ErrorCode, RegExp]> = [
    ["a bad cron expression", { cron: "61 * * * *" }, "INVALID_ARGUMENT", /cron.*61/],
    ["a cron that never fires", { cron: "0 0 31 2 *" }, "INVALID_ARGUMENT", /never fires/],
    [
      "an unknown time zone",
      { cron: "0 * * * *", timezone: "Mars/Olympus" },
      "INVALID_ARGUMENT",
      /timezone.*Mars\/Olympus/,
    ],
    ["an interval under 1 second", { every: "500ms" }, "INVALID_ARGUMENT", /every.*1 second/],
    ["neither cron nor every", {}, "INVALID_ARGUMENT", /exactly one/],
    ["both cron and every", { cron: "0 * * * *", every: "1h" }, "INVALID_ARGUMENT", /exactly one/],
    ["an end in the past", { every: "1h", endAt: 1000 }, "INVALID_ARGUMENT", /endAt.*past/],
    [
      "a jitter as long as the interval",
      { every: "1 minute", jitter: "1 minute" },
      "INVALID_ARGUMENT",
      /jitter/,
    ],
    ["a run timeout of 0", { every: "1h", timeout: 0 }, "INVALID_ARGUMENT", /timeout/],
    ["a bad overlap", { every: "1h", overlap: "sometimes" }, "INVALID_ARGUMENT", /overlap/],
    ["a bad keep", { every: "1h", keep: 0 }, "INVALID_ARGUMENT", /keep/],
    [
      "an unbound Execution binding",
      { every: "1h", binding: "Nope" },
      "CONFIGURATION_ERROR",
      /Nope/,
    ],
    ["a bad interval", { every: "soon" }, "INVALID_DURATION", /soon/],
  ];
  for (const [what, extra, code, message] of cases) {
    it(`refuses ${what} (${code}) and stores nothing`, async () => {
      const { id } = scheduleStub("bad");
      const error = await expectBatonError(
        client().create({ id, ...base, ...extra } as never),
        code,
      );
      expect(error.message).toMatch(message);
      await expectBatonError(client().get(id), "SCHEDULE_NOT_FOUND");
    });
  }

  it("refuses reserved and malformed ids, and an id that is not the actor's name", async () => {
    await expectBatonError(
      client().create({ id: "baton:x", ...base, every: "1h" } as never),
      "FORBIDDEN",
    );
    await expectBatonError(
      client().create({ id: "", ...base, every: "1h" } as never),
      "INVALID_ARGUMENT",
    );
    const { stub } = scheduleStub("named");
    await expectBatonError(
      stub.create({ id: "another", ...base, every: "1h" } as never),
      "INVALID_ARGUMENT",
    );
  });

  it("every method of an unknown schedule says SCHEDULE_NOT_FOUND", async () => {
    const { id } = scheduleStub("unknown");
    for (const call of [
      () => client().get(id),
      () => client().pause(id),
      () => client().resume(id),
      () => client().update(id, { every: "1h" }),
      () => client().trigger(id),
      () => client().backfill(id, 0, 1000),
    ]) {
      await expectBatonError(call(), "SCHEDULE_NOT_FOUND");
    }
  });
});

describe("schedules: edges", () => {
  it("a fire due but waiting out its jitter happens before an update or a pause", async () => {
    for (const change of ["update", "pause"] as const) {
      const { id, stub } = scheduleStub(`jitter-${change}`);
      const start = await stub.clock();
      await client().create({
        id,
        workflow: scheduled,
        input: {},
        every: "1 hour",
        jitter: "50 minutes",
        binding: "TestExecutions",
      });
      await stub.advanceClock(HOUR + 1000); // the fire is due; its alarm is later (jitter)
      if (change === "update") await client().update(id, { overlap: "allow" });
      else await client().pause(id);
      const info = await client().get(id);
      expect(info.runs.map((r) => [r.fireAt - start, r.reason])).toEqual([[HOUR, "scheduled"]]);
      expect(info.skipped).toBe(0);
    }
  });

  it("refuses a cron jitter as long as the time between two fires", async () => {
    const { id } = scheduleStub("cron-jitter");
    const error = await expectBatonError(
      client().create({
        id,
        workflow: "scheduled",
        input: {},
        cron: "* * * * *",
        jitter: "30 minutes",
        binding: "TestExecutions",
      }),
      "INVALID_ARGUMENT",
    );
    expect(error.message).toMatch(/jitter/);
  });

  it("backfill runs a fire that was skipped", async () => {
    const { id, stub } = scheduleStub("backfill-skipped");
    const start = await stub.clock();
    await client().create({
      id,
      workflow: scheduled,
      input: { hold: true },
      every: "1 minute",
      binding: "TestExecutions",
    });
    await advanceTo(stub, start + MINUTE);
    await advanceTo(stub, start + 2 * MINUTE);
    expect((await client().get(id)).runs.map((r) => r.status)).toEqual(["skipped", "running"]);
    const [again] = await client().backfill(id, start + 2 * MINUTE, start + 2 * MINUTE + 1);
    expect(again).toMatchObject({ fireAt: start + 2 * MINUTE, reason: "backfill" });
    expect(again?.status).toBe("running");
  });

  it("many finished runs (more than one refresh asks at once) do not block the next fire", async () => {
    const { id, stub } = scheduleStub("many-runs");
    const start = await stub.clock();
    await client().create({
      id,
      workflow: scheduled,
      input: {},
      every: "1 minute",
      startAt: start - 30 * MINUTE,
      keep: 100,
      binding: "TestExecutions",
    });
    const runsMade = await client().backfill(id, start - 30 * MINUTE, start);
    expect(runsMade).toHaveLength(30);
    await eventually(
      () => client().get(id),
      (info) => info.runs.every((r) => r.status === "completed"),
    );
    await advanceTo(stub, start + MINUTE);
    const info = await client().get(id);
    expect(info.runs[0]).toMatchObject({ fireAt: start + MINUTE, reason: "scheduled" });
    expect(info.runs[0]?.status).not.toBe("skipped");
  });

  it("catch-up all with overlap skip starts the oldest missed fire; the others overlap it", async () => {
    const { id, stub } = scheduleStub("catchup-all-skip");
    const start = await stub.clock();
    await client().create({
      id,
      workflow: scheduled,
      input: { hold: true },
      every: "10 minutes",
      catchup: "all",
      binding: "TestExecutions",
    });
    await stub.advanceClock(35 * MINUTE);
    await runDurableObjectAlarm(stub);
    await advance(stub, 0);
    const info = await client().get(id);
    expect(info.runs.map((r) => [r.fireAt - start, r.status]).reverse()).toEqual([
      [10 * MINUTE, "running"],
      [20 * MINUTE, "skipped"],
      [30 * MINUTE, "skipped"],
    ]);
  });

  it("a schedule deleted and created again under its id is listed again", async () => {
    const { id } = scheduleStub("recreate");
    const spec = {
      id,
      workflow: "scheduled",
      input: {},
      every: "1 hour",
      binding: "TestExecutions",
    } as const;
    const listed = async () => (await allSchedules(500)).some((s) => s.id === id);
    await client().create(spec);
    await eventually(listed, (yes) => yes);
    await client().delete(id);
    await eventually(listed, (yes) => !yes);
    await client().create(spec);
    await eventually(listed, (yes) => yes);
  });
});
