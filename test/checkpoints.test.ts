import {
  env,
  evictDurableObject,
  runDurableObjectAlarm,
  runInDurableObject,
} from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { checkpoints, executions, isBatonError, resumeTokens } from "../src/index.ts";
import {
  advance as advanceClock,
  eventually,
  executionStub,
  expectBatonError,
  randomBytes,
  uniqueName,
  waitingGreet,
} from "./helpers.ts";
import type { TestCheckpoints } from "./worker.ts";
import { greet } from "./workflows.ts";

const cp = () => checkpoints(env.Checkpoints);

/** Moves a scope's Checkpoint actor clock and delivers its due alarms. */
const advance = (scope: string, ms: number) => advanceClock(env.Checkpoints.getByName(scope), ms);

describe("checkpoints: versions", () => {
  it("saves versions, loads the latest or a given one, lists by time and keeps history", async () => {
    const scope = uniqueName("scope");
    const v1 = await cp().save(scope, "cart", { items: new Map([["a", 1]]), at: new Date(0) });
    expect(v1).toMatchObject({ name: "cart", version: 1, expiresAt: null });
    await env.Checkpoints.getByName(scope).advanceClock(10);
    const v2 = await cp().save(scope, "cart", { items: new Map([["a", 2]]), at: new Date(1) });
    await env.Checkpoints.getByName(scope).advanceClock(10);
    await cp().save(scope, "profile", { name: "Ada", big: 10n ** 20n });
    expect(v2.version).toBe(2);
    const latest = await cp().load(scope, "cart");
    expect(latest).toMatchObject({
      version: 2,
      value: { items: new Map([["a", 2]]), at: new Date(1) },
    });
    expect(await cp().load(scope, "cart", { version: 1 })).toMatchObject({
      value: { items: new Map([["a", 1]]) },
    });
    expect((await cp().list(scope)).map((c) => [c.name, c.version])).toEqual([
      ["cart", 2],
      ["profile", 1],
    ]);
    expect((await cp().history(scope, "cart")).map((c) => c.version)).toEqual([1, 2]);
    // Eviction between save and load changes nothing.
    await evictDurableObject(env.Checkpoints.getByName(scope));
    expect((await cp().load(scope, "profile")).value).toEqual({ name: "Ada", big: 10n ** 20n });
    expect(await cp().delete(scope, "cart")).toBe(2);
    await expectBatonError(cp().load(scope, "cart"), "CHECKPOINT_NOT_FOUND", /"cart"/);
    await expectBatonError(
      cp().load(scope, "profile", { version: 7 }),
      "CHECKPOINT_NOT_FOUND",
      /version 7/,
    );
  });

  it("lets exactly one of two writers of version v win; the other gets CONFLICT with the current version", async () => {
    const scope = uniqueName("scope");
    await cp().save(scope, "doc", { n: 0 });
    const { version } = await cp().load(scope, "doc");
    const results = await Promise.allSettled([
      cp().save(scope, "doc", { n: 1, by: "a" }, { expectedVersion: version }),
      cp().save(scope, "doc", { n: 1, by: "b" }, { expectedVersion: version }),
    ]);
    const won = results.filter((r) => r.status === "fulfilled");
    const lost = results.filter((r) => r.status === "rejected");
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    const error = (lost[0] as PromiseRejectedResult).reason;
    expect(isBatonError(error, "CONFLICT")).toBe(true);
    expect(error.details).toMatchObject({ currentVersion: 2, expectedVersion: 1 });
    // The loser reloads and retries: no update is lost.
    const fresh = await cp().load(scope, "doc");
    await cp().save(
      scope,
      "doc",
      { ...(fresh.value as object), n: 2 },
      { expectedVersion: fresh.version },
    );
    expect((await cp().history(scope, "doc")).map((c) => c.version)).toEqual([1, 2, 3]);
    await expectBatonError(
      cp().save(scope, "new", 1, { expectedVersion: 1 }),
      "CONFLICT",
      /version 0/,
    );
    expect((await cp().save(scope, "new", 1, { expectedVersion: 0 })).version).toBe(1);
  });

  it("round-trips a 10 MB value across rows", async () => {
    const scope = uniqueName("scope");
    const value = { blob: randomBytes(10 * 1024 * 1024), meta: new Map([["k", new Date(5)]]) };
    const saved = await cp().save(scope, "big", value);
    expect(saved.bytes).toBeGreaterThan(5 * 1024 * 1024);
    const back = (await cp().load(scope, "big")).value as typeof value;
    expect(back.blob.byteLength).toBe(value.blob.byteLength);
    expect(back.blob).toEqual(value.blob);
    expect(back.meta).toEqual(value.meta);
  });

  it("refuses a value it cannot encode with SERIALIZATION_ERROR and keeps the previous version", async () => {
    const scope = uniqueName("scope");
    await cp().save(scope, "s", { ok: true });
    await runInDurableObject(
      env.Checkpoints.getByName(scope),
      async (instance: TestCheckpoints) => {
        const error = await instance.save("s", { fn: () => 1 } as never).catch((e: unknown) => e);
        expect(isBatonError(error, "SERIALIZATION_ERROR")).toBe(true);
      },
    );
    expect(await cp().load(scope, "s")).toMatchObject({ version: 1, value: { ok: true } });
  });

  it("deletes a version when its TTL runs out, by alarm, and keeps only the last K", async () => {
    const scope = uniqueName("scope");
    await cp().save(scope, "temp", "short-lived", { ttl: "1 minute" });
    await advance(scope, 59_999);
    expect((await cp().load(scope, "temp")).value).toBe("short-lived");
    await advance(scope, 1);
    await expectBatonError(cp().load(scope, "temp"), "CHECKPOINT_NOT_FOUND");
    expect(await cp().history(scope, "temp")).toEqual([]);
    for (let i = 1; i <= 5; i++) await cp().save(scope, "rolling", i, { keep: 2 });
    expect((await cp().history(scope, "rolling")).map((c) => c.version)).toEqual([4, 5]);
    await expectBatonError(cp().load(scope, "rolling", { version: 3 }), "CHECKPOINT_NOT_FOUND");
  });

  it("rejects bad input for every method with a clear code", async () => {
    const scope = uniqueName("scope");
    await cp().save(scope, "keep", 1);
    const stub = env.Checkpoints.getByName(scope);
    const cases: Array<[() => Promise<unknown>, string, RegExp]> = [
      [() => stub.save("", 1), "INVALID_ARGUMENT", /Checkpoint name/],
      [() => stub.save("x".repeat(257), 1), "INVALID_ARGUMENT", /Checkpoint name/],
      [() => stub.save("a", 1, { expectedVersion: -1 }), "INVALID_ARGUMENT", /expectedVersion/],
      [() => stub.save("a", 1, { ttl: 0 }), "INVALID_ARGUMENT", /ttl/],
      [() => stub.save("a", 1, { ttl: "2 fortnights" as "1s" }), "INVALID_DURATION", /fortnights/],
      [() => stub.save("a", 1, { ttl: "2 years" }), "INVALID_ARGUMENT", /ttl/],
      [() => stub.save("a", 1, { keep: 0 }), "INVALID_ARGUMENT", /keep/],
      [() => stub.load(""), "INVALID_ARGUMENT", /Checkpoint name/],
      [() => stub.load("keep", { version: 0 }), "INVALID_ARGUMENT", /version/],
      [() => stub.history(""), "INVALID_ARGUMENT", /Checkpoint name/],
      [() => stub.delete(""), "INVALID_ARGUMENT", /Checkpoint name/],
      [() => cp().save("", "a", 1), "INVALID_ARGUMENT", /scope/],
    ];
    for (const [call, code, message] of cases)
      await expectBatonError(call(), code as "INVALID_ARGUMENT", message);
    expect((await cp().list(scope)).map((c) => c.name)).toEqual(["keep"]);
  });
});

