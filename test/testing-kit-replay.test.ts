/**
 * `baton/testing` replay tests: record a journal, replay it against the current code (or an
 * edited copy), and get NONDETERMINISM when a change would break the executions it stands for.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { workflow } from "../src/index.ts";
import { testExecutions } from "../src/testing/index.ts";
import { expectBatonError, probe } from "./helpers.ts";
import { limited, subscription, trip, tripUndone, tripVariant } from "./kit-workflows.ts";
import { codeVariant, shape } from "./workflows.ts";

const kit = () => testExecutions(env.KitExecutions);

describe("baton/testing: replay tests", () => {
  it("records a journal; it replays cleanly, and fails with NONDETERMINISM once a step is renamed", async () => {
    const p = probe();
    const { execution } = await kit().run(
      subscription,
      { user: "jo", probe: p.name },
      { events: { "card-added": { card: "visa" } } },
    );
    const recorded = await execution.exportJournal();
    expect(recorded).toMatchObject({
      format: "baton.journal/1",
      workflow: "subscription",
      status: "completed",
    });
    expect(recorded.unfinished).toBeUndefined();
    // A JSON document: it survives a round trip through a file in the repository.
    const saved = JSON.parse(JSON.stringify(recorded));
    expect(await kit().replay(subscription, saved)).toEqual({
      steps: recorded.steps.length,
      ended: "completed",
      recorded: "completed",
    });
    // No step body ran again in the replay.
    expect((await p.stub.records("charge")).length).toBe(1);
    const renamed = structuredClone(saved);
    renamed.steps[0].name = "create user";
    const error = await expectBatonError(
      kit().replay(subscription, renamed),
      "NONDETERMINISM",
      /"create user".*"create account"/,
    );
    expect(error.details).toMatchObject({ workflow: "subscription" });
  });

  it("catches a workflow whose code changed under a recorded journal", async () => {
    codeVariant.current = "original";
    const { execution } = await kit().run(shape, { tag: "a" });
    const recorded = await execution.exportJournal();
    try {
      codeVariant.current = "renamed";
      await expectBatonError(kit().replay(shape, recorded), "NONDETERMINISM");
      codeVariant.current = "reordered";
      await expectBatonError(kit().replay(shape, recorded), "NONDETERMINISM");
    } finally {
      codeVariant.current = "original";
    }
    expect(await kit().replay(shape, recorded)).toMatchObject({ ended: "completed" });
  });

  it("replays a recording against an edited copy of the workflow, before the edit is made", async () => {
    const t = kit().execution(subscription);
    await t.start({ user: "lea", probe: probe().name });
    const recorded = await t.exportJournal(); // "create account", then it waits for the card
    expect(recorded.unfinished).toEqual([{ seq: 1, name: "payment method", kind: "wait" }]);
    // A compatible edit: the same step, a new body and retry policy. No body runs in a replay.
    const compatible = workflow("subscription", async (_input: { user: string }, step) => {
      await step.do("create account", { retries: { limit: 9 } }, () => "never runs");
      return step.waitForEvent("payment method", { type: "card-added" });
    });
    expect(await kit().replay(compatible, recorded)).toEqual({
      steps: 1,
      ended: "journal",
      recorded: "waiting",
    });
    const renamed = workflow("subscription", async (_input: { user: string }, step) => {
      await step.do("create user", () => "never runs");
    });
    await expectBatonError(
      kit().replay(renamed, recorded),
      "NONDETERMINISM",
      /"create account" \(do\) in the journal but the code now calls "create user"/,
    );
  });

  it("checks the step the recorded execution was waiting in: renaming it is caught", async () => {
    const t = kit().execution(subscription);
    await t.start({ user: "max", probe: probe().name });
    const recorded = await t.exportJournal();
    const waitRenamed = workflow("subscription", async (_input: { user: string }, step) => {
      await step.do("create account", () => "never runs");
      return step.waitForEvent("card", { type: "card-added" });
    });
    await expectBatonError(
      kit().replay(waitRenamed, recorded),
      "NONDETERMINISM",
      /step 1 is "payment method" \(wait, unfinished\) in the recording but the code now calls "card" \(wait\)/,
    );
    // The wait dropped: those executions would find it in their journal after the return.
    const noWait = workflow("subscription", async (_input: { user: string }, step) => {
      await step.do("create account", () => "never runs");
      return "done";
    });
    await expectBatonError(
      kit().replay(noWait, recorded),
      "NONDETERMINISM",
      /"payment method" \(wait\) at position 1, but the workflow returned before it/,
    );
    // A sleep where the recording waited: the kind changed.
    const nowSleeps = workflow("subscription", async (_input: { user: string }, step) => {
      await step.do("create account", () => "never runs");
      await step.sleep("payment method", "1 day");
    });
    await expectBatonError(kit().replay(nowSleeps, recorded), "NONDETERMINISM", /\(sleep\)/);
  });

  it("replays a concurrency-limited workflow through its permit, and catches a removed limit", async () => {
    const { execution } = await kit().run(limited, { n: 1 });
    const recorded = await execution.exportJournal();
    expect(recorded.steps.map((s) => s.name)).toEqual(["$concurrency", "a", "b"]);
    expect(await kit().replay(limited, recorded)).toEqual({
      steps: 3,
      ended: "completed",
      recorded: "completed",
    });
    // The same code without its limit would meet the recorded permit at position 0.
    const unlimited = workflow("limited", async (input: { n: number }, step) => {
      const a = await step.do("a", () => input.n);
      return step.do("b", () => a + 1);
    });
    await expectBatonError(kit().replay(unlimited, recorded), "NONDETERMINISM", /"\$concurrency"/);
  });

  it("replays the code of the recorded version, and fails when that version is gone", async () => {
    const { execution } = await kit().run(shape, { tag: "v" });
    const recorded = await execution.exportJournal();
    // An edited copy under another version is not what those executions would replay with:
    // the registered version 1 is.
    const v2 = workflow("shape", { version: 2 }, async (_input: { tag: string }, step) => {
      await step.do("something else", () => "never runs");
    });
    expect(await kit().replay(v2, recorded)).toMatchObject({ ended: "completed" });
    await expectBatonError(
      kit().replay(shape, { ...recorded, version: 7 }),
      "UNKNOWN_WORKFLOW",
      /Version 7 of workflow "shape"/,
    );
  });

  it("replays the recording of an unfinished execution up to where it was", async () => {
    const t = kit().execution(subscription);
    await t.start({ user: "kay", probe: probe().name });
    const recorded = await t.exportJournal();
    expect(recorded.steps.map((s) => s.name)).toEqual(["create account"]);
    expect(await kit().replay(subscription, recorded)).toMatchObject({
      steps: 1,
      ended: "journal",
    });
  });

  it("refuses what is not a recording of this workflow, or a damaged one", async () => {
    const { execution } = await kit().run(shape, { tag: "b" });
    const recorded = await execution.exportJournal();
    await expectBatonError(kit().replay(subscription, recorded), "INVALID_ARGUMENT", /"shape"/);
    await expectBatonError(kit().replay(subscription, {}), "INVALID_ARGUMENT");
    await expectBatonError(kit().replay(shape, null), "INVALID_ARGUMENT");
    const damaged = (edit: (steps: Array<Record<string, unknown>>) => void) => {
      const copy = structuredClone(recorded) as unknown as {
        steps: Array<Record<string, unknown>>;
      };
      edit(copy.steps);
      return kit().replay(shape, copy);
    };
    await expectBatonError(
      kit().replay(shape, { ...recorded, input: "%%%" }),
      "INVALID_ARGUMENT",
      /damaged/,
    );
    await expectBatonError(
      damaged((s) => {
        (s[1] as { seq: number }).seq = 0;
      }),
      "INVALID_ARGUMENT",
      /steps\[1\]\.seq/,
    );
    await expectBatonError(
      damaged((s) => {
        (s[0] as { kind: string }).kind = "teleport";
      }),
      "INVALID_ARGUMENT",
      /steps\[0\]\.kind/,
    );
    await expectBatonError(
      damaged((s) => {
        (s[0] as { status: string }).status = "running";
      }),
      "INVALID_ARGUMENT",
      /steps\[0\]\.status/,
    );
    await expectBatonError(
      kit().replay(shape, { ...recorded, version: 0 }),
      "INVALID_ARGUMENT",
      /version/,
    );
  });

  describe("sagas, failures and lost races", () => {
    const recordTrip = async (ok: boolean) => {
      const { execution, result } = await kit().run(
        trip,
        { who: "rae" },
        { events: { decision: { ok } } },
      );
      return { recorded: await execution.exportJournal(), result, id: execution.id };
    };

    it("records the step a lost race left cancelled, and replays it as it was", async () => {
      const { recorded, result, id } = await recordTrip(true);
      expect(result).toMatchObject({ ok: true });
      expect(recorded.steps.map((s) => [s.name, s.status])).toEqual([
        ["book hotel", "completed"],
        ["decision", "completed"],
        ["give up", "cancelled"],
        ["book flight", "completed"],
      ]);
      expect(await kit().replay(trip, recorded)).toEqual({
        steps: 4,
        ended: "completed",
        recorded: "completed",
      });
      // Not a fork snapshot: a fork replays finished steps only.
      const snapshot = await env.KitExecutions.getByName(id).exportJournal();
      const forkId = `fork-${crypto.randomUUID()}`;
      await expectBatonError(
        env.KitExecutions.getByName(forkId).importFork(snapshot, { id: forkId, from: id }),
        "INVALID_ARGUMENT",
        /finished steps only \(step 2 "give up" is cancelled\)/,
      );
    });

    it("replays a failed, compensated execution without running its compensation", async () => {
      const { recorded, result, id } = await recordTrip(false);
      expect(result).toMatchObject({ ok: false, error: { message: "the trip is off" } });
      expect(tripUndone.get(id)).toEqual(["hotel"]);
      const before = [...tripUndone.values()].flat().length;
      const report = await kit().replay(trip, recorded);
      expect(report).toMatchObject({ ended: "failed", recorded: "failed" });
      expect(report.error?.message).toMatch(/the trip is off/);
      expect([...tripUndone.values()].flat().length).toBe(before); // no body ran
    });

    it("catches code that no longer fails on a recorded failure, saga or not", async () => {
      // A charge declined for good, no compensation: the edited code now catches the failure.
      const declined = await kit().run(
        subscription,
        { user: "sam", probe: probe().name },
        { events: { "card-added": { card: "declined" } } },
      );
      expect(declined.result).toMatchObject({ ok: false, error: { step: "charge" } });
      const recordedFailure = await declined.execution.exportJournal();
      const catches = workflow("subscription", async (_input: { user: string }, step) => {
        await step.do("create account", () => "never runs");
        await step.waitForEvent("payment method", { type: "card-added" });
        await step.sleep("trial", "7 days");
        try {
          await step.do("charge", () => "never runs");
          return "charged";
        } catch {
          return "free plan";
        }
      });
      await expectBatonError(
        kit().replay(catches, recordedFailure),
        "NONDETERMINISM",
        /recorded execution failed, but the code no longer fails on its journal \(it completes\)/,
      );
    });

    it("catches code that no longer fails where the recording did", async () => {
      const { recorded } = await recordTrip(false);
      tripVariant.current = "never fails";
      try {
        await expectBatonError(
          kit().replay(trip, recorded),
          "NONDETERMINISM",
          /"\$compensate:book hotel" in the recording .* now calls "book flight"/,
        );
      } finally {
        tripVariant.current = "as recorded";
      }
    });

    it("catches code that now fails where the recording completed; no compensation runs", async () => {
      const { recorded } = await recordTrip(true);
      const before = [...tripUndone.values()].flat().length;
      tripVariant.current = "always fails";
      try {
        // It compensates where the recording booked the flight.
        await expectBatonError(
          kit().replay(trip, recorded),
          "NONDETERMINISM",
          /"book flight" \(do\) in the journal but the code now calls "\$compensate:book hotel"/,
        );
        // It fails after the last recorded step: its compensation is past the recording.
        tripVariant.current = "fails at the end";
        await expectBatonError(
          kit().replay(trip, recorded),
          "NONDETERMINISM",
          /completed, but the code now fails on its journal .*no seat after all/,
        );
      } finally {
        tripVariant.current = "as recorded";
      }
      expect([...tripUndone.values()].flat().length).toBe(before);
    });
  });
});
