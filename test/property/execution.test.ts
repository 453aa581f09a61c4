/**
 * Bad input, property-based (issue 17): every public RPC method of the Execution actor
 * (TestExecutions), with arbitrary and near-valid arguments, against executions with real state
 * (one waiting for an event, one completed, one tracked, and an id never started).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { eventually, executionStub } from "../helpers.ts";
import type { TestExecutions } from "../worker.ts";
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

type Stub = DurableObjectStub<TestExecutions>;
interface Seeded {
  id: string;
  stub: Stub;
}

/** An `eventful` execution waiting for its first "go" event. */
async function waiting(): Promise<Seeded> {
  const { id, stub } = executionStub("prop-wait");
  await stub.start("eventful", { n: 1 }, { id });
  await eventually(
    () => stub.status(),
    (s) => s.status === "waiting",
  );
  await quiet([stub]);
  return { id, stub };
}

/** A completed `validated` execution (journal, input and result stored). */
async function completed(): Promise<Seeded> {
  const { id, stub } = executionStub("prop-done");
  await stub.start("validated", { email: "ada@example.com", count: 2 }, { id });
  await stub.result({ timeout: "5s" });
  await quiet([stub]);
  return { id, stub };
}

/** A tracked execution with one step reported. */
async function tracked(): Promise<Seeded> {
  const { id, stub } = executionStub("prop-tracked");
  await stub.track("import", { id, totalSteps: 3 });
  await stub.progress("fetch", { index: 0, output: { rows: 10 } });
  await quiet([stub]);
  return { id, stub };
}

/** A stub of an id that was never started. */
async function never(): Promise<Seeded> {
  return executionStub("prop-never");
}

const objects = (s: Seeded) => [s.stub];
/** A result wait inside the actor: the call was accepted and waits for the end. */
const waitsForResult = async (s: Seeded) => (await s.stub.resultWaits()) > 0;

// Near-valid arguments per parameter.
const workflowName = idLike("eventful", "validated", "greet", "no-such-workflow");
const input = fc.oneof(
  fc.constant({ n: 1 }),
  fc.record({ n: intLike }, { requiredKeys: [], noNullPrototype: true }),
  fc.record({ email: weirdString, count: intLike }, { requiredKeys: [], noNullPrototype: true }),
  anything,
);
const startOptions = () =>
  optionsLike({
    id: fc.oneof(fc.constant("$SELF"), idLike()),
    retention: durationLike,
    exclusive: fc.oneof(fc.boolean(), anything),
    timeout: durationLike,
  });
const eventType = idLike("go", "late", "approve", "a.b:c/d-e_f");
const historyOptions = optionsLike({
  since: intLike,
  seen: fc.oneof(fc.array(idLike("k"), { maxLength: 3 }), anything),
  wait: durationLike,
});

/** Replaces the marker "$SELF" in an options argument's `id` with the seeded execution's id. */
function withSelf(arg: unknown, id: string): unknown {
  if (typeof arg === "object" && arg !== null && (arg as { id?: unknown }).id === "$SELF") {
    return { ...arg, id };
  }
  return arg;
}