describe("checkpoints: version numbers", () => {
  it("never reuses a version number, so a stale expectedVersion cannot match after a delete", async () => {
    const scope = uniqueName("scope");
    await cp().save(scope, "doc", "A");
    const seen = await cp().load(scope, "doc"); // version 1
    await cp().delete(scope, "doc");
    expect((await cp().save(scope, "doc", "B")).version).toBe(2);
    await expectBatonError(
      cp().save(scope, "doc", "stale", { expectedVersion: seen.version }),
      "CONFLICT",
      /version 2/,
    );
    expect((await cp().load(scope, "doc")).value).toBe("B");
  });

  it("treats a version past its TTL as gone even before its alarm runs", async () => {
    const scope = uniqueName("scope");
    await cp().save(scope, "t", "old", { ttl: "1 minute" });
    await env.Checkpoints.getByName(scope).advanceClock(60_000); // no alarm yet
    await expectBatonError(cp().load(scope, "t"), "CHECKPOINT_NOT_FOUND");
    expect((await cp().save(scope, "t", "new", { expectedVersion: 0 })).version).toBe(2);
    await advance(scope, 0); // the old version's timer now runs: it must not touch version 2
    await runDurableObjectAlarm(env.Checkpoints.getByName(scope));
    expect((await cp().load(scope, "t")).value).toBe("new");
  });
});

