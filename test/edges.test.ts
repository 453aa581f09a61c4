/**
 * Edges a new user meets first: reads of an id that was never started (they must store
 * nothing), values over the RPC limit (a coded error on the caller's side), and `updatedAt`
 * moving with every status change.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { type ExecutionService, executions, resumeTokens } from "../src/index.ts";
import { eventually, expectBatonError, resetActor, uniqueName, waitingGreet } from "./helpers.ts";
import { approval } from "./kit-workflows.ts";
import type { Platform } from "./worker.ts";

/** The tables of an object's SQLite database, and its size, seen from inside the object. */
async function storageOf(stub: DurableObjectStub) {
  return runInDurableObject(stub, (_instance, state) => ({
    tables: state.storage.sql
      .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")
      .toArray()
      .map((row) => row.name),
    size: state.storage.sql.databaseSize,
  }));
}

/** A plain Execution actor (a user's: no migrations of its own) under a new name. */
function kitStub(prefix: string) {
  const id = uniqueName(prefix);
  return { id, stub: env.KitExecutions.getByName(id) };
}

/** Over workerd's limit of one RPC message (32 MiB). */
const OVER_RPC_LIMIT = 33 * 1024 * 1024;

describe("a read of an execution that was never started", () => {
  it("answers EXECUTION_NOT_FOUND from every read and control, and leaves no storage", async () => {
    const { id, stub } = kitStub("never");
    const empty = await storageOf(kitStub("untouched").stub);
    expect(empty.tables).toEqual([]);
    const calls: Array<[string, () => Promise<unknown>]> = [
      ["status", () => stub.status()],
      ["result", () => stub.result({ timeout: "1s" })],
      ["journal", () => stub.journal()],
      ["describe", () => stub.describe()],
      ["history", () => stub.history()],
      ["instanceStatus", () => stub.instanceStatus()],
      ["sendEvent", () => stub.sendEvent("approved", { by: "x" })],
      ["cancel", () => stub.cancel()],
      ["pause", () => stub.pause()],
      ["resume", () => stub.resume()],
      ["restart", () => stub.restart()],
      ["delete", () => stub.delete()],
      ["exportCheckpoint", () => stub.exportCheckpoint("cp")],
      ["exportJournal", () => stub.exportJournal()],
      ["progress", () => stub.progress("step")],
      ["complete", () => stub.complete(1)],
      ["fail", () => stub.fail("no")],
      ["childDone", () => stub.childDone(0, "c", { ok: true, id: "c", value: 1 } as never)],
    ];
    for (const [name, call] of calls) {
      const error = await expectBatonError(call(), "EXECUTION_NOT_FOUND");
      expect(error.message, name).toContain(id);
    }
    // The typed client's handles say the same.
    const run = executions(env.KitExecutions).get(id);
    await expectBatonError(run.status(), "EXECUTION_NOT_FOUND");
    await expectBatonError(run.sendEvent("approved", { by: "y" }), "EXECUTION_NOT_FOUND");
    await expectBatonError(
      executions(env.KitExecutions).tracked(id).journal(),
      "EXECUTION_NOT_FOUND",
    );
    // Live progress: 404, no socket accepted.
    const live = await stub.fetch("https://baton/live", { headers: { Upgrade: "websocket" } });
    expect(live.status).toBe(404);
    // Refused starts store nothing either.
    await expectBatonError(stub.start("no-such-workflow", null, { id }), "UNKNOWN_WORKFLOW");
    await expectBatonError(
      stub.start("approval", null, { id, retention: "1 second" }),
      "INVALID_ARGUMENT",
    );
    await expectBatonError(stub.track("t", { id, totalSteps: -1 }), "INVALID_ARGUMENT");
    expect(await storageOf(stub)).toEqual(empty);
  });

  it("starts normally afterwards, in the same instance, and survives a reset", async () => {
    const { id, stub } = kitStub("later");
    await expectBatonError(stub.status(), "EXECUTION_NOT_FOUND");
    const client = executions(env.KitExecutions);
    const run = await client.start(approval, null, { id });
    await eventually(
      () => run.status(),
      (s) => s.status === "waiting",
    );
    const { tables } = await storageOf(stub);
    expect(tables).toEqual(expect.arrayContaining(["_baton_migrations", "_baton_execution"]));
    // A wake of an existing execution migrates at once and resumes its run.
    await resetActor(stub);
    await run.sendEvent("approved", { by: "ada" });
    expect(await run.result({ timeout: "5s" })).toMatchObject({ ok: true, value: "ada" });
    expect((await run.journal()).map((entry) => entry.status)).toEqual(["completed"]);
  });

  it("tracks a new execution (its first write) after a read found nothing", async () => {
    const { id, stub } = kitStub("tracked");
    const tracked = executions(env.KitExecutions).tracked(id);
    await expectBatonError(tracked.status(), "EXECUTION_NOT_FOUND");
    expect(await tracked.start("import", { totalSteps: 2 })).toMatchObject({ status: "running" });
    await tracked.progress("a", { output: 1 });
    await tracked.progress("b", { output: 2 });
    expect(await tracked.complete("done")).toMatchObject({ status: "completed" });
    expect(await tracked.result()).toEqual({ ok: true, status: "completed", value: "done" });
    expect((await storageOf(stub)).tables).toContain("_baton_steps");
  });

  it("answers reads after a delete without recreating anything it deleted", async () => {
    const { id, stub } = kitStub("deleted");
    const run = await executions(env.KitExecutions).start(approval, null, { id });
    await run.delete();
    await expectBatonError(stub.status(), "EXECUTION_NOT_FOUND");
    await expectBatonError(stub.journal(), "EXECUTION_NOT_FOUND");
    // Its id is free again.
    const again = await executions(env.KitExecutions).start(approval, null, { id });
    expect((await again.status()).run).toBe(2);
    await again.cancel();
  });
});

