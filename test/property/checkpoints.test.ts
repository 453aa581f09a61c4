/**
 * Bad input, property-based (issue 17): every public RPC method of the Checkpoint actor
 * (TestCheckpoints), against a scope with real state: two versions of a checkpoint, one with a
 * TTL, and a stored resume token for a waiting execution.
 */
import { env } from "cloudflare:test";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { eventually, executionStub, uniqueName } from "../helpers.ts";
import type { TestCheckpoints, TestExecutions } from "../worker.ts";
import {
  anything,
  argsOf,
  checkRefusals,
  durationLike,
  idLike,
  intLike,
  optionsLike,
  quiet,
  weirdString,
} from "./arbitraries.ts";

interface SeededScope {
  scope: string;
  stub: DurableObjectStub<TestCheckpoints>;
  hash: string;
  execution: DurableObjectStub<TestExecutions>;
  executionId: string;
}

const hex64 = () =>
  [...crypto.getRandomValues(new Uint8Array(32))]
    .map((b) => b.toString(16).padStart(2, "0"))
    .join("");

/** A scope with "state" at version 2, "temp" with a TTL, and a resume token. */
async function seededScope(): Promise<SeededScope> {
  const scope = uniqueName("prop-scope");
  const stub = env.Checkpoints.getByName(scope);
  await stub.save("state", { items: new Map([["sku", 1]]), at: new Date(0) });
  await stub.save("state", { items: new Map([["sku", 2]]), big: 10n ** 20n });
  await stub.save("temp", "short-lived", { ttl: "1 hour", keep: 3 });
  const { id: executionId, stub: execution } = executionStub("prop-token-target");
  await execution.start("eventful", { n: 1 }, { id: executionId });
  await eventually(
    () => execution.status(),
    (s) => s.status === "waiting",
  );
  const hash = hex64();
  await stub.storeToken(hash, {
    executionId,
    event: "go",
    binding: "TestExecutions",
    data: { note: "seed" },
    ttlMs: 3_600_000,
  });
  await quiet([stub, execution]);
  return { scope, stub, hash, execution, executionId };
}

const REAL_HASH = "$HASH";
const REAL_EXECUTION = "$EXECUTION";

const checkpointName = idLike("state", "temp", "missing");
const saveOptions = optionsLike({
  expectedVersion: intLike,
  ttl: durationLike,
  keep: intLike,
});
const loadOptions = optionsLike({ version: intLike });
const historyOptions = optionsLike({ fromVersion: intLike, limit: intLike });

/** Puts the seeded token's hash and execution id where the markers are. */
function real(arg: unknown, s: SeededScope): unknown {
  if (arg === REAL_HASH) return s.hash;
  if (typeof arg !== "object" || arg === null || Array.isArray(arg)) return arg;
  const o = { ...(arg as Record<string, unknown>) };
  if (o.executionId === REAL_EXECUTION) o.executionId = s.executionId;
  return o;
}

const hashLike = fc.oneof(
  fc.constant(REAL_HASH),
  fc.stringMatching(/^[0-9a-f]{64}$/),
  fc.stringMatching(/^[0-9A-Fa-f]{63,65}$/),
  weirdString,
  anything,
);

const cases: Array<{ name: string; args: fc.Arbitrary<unknown[]>; numRuns?: number }> = [
  { name: "save", args: argsOf([checkpointName, anything, saveOptions]), numRuns: 50 },
  { name: "load", args: argsOf([checkpointName, loadOptions]) },
  { name: "list", args: argsOf([anything]), numRuns: 10 },
  { name: "history", args: argsOf([checkpointName, historyOptions]) },
  { name: "delete", args: argsOf([checkpointName]) },
  {
    name: "storeToken",
    args: argsOf([
      hashLike,
      optionsLike({
        executionId: idLike(REAL_EXECUTION),
        event: idLike("go"),
        binding: idLike("TestExecutions", "NoSuchBinding", "TEST_TOKEN"),
        data: anything,
        ttlMs: intLike,
      }),
    ]),
    numRuns: 50,
  },
  {
    name: "redeemToken",
    args: argsOf([hashLike, anything, optionsLike({ executionId: idLike(REAL_EXECUTION) })]),
    numRuns: 50,
  },
];

describe("property: the Checkpoint actor's RPC methods refuse bad input cleanly", () => {
  for (const c of cases) {
    it(c.name, async () => {
      const stats = await checkRefusals<SeededScope>({
        name: `checkpoint.${c.name}`,
        seed: seededScope,
        objects: (s) => [s.stub, s.execution],
        call: (s, args) =>
          (s.stub as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[c.name]?.(
            ...args.map((a) => real(a, s)),
          ) ?? Promise.reject(new Error(`no method ${c.name}`)),
        args: c.args,
        numRuns: c.numRuns ?? 30,
      });
      if ((c.numRuns ?? 30) >= 20) expect(stats.refused, JSON.stringify(stats)).toBeGreaterThan(0);
    });
  }
});