describe("resume tokens", () => {
  it("resumes a waiting execution without its id, once; the token is stored only as a hash", async () => {
    const { id, run } = await waitingGreet("token-greet");
    const tokens = resumeTokens(env.Checkpoints);
    const token = await tokens.issue({
      executionId: id,
      event: "approve",
      ttl: "1h",
      binding: "TestExecutions",
      data: { who: "ops" },
    });
    expect(token).toMatch(/^bt_[A-Za-z0-9_-]{43}$/);
    const shard = env.Checkpoints.getByName(`resume-tokens:${(await sha256(token)).slice(0, 2)}`);
    const rows = await shard.tokenRows();
    expect(rows.some((r) => r.includes(token) || r.includes(token.slice(3)))).toBe(false);
    expect(await tokens.redeem(token, { ok: true })).toEqual({
      executionId: id,
      event: "approve",
      data: { who: "ops" },
    });
    expect(await run.result({ timeout: "5s" })).toMatchObject({
      ok: true,
      value: { approved: true },
    });
    await expectBatonError(tokens.redeem(token, { ok: false }), "INVALID_TOKEN");
  });

  it("uses up a token whose execution has finished: a restarted run never receives it", async () => {
    const { id, stub, run } = await waitingGreet("token-greet");
    const tokens = resumeTokens(env.Checkpoints);
    const token = await tokens.issue({
      executionId: id,
      event: "approve",
      binding: "TestExecutions",
    });
    await run.cancel();
    await expectBatonError(tokens.redeem(token, { ok: true }), "EXECUTION_FINISHED");
    // Spent by that attempt: a restarted run of the same execution does not get it.
    await stub.restart();
    await expectBatonError(tokens.redeem(token, { ok: true }), "INVALID_TOKEN");
    await advanceClock(stub, 1_000);
    await eventually(
      () => stub.status(),
      (s) => s.status === "waiting" && s.run === 2,
    );
    expect((await stub.journal()).map((e) => `${e.name}:${e.status}`)).toEqual([
      "hello:completed",
      "pause:completed",
      "approval:waiting",
    ]);
    await expectBatonError(
      tokens.issue({ executionId: id, event: "approve", binding: "NoSuchBinding" }),
      "INVALID_ARGUMENT",
      /NoSuchBinding/,
    );
    await run.cancel();
  });

  it("gives a token back when its execution refuses the payload for now", async () => {
    // greet is asleep before its wait: events are buffered, and its buffer is full.
    const { id, stub } = executionStub("token-full");
    const run = await executions(env.TestExecutions).start(greet, { name: "F" }, { id });
    await eventually(
      () => run.status(),
      (s) => s.status === "sleeping",
    );
    for (let i = 0; i < 1000; i++) await stub.sendEvent("unwanted", i);
    const tokens = resumeTokens(env.Checkpoints);
    const token = await tokens.issue({
      executionId: id,
      event: "approve",
      binding: "TestExecutions",
    });
    await expectBatonError(tokens.redeem(token, { ok: true }), "LIMIT_EXCEEDED");
    // Not spent: once the execution waits for it, the same token resumes it.
    await advanceClock(stub, 1_000);
    await eventually(
      () => run.status(),
      (s) => s.status === "waiting",
    );
    expect((await tokens.redeem(token, { ok: true })).executionId).toBe(id);
    expect(await run.result({ timeout: "5s" })).toMatchObject({
      ok: true,
      value: { approved: true },
    });
  });

  it("refuses forged, malformed and expired tokens, changing nothing", async () => {
    const { id, run } = await waitingGreet("token-greet");
    const tokens = resumeTokens(env.Checkpoints);
    await expectBatonError(tokens.redeem("bt_forged", {}), "INVALID_TOKEN", /malformed/);
    await expectBatonError(tokens.redeem(`bt_${"A".repeat(43)}`, {}), "INVALID_TOKEN", /not valid/);
    const token = await tokens.issue({
      executionId: id,
      event: "approve",
      ttl: "1 minute",
      binding: "TestExecutions",
    });
    const scope = `resume-tokens:${(await sha256(token)).slice(0, 2)}`;
    await advance(scope, 60_000);
    await expectBatonError(tokens.redeem(token, { ok: true }), "INVALID_TOKEN");
    expect((await run.status()).status).toBe("waiting");
    await expectBatonError(
      tokens.issue({ executionId: "", event: "x" }),
      "INVALID_ARGUMENT",
      /executionId/,
    );
    await expectBatonError(
      tokens.issue({ executionId: id, event: "bad event" }),
      "INVALID_ARGUMENT",
      /event/,
    );
    await run.cancel();
  });
});

async function sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}
