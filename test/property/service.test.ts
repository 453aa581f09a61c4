/**
 * Bad input, property-based (issue 17): `BatonService` (the `Platform` entrypoint, reached as
 * another Worker reaches it, through its service binding env.PLATFORM): its factories
 * (`execution`, `lock`, `checkpointScope`, `indexShard`) and every method of the refs they
 * return, with arbitrary arguments, against objects with real state.
 */
import { env } from "cloudflare:test";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { uniqueName } from "../helpers.ts";
import {
  acquireOptions,
  anything,
  argsOf,
  callMethod,
  checkRefusals,
  durationLike,
  heldLock,
  idLike,
  intLike,
  leaseLike,
  optionsLike,
  queued,
  quiet,
  realLock,
  waiterLike,
  waitingExecution,
  weirdString,
  withSelf,
} from "./arbitraries.ts";

const workflowName = idLike("eventful", "validated", "no-such-workflow");
const input = fc.oneof(fc.constant({ n: 1 }), anything);
const startOptions = optionsLike({
  id: fc.oneof(fc.constant("$SELF"), idLike()),
  retention: durationLike,
  timeout: durationLike,
});

/** The factory argument: the seeded object's name ("$SELF") or any other value. */
const factoryArg = fc.oneof(
  { weight: 2, arbitrary: fc.constant("$SELF") },
  { weight: 3, arbitrary: idLike() },
);

const executionMethods: Record<string, fc.Arbitrary<unknown[]>> = {
  start: argsOf([workflowName, input, startOptions]),
  execute: argsOf([workflowName, input, startOptions]),
  status: argsOf([anything]),
  result: argsOf([optionsLike({ timeout: durationLike })]),
  journal: argsOf([optionsLike({ from: intLike, limit: intLike })]),
  sendEvent: argsOf([idLike("go", "late"), anything, optionsLike({ dedupeKey: idLike("k") })]),
  pause: argsOf([anything]),
  resume: argsOf([anything]),
  cancel: argsOf([anything]),
  restart: argsOf([anything]),
  exportCheckpoint: argsOf([idLike("cp")]),
  importFork: argsOf([
    optionsLike({ workflow: workflowName, version: intLike, steps: fc.constant([]) }),
    optionsLike({ id: fc.oneof(fc.constant("$SELF"), idLike()), from: idLike("cp") }),
  ]),
  track: argsOf([idLike("job"), optionsLike({ id: idLike("$SELF"), totalSteps: intLike })]),
  progress: argsOf([idLike("step"), optionsLike({ index: intLike, output: anything })]),
  complete: argsOf([anything]),
  fail: argsOf([fc.oneof(weirdString, optionsLike({ message: weirdString, code: anything }))]),
};

const lockMethods: Record<string, fc.Arbitrary<unknown[]>> = {
  acquire: argsOf([acquireOptions]),
  renew: argsOf([leaseLike, durationLike]),
  release: argsOf([leaseLike]),
  status: argsOf([anything]),
  isLocked: argsOf([anything]),
  abandon: argsOf([waiterLike, optionsLike({ release: anything })]),
};

const checkpointMethods: Record<string, fc.Arbitrary<unknown[]>> = {
  save: argsOf([
    idLike("state"),
    anything,
    optionsLike({ expectedVersion: intLike, ttl: durationLike, keep: intLike }),
  ]),
  load: argsOf([idLike("state"), optionsLike({ version: intLike })]),
  list: argsOf([anything]),
  history: argsOf([idLike("state"), optionsLike({ fromVersion: intLike, limit: intLike })]),
  delete: argsOf([idLike("state")]),
};

const indexMethods: Record<string, fc.Arbitrary<unknown[]>> = {
  list: argsOf([
    optionsLike({
      workflow: idLike("greet"),
      status: anything,
      limit: intLike,
      cursor: weirdString,
    }),
  ]),
  get: argsOf([idLike("x")]),
};

/** A factory call plus a method call on what it returns, as one property. */
const withFactory = (methods: Record<string, fc.Arbitrary<unknown[]>>, method: string) =>
  fc.tuple(factoryArg, methods[method] as fc.Arbitrary<unknown[]>).map(([f, a]) => [f, ...a]);

/**
 * `env.PLATFORM[factory](arg)`: a ref to call a method on (pipelined). A factory that refuses its
 * argument rejects both the ref and the method call on it; the method call's rejection is the one
 * checked, so the ref's is marked handled here.
 */
function ref(factory: string, arg: unknown): unknown {
  const made = (env.PLATFORM as unknown as Record<string, (arg: unknown) => unknown>)[factory]?.(
    arg,
  );
  (made as Promise<unknown>).then(
    () => undefined,
    () => undefined,
  );
  return made;
}

describe("property: BatonService refuses bad input cleanly (through its service binding)", () => {
  for (const method of Object.keys(executionMethods)) {
    it(`execution(id).${method}`, async () => {
      await checkRefusals({
        name: `service.execution.${method}`,
        seed: () => waitingExecution("prop-svc"),
        objects: (s) => [s.stub],
        call: (s, [f, ...args]) =>
          callMethod(
            ref("execution", withSelf(f, s.id)),
            method,
            args.map((a) => withSelf(a, s.id)),
          ),
        pending: async (s) => (await s.stub.resultWaits()) > 0,
        args: withFactory(executionMethods, method),
        numRuns: 12,
      });
    });
  }

  for (const method of Object.keys(lockMethods)) {
    it(`lock(name).${method}`, async () => {
      await checkRefusals({
        name: `service.lock.${method}`,
        seed: heldLock,
        objects: (s) => [s.stub],
        call: (s, [f, ...args]) =>
          callMethod(
            ref("lock", withSelf(f, s.name)),
            method,
            args.map((a) => realLock(a, s)),
          ),
        pending: async (s) => (await queued(s.stub)) > 1,
        args: withFactory(lockMethods, method),
        numRuns: 15,
      });
    });
  }

  for (const method of Object.keys(checkpointMethods)) {
    it(`checkpointScope(scope).${method}`, async () => {
      await checkRefusals({
        name: `service.checkpointScope.${method}`,
        seed: async () => {
          const scope = uniqueName("prop-svc-scope");
          const stub = env.Checkpoints.getByName(scope);
          await stub.save("state", { v: 1 });
          await stub.save("state", { v: 2 }, { ttl: "1 hour" });
          await quiet([stub]);
          return { scope, stub };
        },
        objects: (s) => [s.stub],
        call: (s, [f, ...args]) =>
          callMethod(ref("checkpointScope", withSelf(f, s.scope)), method, args),
        args: withFactory(checkpointMethods, method),
        numRuns: 15,
      });
    });
  }

  for (const method of Object.keys(indexMethods)) {
    it(`indexShard(name).${method}`, async () => {
      const stats = await checkRefusals({
        name: `service.indexShard.${method}`,
        seed: async () => {
          const shard = uniqueName("prop-svc-index");
          const stub = env.ExecutionIndex.getByName(shard);
          const e = {
            id: "a",
            workflow: "greet",
            status: "running" as const,
            mode: "workflow" as const,
          };
          await stub.apply([
            {
              id: "a",
              version: 1,
              source: "s",
              execution: { ...e, createdAt: 1, updatedAt: 1, endedAt: null },
            },
          ]);
          await quiet([stub]);
          return { shard, stub };
        },
        objects: (s) => [s.stub],
        call: (s, [f, ...args]) =>
          callMethod(ref("indexShard", withSelf(f, s.shard)), method, args),
        args: withFactory(indexMethods, method),
        numRuns: 20,
      });
      expect(stats.refused).toBeGreaterThan(0);
    });
  }
});
