import { env, evictDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { executions } from "../src/index.ts";
import { advance, eventually, executionStub } from "./helpers.ts";
import { patchy } from "./workflows.ts";

const client = () => executions(env.TestExecutions);

/**
 * Starts `patchy` on code `from`, lets it sleep, "deploys" code `to` (the next wake replays
 * with it) and returns its result and journal.
 */
async function deploy(from: string, to: string | null) {
  const { id, stub } = executionStub(`patch-${from}-${to}`);
  const run = await client().start(patchy, { phase: from }, { id });
  await eventually(
    () => run.status(),
    (s) => s.status === "sleeping",
  );
  if (to !== null) await stub.setPatchVariant(to);
  await evictDurableObject(stub);
  await advance(stub, 60_000);
  const result = await run.result({ timeout: "5s" });
  return { result, names: (await run.journal()).map((e) => e.name) };
}

describe("step.patched: changing a running workflow's code", () => {
  it("is true on new code: the marker is journaled once, later calls give the same answer", async () => {
    const { result, names } = await deploy("v2", null);
    expect(result).toMatchObject({ ok: true, value: { first: "new", later: true, again: true } });
    expect(names.filter((n) => n === "$patch:new-path")).toHaveLength(1);
    expect(names).toContain("$patch:later");
    expect(names).not.toContain("old");
  });

  it("is false replaying a journal recorded before the patch, true where the replay reaches new ground", async () => {
    const { result, names } = await deploy("v1", "v2");
    // Before the sleep the journal holds "old": the old branch again. After it, new ground.
    expect(result).toMatchObject({ ok: true, value: { first: "old", later: true, again: false } });
    expect(names).not.toContain("$patch:new-path");
    expect(names.slice(0, 2)).toEqual(["old", "nap"]);
  });

  it("stays true for an execution that recorded it, across evictions and replays", async () => {
    const { id, stub } = executionStub("patch-stable");
    const run = await client().start(patchy, { phase: "v2" }, { id });
    await eventually(
      () => run.status(),
      (s) => s.status === "sleeping",
    );
    await evictDurableObject(stub);
    await advance(stub, 60_000);
    expect(await run.result({ timeout: "5s" })).toMatchObject({
      ok: true,
      value: { first: "new", later: true, again: true },
    });
  });

  it("phase 2: deprecatePatch takes the marker of executions that recorded it", async () => {
    const { result, names } = await deploy("v2", "v3");
    expect(result).toMatchObject({ ok: true, value: { first: "new", later: null, again: null } });
    expect(names.slice(0, 3)).toEqual(["$patch:new-path", "new", "nap"]);
  });

  it("phase 2: a new execution records no marker, so phase 3 can remove the call", async () => {
    const { result, names } = await deploy("v3", "v4");
    expect(result).toMatchObject({ ok: true, value: { first: "new", later: null, again: null } });
    expect(names.some((n) => n.startsWith("$patch:"))).toBe(false);
  });

  it("phase 3 too early (a marker still in the journal) fails with NONDETERMINISM naming the patch", async () => {
    const { result } = await deploy("v2", "v4");
    expect(result).toMatchObject({ ok: false, error: { code: "NONDETERMINISM" } });
    if (!result.ok) expect(result.error.message).toMatch(/patch marker.*"new-path"/);
  });

  it("refuses a bad patch id with INVALID_ARGUMENT", async () => {
    const { id } = executionStub("patch-bad");
    const run = await client().start(patchy, { phase: "bad-id" }, { id });
    const result = await run.result({ timeout: "5s" });
    expect(result).toMatchObject({ ok: false, error: { code: "INVALID_ARGUMENT" } });
    if (!result.ok) expect(result.error.message).toMatch(/step\.patched\(\) id/);
  });
});