type Call = (stub: Stub, args: unknown[]) => Promise<unknown>;
/** Calls `stub[name](...args)`: the point is to call with any arguments. */
const method =
  (name: string): Call =>
  (stub, args) =>
    (stub as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[name]?.(...args) ??
    Promise.reject(new Error(`no method ${name}`));

const cases: Array<{
  name: string;
  args: fc.Arbitrary<unknown[]>;
  on: Array<() => Promise<Seeded>>;
  pending?: boolean;
  numRuns?: number;
  /** False when every argument is accepted (any value is a valid result). */
  refuses?: boolean;
}> = [
  {
    name: "start",
    args: argsOf([workflowName, input, startOptions()]),
    on: [waiting, completed],
  },
  {
    name: "execute",
    args: argsOf([workflowName, input, startOptions()]),
    on: [waiting],
    pending: true,
  },
  {
    name: "startChild",
    args: argsOf([
      workflowName,
      input,
      optionsLike({
        id: fc.oneof(fc.constant("$SELF"), idLike()),
        parent: optionsLike({ id: idLike("p"), seq: intLike, binding: idLike("TestExecutions") }),
      }),
    ]),
    on: [waiting],
  },
  {
    name: "childDone",
    args: argsOf([
      intLike,
      idLike("child"),
      optionsLike({
        ok: fc.oneof(fc.boolean(), anything),
        id: idLike("child"),
        value: anything,
        error: optionsLike({ message: fc.oneof(weirdString, anything), code: anything }),
      }),
    ]),
    on: [waiting, never],
  },
  { name: "exportCheckpoint", args: argsOf([idLike("cp", "first")]), on: [waiting, never] },
  { name: "exportJournal", args: argsOf([anything]), on: [completed, never], numRuns: 10 },
  {
    name: "importFork",
    args: argsOf([
      optionsLike({
        workflow: workflowName,
        version: intLike,
        input: fc.oneof(fc.uint8Array({ maxLength: 8 }), anything),
        steps: fc.oneof(
          fc.array(
            // Step entries of any shape: partial or whole records, and things that are not one.
            fc.oneof(
              {
                weight: 3,
                arbitrary: fc.record(
                  {
                    seq: intLike,
                    name: idLike("s"),
                    occurrence: intLike,
                    kind: fc.oneof(fc.constantFrom("do", "sleep", "wait"), anything),
                    status: fc.oneof(fc.constantFrom("completed", "failed", "cancelled"), anything),
                    attempts: intLike,
                    startedAt: intLike,
                    endedAt: fc.oneof(intLike, fc.constant(null)),
                    output: fc.oneof(fc.uint8Array({ maxLength: 8 }), fc.constant(null), anything),
                    error: fc.oneof(fc.constant(null), anything),
                  },
                  { requiredKeys: [], noNullPrototype: true },
                ),
              },
              { weight: 1, arbitrary: fc.constantFrom(undefined, null, 0, 7, "s0", [], true) },
              { weight: 1, arbitrary: anything },
            ),
            { maxLength: 3 },
          ),
          anything.filter((v) => !Array.isArray(v)),
        ),
      }),
      optionsLike({ id: fc.oneof(fc.constant("$SELF"), idLike()), from: idLike("cp") }),
    ]),
    on: [waiting],
    numRuns: 100,
  },
  { name: "status", args: argsOf([anything]), on: [waiting, never], numRuns: 10 },
  { name: "describe", args: argsOf([anything]), on: [completed, never], numRuns: 10 },
  {
    name: "result",
    args: argsOf([optionsLike({ timeout: durationLike })]),
    on: [waiting, completed, never],
    pending: true,
  },
  {
    name: "journal",
    args: argsOf([optionsLike({ from: intLike, limit: intLike })]),
    on: [completed, never],
  },
  {
    name: "sendEvent",
    args: argsOf([eventType, anything, optionsLike({ dedupeKey: idLike("dedupe-1") })]),
    on: [waiting, completed, tracked, never],
  },
  { name: "pause", args: argsOf([anything]), on: [waiting, tracked, never], numRuns: 10 },
  { name: "resume", args: argsOf([anything]), on: [waiting, tracked, never], numRuns: 10 },
  {
    name: "cancel",
    args: argsOf([optionsLike({ compensate: fc.oneof(fc.boolean(), anything), reason: anything })]),
    on: [waiting, completed, never],
    numRuns: 20,
  },
  {
    name: "restart",
    args: argsOf([
      optionsLike({
        from: fc.oneof(
          idLike("first", "second"),
          optionsLike({ name: idLike("first"), occurrence: intLike, type: anything }),
        ),
      }),
    ]),
    on: [completed, waiting, never],
    numRuns: 20,
  },
  { name: "delete", args: argsOf([anything]), on: [completed, never], numRuns: 8 },
  {
    name: "history",
    args: argsOf([historyOptions]),
    on: [completed, never],
  },
  { name: "instanceStatus", args: argsOf([anything]), on: [completed, never], numRuns: 10 },
  {
    name: "track",
    args: argsOf([
      idLike("import", "other"),
      optionsLike({
        id: fc.oneof(fc.constant("$SELF"), idLike()),
        totalSteps: intLike,
        retention: durationLike,
      }),
    ]),
    on: [tracked, waiting],
  },
  {
    name: "progress",
    args: argsOf([idLike("fetch", "parse"), optionsLike({ index: intLike, output: anything })]),
    on: [tracked, waiting, never],
  },
  {
    name: "complete",
    args: argsOf([anything]),
    refuses: false,
    on: [tracked, waiting, never],
    numRuns: 20,
  },
  {
    name: "fail",
    args: argsOf([
      fc.oneof(
        weirdString,
        optionsLike({ message: fc.oneof(weirdString, anything), code: anything }),
      ),
    ]),
    on: [tracked, waiting, never],
    numRuns: 20,
  },
];

describe("property: the Execution actor's RPC methods refuse bad input cleanly", () => {
  for (const c of cases) {
    for (const seed of c.on) {
      it(`${c.name} on ${seed.name === "never" ? "a never-started id" : `a ${seed.name} execution`}`, async () => {
        const stats = await checkRefusals<Seeded>({
          name: `${c.name} (${seed.name})`,
          seed,
          objects,
          call: (s, args) =>
            method(c.name)(
              s.stub,
              args.map((a) => withSelf(a, s.id)),
            ),
          args: c.args,
          ...(c.pending ? { pending: waitsForResult } : {}),
          numRuns: c.numRuns ?? 30,
        });
        // Not vacuous: arbitrary arguments got some refusals (zero-argument methods aside).
        if ((c.numRuns ?? 30) >= 20 && c.refuses !== false)
          expect(stats.refused, JSON.stringify(stats)).toBeGreaterThan(0);
      });
    }
  }
});
