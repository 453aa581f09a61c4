import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { type ExecutionState, StateManager } from "../src/index.ts";
import { eventually, expectBatonError, uniqueName, waitingGreet } from "./helpers.ts";

function manager(executionId = uniqueName("exec")) {
  return new StateManager<ExecutionState>({ env, executionId });
}

function initial(id: string): ExecutionState {
  return {
    id,
    status: "running",
    input: { orderId: "ORD-1" },
    memberOutputs: new Map<string, unknown>([["validate", { valid: true, at: new Date(0) }]]),
    startTime: 1_000,
    metadata: { attempts: 1 },
  };
}

describe("StateManager: state", () => {
  it("saves and loads state, with Maps and Dates coming back as they went in", async () => {
    const state = manager();
    expect(await state.load()).toBeNull();
    await state.save(initial(state.executionId));
    const loaded = await manager(state.executionId).load();
    expect(loaded?.memberOutputs).toBeInstanceOf(Map);
    expect(loaded).toEqual(initial(state.executionId));
  });

  it("updates fields (merging Maps) and fails with STATE_NOT_FOUND when there is no state", async () => {
    const state = manager();
    await expectBatonError(state.update({ status: "waiting" }), "STATE_NOT_FOUND", /No state/);
    await state.save(initial(state.executionId));
    const next = await state.update({
      status: "waiting",
      memberOutputs: new Map([["total", 99.99]]),
    });
    expect(next.status).toBe("waiting");
    expect([...(next.memberOutputs?.keys() ?? [])]).toEqual(["validate", "total"]);
    expect(await manager(state.executionId).load()).toEqual(next);
  });

  it("rejects a save over a concurrent change with CONFLICT, losing no update", async () => {
    const id = uniqueName("exec");
    const a = manager(id);
    const b = manager(id);
    await a.save(initial(id));
    // save: b read version 1, a changed it since.
    const stale = await b.load();
    await a.update({ currentMember: "by-a" });
    await expectBatonError(
      b.save({ ...(stale as ExecutionState), status: "failed" }),
      "CONFLICT",
      /changed since you read it/,
    );
    // update / transaction: a change lands between their read and their write.
    await expectBatonError(
      b.transaction(async (s) => {
        await a.update({ metadata: { attempts: 2 } });
        s.status = "paused";
      }),
      "CONFLICT",
    );
    // Retried, both changes are kept.
    const merged = await b.update({ status: "paused" });
    expect(merged).toMatchObject({
      currentMember: "by-a",
      status: "paused",
      metadata: { attempts: 2 },
    });
  });

  it("keeps two concurrent transactions of one manager from overwriting each other", async () => {
    const state = manager();
    await state.save(initial(state.executionId));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const slow = state.transaction(async (s) => {
      await gate; // the fast one saves meanwhile
      s.metadata = { slow: true };
    });
    await state.transaction((s) => {
      s.currentMember = "fast";
    });
    release();
    await expectBatonError(slow, "CONFLICT");
    expect((await state.load())?.currentMember).toBe("fast");
  });

  it("runs a transaction all or nothing: a throwing function leaves the state byte-identical", async () => {
    const state = manager();
    await state.save(initial(state.executionId));
    const scope = `state:${state.executionId}`;
    const before = await env.Checkpoints.getByName(scope).history("$state");
    await expect(
      state.transaction((s) => {
        s.memberOutputs?.set("payment", { id: "ch_1" });
        s.status = "completed";
        throw new Error("payment provider down");
      }),
    ).rejects.toThrow("payment provider down");
    expect(await env.Checkpoints.getByName(scope).history("$state")).toEqual(before);
    expect(await state.load()).toEqual(initial(state.executionId));
    const after = await state.transaction((s) => {
      s.memberOutputs?.set("payment", { id: "ch_1" });
      s.currentMember = "send-confirmation";
    });
    expect(after.memberOutputs?.get("payment")).toEqual({ id: "ch_1" });
  });

  it("deletes state and its checkpoints", async () => {
    const state = manager();
    await state.save(initial(state.executionId));
    await state.checkpoint("c1");
    await state.delete();
    expect(await state.load()).toBeNull();
    expect(await state.listCheckpoints()).toEqual([]);
  });
});

