/**
 * Bad input, property-based: every public RPC method of the Schedule actor (TestSchedules),
 * against a schedule with real state (hourly, one triggered run), and its registry's methods.
 */
import { env } from "cloudflare:test";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { uniqueName } from "../helpers.ts";
import type { TestSchedules } from "../worker.ts";
import {
  anything,
  argsOf,
  callMethod,
  checkRefusals,
  durationLike,
  idLike,
  intLike,
  optionsLike,
  quiet,
  weirdNumber,
  weirdString,
  withSelf,
} from "./arbitraries.ts";

interface Seeded {
  id: string;
  stub: DurableObjectStub<TestSchedules>;
}

async function seeded(): Promise<Seeded> {
  const id = uniqueName("prop-sched");
  const stub = env.Schedules.getByName(id);
  await stub.create({
    id,
    workflow: "scheduled",
    input: {},
    every: "1 hour",
    binding: "TestExecutions",
  });
  await stub.trigger();
  await quiet([stub]);
  return { id, stub };
}

const spec = optionsLike({
  id: idLike("$SELF"),
  workflow: fc.oneof(fc.constant("scheduled"), weirdString, anything),
  input: anything,
  cron: fc.oneof(
    fc.constantFrom("0 * * * *", "61 * * * *", "@daily", "0 0 31 2 *", ""),
    weirdString,
  ),
  every: durationLike,
  timezone: fc.oneof(fc.constantFrom("UTC", "Europe/Berlin", "Mars/Olympus"), weirdString),
  overlap: fc.oneof(fc.constantFrom("skip", "buffer-one", "allow"), weirdString),
  catchup: fc.oneof(fc.constantFrom("none", "one", "all"), weirdString),
  jitter: durationLike,
  startAt: fc.oneof(weirdNumber, fc.date(), anything),
  endAt: fc.oneof(weirdNumber, fc.date(), anything),
  timeout: durationLike,
  keep: intLike,
  paused: fc.oneof(fc.boolean(), anything),
  binding: fc.oneof(fc.constantFrom("TestExecutions", "Nope"), weirdString),
});
const time = fc.oneof(weirdNumber, fc.date(), anything);

const cases: Array<{ name: string; args: fc.Arbitrary<unknown[]>; numRuns?: number }> = [
  { name: "create", args: argsOf([spec]), numRuns: 80 },
  { name: "update", args: argsOf([spec]), numRuns: 80 },
  { name: "backfill", args: argsOf([time, time]), numRuns: 40 },
  { name: "describe", args: argsOf([anything]), numRuns: 5 },
  { name: "pause", args: argsOf([anything]), numRuns: 5 },
  { name: "resume", args: argsOf([anything]), numRuns: 5 },
  { name: "trigger", args: argsOf([anything]), numRuns: 5 },
  { name: "delete", args: argsOf([anything]), numRuns: 5 },
  // Registry methods, on a schedule that is not the registry: refused, nothing stored.
  { name: "listSchedules", args: argsOf([anything]), numRuns: 10 },
  { name: "registerSchedule", args: argsOf([anything, anything]), numRuns: 10 },
  { name: "unregisterSchedule", args: argsOf([anything]), numRuns: 10 },
];

describe("property: the Schedule actor's RPC methods refuse bad input cleanly", () => {
  for (const c of cases) {
    it(c.name, async () => {
      const stats = await checkRefusals<Seeded>({
        name: `schedule.${c.name}`,
        seed: seeded,
        objects: (s) => [s.stub],
        call: (s, args) =>
          callMethod(
            s.stub,
            c.name,
            args.map((a) => withSelf(a, s.id)),
          ),
        args: c.args,
        numRuns: c.numRuns ?? 30,
      });
      if ((c.numRuns ?? 30) >= 20) expect(stats.refused, JSON.stringify(stats)).toBeGreaterThan(0);
    });
  }

  it("the registry's list refuses a bad query with a code and stores nothing", async () => {
    const registry = env.Schedules.getByName("baton:schedules");
    await fc.assert(
      fc.asyncProperty(
        optionsLike({ limit: intLike, cursor: fc.oneof(weirdString, anything) }),
        async (query) => {
          const outcome = await registry.listSchedules(query as never).then(
            () => "ok",
            (e: { code?: string }) => e.code ?? String(e),
          );
          expect(["ok", "INVALID_ARGUMENT", "SERIALIZATION_ERROR"]).toContain(outcome);
        },
      ),
      { numRuns: 40 },
    );
  });
});