describe("a value over the RPC limit", () => {
  it("fails start and execute on the caller's side with PAYLOAD_TOO_LARGE naming the limit", async () => {
    const { id, stub } = kitStub("big");
    const big = new Uint8Array(OVER_RPC_LIMIT);
    const client = executions(env.KitExecutions);
    const error = await expectBatonError(
      client.start("approval", big as never, { id }),
      "PAYLOAD_TOO_LARGE",
      /start\(\) is over the RPC limit, 32 MiB \(33554432 bytes\): \d+ bytes/,
    );
    expect(error.details).toMatchObject({ method: "start", limit: 33_554_432 });
    expect(error.details?.bytes as number).toBeGreaterThan(OVER_RPC_LIMIT);
    await expectBatonError(client.execute("approval", big as never, { id }), "PAYLOAD_TOO_LARGE");
    // Nothing reached the actor.
    expect((await storageOf(stub)).tables).toEqual([]);
  });

  it("fails an event and a tracked report the same way, leaving the execution as it was", async () => {
    const { id } = kitStub("big-event");
    const run = await executions(env.KitExecutions).start(approval, null, { id });
    await eventually(
      () => run.status(),
      (s) => s.status === "waiting",
    );
    const big = { by: "x".repeat(OVER_RPC_LIMIT) };
    await expectBatonError(run.sendEvent("approved", big), "PAYLOAD_TOO_LARGE", /sendEvent\(\)/);
    expect((await run.status()).status).toBe("waiting");
    await run.sendEvent("approved", { by: "small" });
    expect(await run.result({ timeout: "5s" })).toMatchObject({ ok: true, value: "small" });

    const tracked = executions(env.KitExecutions).tracked(uniqueName("big-tracked"));
    await tracked.start("import");
    await expectBatonError(
      tracked.progress("a", { output: new Uint8Array(OVER_RPC_LIMIT) }),
      "PAYLOAD_TOO_LARGE",
    );
    await expectBatonError(tracked.complete(new Uint8Array(OVER_RPC_LIMIT)), "PAYLOAD_TOO_LARGE");
    expect(await tracked.status()).toMatchObject({ status: "running", stepCount: 0 });
  });

  it("maps it through a BatonService too", async () => {
    const id = uniqueName("big-service");
    const client = executions<Platform>(env.PLATFORM as unknown as ExecutionService);
    await expectBatonError(
      client.start("greet", { name: "x".repeat(OVER_RPC_LIMIT) }, { id }),
      "PAYLOAD_TOO_LARGE",
      /start\(\)/,
    );
  });
});

describe("a resume token's payload over the RPC limit", () => {
  it("is refused with PAYLOAD_TOO_LARGE before it reaches the token, which stays usable", async () => {
    const { run } = await waitingGreet("big-token");
    const tokens = resumeTokens(env.Checkpoints);
    const token = await tokens.issue({
      executionId: (await run.status()).id,
      event: "approve",
      binding: "TestExecutions",
    });
    await expectBatonError(
      tokens.redeem(token, "x".repeat(OVER_RPC_LIMIT)),
      "PAYLOAD_TOO_LARGE",
      /redeem\(\) is over the RPC limit/,
    );
    await tokens.redeem(token, { by: "small" });
    await expectBatonError(tokens.redeem(token, null), "INVALID_TOKEN");
  });
});

describe("status().updatedAt", () => {
  it("moves with every status change: sleeping, waiting, paused, running, completed", async () => {
    const { id, stub, run } = await waitingGreet("updated");
    const seen: Array<{ status: string; updatedAt: number; clock: number }> = [];
    const record = async () => {
      const info = await run.status();
      seen.push({ status: info.status, updatedAt: info.updatedAt, clock: await stub.clock() });
      return info;
    };
    // waitingGreet: started at the clock's start, slept 1 s, now waits since then.
    const waiting = await record();
    expect(waiting.status).toBe("waiting");
    expect(waiting.updatedAt).toBe(waiting.createdAt + 1_000);
    await stub.advanceClock(500);
    await run.pause();
    expect((await record()).status).toBe("paused");
    await stub.advanceClock(500);
    await run.resume();
    expect((await record()).status).toBe("waiting");
    await stub.advanceClock(500);
    await run.sendEvent("approve", { ok: true });
    await eventually(
      () => run.status(),
      (s) => s.status === "completed",
    );
    expect((await record()).status).toBe("completed");
    // Each change is stamped with the clock of the moment it happened.
    for (const entry of seen) expect(entry.updatedAt, entry.status).toBe(entry.clock);
    expect(new Set(seen.map((entry) => entry.updatedAt)).size).toBe(seen.length);
    expect(id).toBe(run.id);
  });

  it("moves from running to sleeping when the step before a sleep ends later", async () => {
    const { stub, run } = await waitingGreet("updated-sleep");
    const before = await run.status();
    // Restart: it runs again from the start at a later clock; the new sleep is stamped then.
    await stub.advanceClock(10_000);
    await run.restart();
    const sleeping = await eventually(
      () => run.status(),
      (s) => s.status === "sleeping",
    );
    expect(sleeping.updatedAt).toBe(await stub.clock());
    expect(sleeping.updatedAt).toBeGreaterThan(before.updatedAt);
    await run.cancel();
  });
});