describe("StateManager: checkpoints", () => {
  it("restores a checkpoint after a mutation, deep-equal with its Map and Date", async () => {
    const state = manager();
    await state.save(initial(state.executionId));
    await state.checkpoint("before-payment");
    await state.update({
      status: "failed",
      memberOutputs: new Map([["payment", { error: "declined" }]]),
    });
    const restored = await state.restore("before-payment");
    expect(restored).toEqual(initial(state.executionId));
    expect(await state.load()).toEqual(initial(state.executionId));
    const list = await state.listCheckpoints();
    expect(list.map((c) => c.name)).toEqual(["before-payment"]);
    expect(list[0]?.state).toEqual(initial(state.executionId));
    await expectBatonError(state.restore("never-made"), "CHECKPOINT_NOT_FOUND", /never-made/);
    await expectBatonError(manager().checkpoint("x"), "STATE_NOT_FOUND");
  });
});

describe("StateManager: locks", () => {
  it("locks, reports it, refuses a second holder, times out a waiter, and unlocks", async () => {
    const id = uniqueName("exec");
    const a = manager(id);
    const b = manager(id);
    expect(await a.isLocked()).toBe(false);
    expect(await a.lock()).toBe(true);
    expect(await a.isLocked()).toBe(true);
    expect(await b.lock()).toBe(false);
    const waiting = expectBatonError(b.lock({ timeout: "30s" }), "LOCK_TIMEOUT");
    const lockStub = env.Locks.getByName(`state:${id}`);
    await eventually(
      () => lockStub.status(),
      (s) => s.queue === 1,
    );
    await lockStub.advanceClock(30_000);
    await runDurableObjectAlarm(lockStub);
    await waiting;
    await a.unlock();
    expect(await a.isLocked()).toBe(false);
    expect(await b.lock({ timeout: "1s" })).toBe(true);
    await b.unlock();
  });
});

describe("StateManager: pause and resume", () => {
  it("hands out a resume token that resumes the paused execution once", async () => {
    const { id, run } = await waitingGreet("sm-greet", "P");

    const state = new StateManager<ExecutionState>({
      env,
      executionId: id,
      bindings: { executions: "TestExecutions" },
    });
    await state.save(initial(id));
    // The greet workflow waits for "approve"; the token delivers that event.
    const token = await state.pause({
      member: "approval",
      reason: "waiting_for_approval",
      event: "approve",
    });
    expect((await state.load())?.status).toBe("paused");
    expect(token).toMatch(/^bt_/);
    await state.resume(token, { ok: true });
    expect((await state.load())?.status).toBe("running");
    expect(await run.result({ timeout: "5s" })).toMatchObject({
      ok: true,
      value: { approved: true },
    });
    await expectBatonError(state.resume(token, { ok: false }), "INVALID_TOKEN");
    await expectBatonError(state.resume("bt_not-a-token", {}), "INVALID_TOKEN");
  });

  it("refuses another execution's token: it stays unused, and its own execution still gets it", async () => {
    const a = await waitingGreet("sm-a", "A");
    const b = await waitingGreet("sm-b", "B");
    const forA = new StateManager<ExecutionState>({
      env,
      executionId: a.id,
      bindings: { executions: "TestExecutions" },
    });
    const forB = new StateManager<ExecutionState>({
      env,
      executionId: b.id,
      bindings: { executions: "TestExecutions" },
    });
    const tokenForB = await forB.pause({ member: "approval", event: "approve" });
    await expectBatonError(forA.resume(tokenForB, { ok: true }), "INVALID_TOKEN");
    // Nothing reached either execution; B's own manager redeems the token as usual.
    expect((await a.run.status()).status).toBe("waiting");
    expect((await b.run.status()).status).toBe("waiting");
    await forB.resume(tokenForB, { ok: false });
    expect(await b.run.result({ timeout: "5s" })).toMatchObject({
      ok: true,
      value: { approved: false },
    });
    expect((await a.run.status()).status).toBe("waiting");
    await a.run.cancel();
  });

  it("rejects bad options, and wraps storage failures as STORAGE_ERROR", async () => {
    expect(() => new StateManager({ env, executionId: "" })).toThrowError(/executionId/);
    expect(() => new StateManager({ env: {}, executionId: "x" })).toThrowError(
      /binding "Checkpoints"/,
    );
    const broken = {
      ...env,
      Checkpoints: {
        getByName() {
          throw new Error("storage unreachable");
        },
      },
    };
    const state = new StateManager({ env: broken, executionId: uniqueName("exec") });
    await expectBatonError(state.save(initial("x")), "STORAGE_ERROR", /storage unreachable/);
    // Malformed arguments to methods: the seed has no code of its own for them.
    await expectBatonError(manager().pause({ member: "" }), "SERIALIZATION_ERROR", /member/);
    await expectBatonError(
      manager().pause({ member: "m", expiresAt: 1 }),
      "SERIALIZATION_ERROR",
      /expiresAt/,
    );
    await expectBatonError(manager().lock({ timeout: "a while" as never }), "SERIALIZATION_ERROR");
    await expectBatonError(manager().update(null as never), "SERIALIZATION_ERROR", /updates/);
    await expectBatonError(manager().transaction(1 as never), "SERIALIZATION_ERROR", /fn/);
    await expectBatonError(manager().checkpoint(""), "SERIALIZATION_ERROR");
    await expectBatonError(manager().restore("\u0000"), "CHECKPOINT_NOT_FOUND");
    // Only the constructor refuses bad configuration, before any state operation.
    expect(() => new StateManager({ env, executionId: "x", ttl: "soon" as never })).toThrowError(
      /ttl/,
    );
  });
});

