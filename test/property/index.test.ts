/**
 * Bad input, property-based (issue 17): every public RPC method of the execution index
 * (TestIndex), against a shard of its own with real rows (a running, a completed and a deleted
 * execution).
 */
import { env } from "cloudflare:test";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { IndexUpdate } from "../../src/index.ts";
import { uniqueName } from "../helpers.ts";
import type { TestIndex } from "../worker.ts";
import {
  anything,
  argsOf,
  checkRefusals,
  idLike,
  intLike,
  optionsLike,
  quiet,
  weirdNumber,
  weirdString,
} from "./arbitraries.ts";

interface SeededIndex {
  shard: string;
  stub: DurableObjectStub<TestIndex>;
}

const SOURCE = "source-object-1";

function update(id: string, status: "running" | "completed", version: number): IndexUpdate {
  return {
    id,
    version,
    source: SOURCE,
    execution: {
      id,
      workflow: "greet",
      status,
      mode: "workflow",
      createdAt: 1_700_000_000_000 + version,
      updatedAt: 1_700_000_000_000 + version,
      endedAt: status === "completed" ? 1_700_000_000_500 : null,
    },
  };
}

/** An index shard with a running, a completed and a deleted (tombstoned) execution. */
async function seededIndex(): Promise<SeededIndex> {
  const shard = uniqueName("prop-index");
  const stub = env.ExecutionIndex.getByName(shard);
  await stub.apply([update("run-1", "running", 1), update("done-1", "completed", 2)]);
  await stub.apply([update("gone-1", "completed", 1)]);
  await stub.apply([{ id: "gone-1", version: 2, execution: null, source: SOURCE }]);
  await quiet([stub]);
  return { shard, stub };
}

const statusLike = fc.oneof(
  fc.constantFrom("running", "completed", "waiting", "RUNNING", ""),
  fc.array(fc.constantFrom("running", "failed", "nope"), { maxLength: 3 }),
  anything,
);
const timeLike = fc.oneof(weirdNumber, fc.date(), anything);
const queryLike = optionsLike({
  workflow: fc.oneof(idLike("greet"), fc.array(idLike("greet"), { maxLength: 3 })),
  idPrefix: idLike("run", "done"),
  status: statusLike,
  startedAfter: timeLike,
  startedBefore: timeLike,
  limit: intLike,
  cursor: fc.oneof(
    fc.base64String({ maxLength: 40 }),
    fc.constantFrom("W10", "WzEsMl0", "WzEsImEiXQ", "!!", "x".repeat(5000)),
    weirdString,
    anything,
  ),
});
const updateLike = fc.oneof(
  fc.record(
    {
      id: idLike("run-1", "done-1", "new-1"),
      version: intLike,
      source: idLike(SOURCE, "other-source"),
      execution: fc.oneof(
        fc.constant(null),
        fc.record(
          {
            id: idLike("run-1", "new-1"),
            workflow: fc.oneof(idLike("greet"), weirdString),
            status: statusLike,
            mode: fc.oneof(fc.constantFrom("workflow", "tracked"), anything),
            createdAt: intLike,
            updatedAt: intLike,
            endedAt: fc.oneof(fc.constant(null), intLike),
          },
          { requiredKeys: [], noNullPrototype: true },
        ),
        anything,
      ),
    },
    { requiredKeys: [], noNullPrototype: true },
  ),
  anything,
);

const cases: Array<{ name: string; args: fc.Arbitrary<unknown[]>; numRuns?: number }> = [
  {
    name: "apply",
    args: argsOf([fc.oneof(fc.array(updateLike, { maxLength: 3 }), anything)]),
    numRuns: 50,
  },
  { name: "list", args: argsOf([queryLike]), numRuns: 50 },
  { name: "counts", args: argsOf([queryLike]) },
  { name: "get", args: argsOf([idLike("run-1", "gone-1")]) },
];

describe("property: the execution index's RPC methods refuse bad input cleanly", () => {
  for (const c of cases) {
    it(c.name, async () => {
      const stats = await checkRefusals<SeededIndex>({
        name: `index.${c.name}`,
        seed: seededIndex,
        objects: (s) => [s.stub],
        call: (s, args) =>
          (s.stub as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[c.name]?.(
            ...args,
          ) ?? Promise.reject(new Error(`no method ${c.name}`)),
        args: c.args,
        numRuns: c.numRuns ?? 30,
      });
      expect(stats.refused, JSON.stringify(stats)).toBeGreaterThan(0);
    });
  }

  it("refuses a page limit and a cursor it cannot use", async () => {
    const { stub } = await seededIndex();
    for (const limit of [0, 1001, 1.5, Number.NaN]) {
      const error = await stub.list({ limit }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect((error as { code?: string })?.code).toBe("INVALID_ARGUMENT");
    }
    expect((await stub.list({ limit: 1 })).executions).toHaveLength(1);
  });
});