/** The Checkpoint actor that keeps `token` (tokens are spread by the first byte of their hash). */
async function tokenShard(token: string) {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token)),
  );
  return env.Checkpoints.getByName(`resume-tokens:${digest[0]!.toString(16).padStart(2, "0")}`);
}

/** The seed's codes: the only ones the facade's methods may throw. */
const SEED_CODES = [
  "STATE_NOT_FOUND",
  "LOCK_TIMEOUT",
  "CHECKPOINT_NOT_FOUND",
  "SERIALIZATION_ERROR",
  "STORAGE_ERROR",
  "INVALID_TOKEN",
  "CONFLICT",
];

describe("StateManager without a Baton execution, as the seed uses it", () => {
  it("pauses with no state saved, and resumes once: running, with the input handed over", async () => {
    // The seed's own test: pause, resume, load. "Executions" is bound, but nothing runs there.
    const state = manager();
    const token = await state.pause({ member: "approval", reason: "waiting" });
    expect(await state.load()).toMatchObject({
      id: state.executionId,
      status: "paused",
      currentMember: "approval",
    });
    await state.resume(token, { approved: true });
    const resumed = await manager(state.executionId).load();
    expect(resumed?.status).toBe("running");
    expect(resumed?.memberOutputs?.get("approval")).toEqual({ approved: true });
    await expectBatonError(state.resume(token, { approved: false }), "INVALID_TOKEN");
    expect((await state.load())?.memberOutputs?.get("approval")).toEqual({ approved: true });
  });

  it("keeps the saved state's fields, and the reading of an execution id stores nothing there", async () => {
    const id = uniqueName("exec");
    const state = new StateManager<ExecutionState>({
      env,
      executionId: id,
      bindings: { executions: "KitExecutions" },
    });
    await state.save(initial(id));
    const token = await state.pause({ member: "approval", data: { url: "https://x" } });
    await state.resume(token, { approved: true, comments: "Looks good" });
    const loaded = await state.load();
    const { memberOutputs: _outputs, ...fields } = initial(id);
    expect(loaded).toMatchObject({ ...fields, status: "running", currentMember: "approval" });
    expect([...(loaded?.memberOutputs?.entries() ?? [])]).toEqual([
      ["validate", { valid: true, at: new Date(0) }],
      ["approval", { approved: true, comments: "Looks good" }],
    ]);
    // The token found no execution behind the id, and left no storage in its actor.
    const tables = await runInDurableObject(env.KitExecutions.getByName(id), (_i, s) =>
      s.storage.sql.exec("SELECT name FROM sqlite_master WHERE type = 'table'").toArray(),
    );
    expect(tables).toEqual([]);
  });

  it("works in an env with no Execution actor binding at all", async () => {
    const { Executions: _none, ...withoutExecutions } = env;
    const state = new StateManager<ExecutionState>({
      env: withoutExecutions,
      executionId: uniqueName("exec"),
    });
    const token = await state.pause({ member: "review" });
    await state.resume(token, "ok");
    expect(await state.load()).toMatchObject({ status: "running" });
    expect((await state.load())?.memberOutputs?.get("review")).toBe("ok");
    await expectBatonError(state.resume(token, "again"), "INVALID_TOKEN");
  });

  it("refuses forged, malformed and other executions' tokens; the right one still works", async () => {
    const a = manager();
    const b = manager();
    const tokenForB = await b.pause({ member: "m" });
    await expectBatonError(a.resume(tokenForB, 1), "INVALID_TOKEN");
    await expectBatonError(a.resume(`bt_${"A".repeat(43)}`, 1), "INVALID_TOKEN");
    await expectBatonError(a.resume("hitl_token_123", 1), "INVALID_TOKEN");
    await expectBatonError(a.resume(42 as never, 1), "INVALID_TOKEN");
    expect(await a.load()).toBeNull();
    expect((await b.load())?.status).toBe("paused");
    await b.resume(tokenForB, 2);
    expect((await b.load())?.status).toBe("running");
  });

  it("refuses a token after its TTL (the token actor's clock): INVALID_TOKEN, state left paused", async () => {
    const state = new StateManager<ExecutionState>({
      env,
      executionId: uniqueName("exec"),
      ttl: "1 hour",
    });
    // One second before its TTL, a token still resumes.
    const first = await state.pause({ member: "approval" });
    await (await tokenShard(first)).advanceClock(60 * 60 * 1000 - 1_000);
    await state.resume(first, "in time");
    expect((await state.load())?.status).toBe("running");
    // At its TTL, it no longer does.
    const second = await state.pause({ member: "approval" });
    await (await tokenShard(second)).advanceClock(60 * 60 * 1000);
    await expectBatonError(state.resume(second, "too late"), "INVALID_TOKEN");
    expect(await state.load()).toMatchObject({ status: "paused" });
    expect((await state.load())?.memberOutputs?.get("approval")).toBe("in time");
  });

  it("gives INVALID_TOKEN when the execution behind the token has ended", async () => {
    const { id, run } = await waitingGreet("sm-ended", "E");
    const state = new StateManager<ExecutionState>({
      env,
      executionId: id,
      bindings: { executions: "TestExecutions" },
    });
    const token = await state.pause({ member: "approval", event: "approve" });
    await run.cancel();
    const error = await expectBatonError(state.resume(token, { ok: true }), "INVALID_TOKEN");
    expect(error.details).toMatchObject({ cause: "EXECUTION_FINISHED" });
    expect((await state.load())?.status).toBe("paused");
  });

  it("surfaces only the seed's codes", async () => {
    const state = manager();
    const failures: Array<() => Promise<unknown>> = [
      () => state.update({ status: "failed" }),
      () => state.checkpoint("none"),
      () => state.restore("none"),
      () =>
        state.save({ id: "x", status: "running", startTime: 1, metadata: { f: () => 1 } } as never),
      () =>
        state.save({
          id: "x",
          status: "running",
          startTime: 1,
          metadata: { big: "x".repeat(33 * 1024 * 1024) },
        }),
      () => state.resume(`bt_${"B".repeat(43)}`),
    ];
    const codes: string[] = [];
    for (const failure of failures) {
      const error = await failure().then(
        () => null,
        (e: { code?: string }) => e,
      );
      expect(error, "every call above fails").not.toBeNull();
      codes.push(String(error?.code));
    }
    for (const code of codes) expect(SEED_CODES).toContain(code);
    expect(codes).toEqual([
      "STATE_NOT_FOUND",
      "STATE_NOT_FOUND",
      "CHECKPOINT_NOT_FOUND",
      "SERIALIZATION_ERROR",
      "STORAGE_ERROR",
      "INVALID_TOKEN",
    ]);
  });
});
