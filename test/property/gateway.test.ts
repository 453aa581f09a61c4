/**
 * Bad input, property-based (issue 17): every method of the Cap'n Web gateway (testGateway,
 * reached through SELF over a WebSocket session, as a browser or Node client reaches it), with
 * arbitrary arguments that Cap'n Web can carry, against objects with real state.
 */
import { env, SELF } from "cloudflare:test";
import { newWebSocketRpcSession, type RpcStub } from "capnweb";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { uniqueName } from "../helpers.ts";
import type { TestApi } from "../worker.ts";
import {
  argsOf,
  callMethod,
  capnwebAnything,
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

/** True for a value Cap'n Web can serialize (no Map, Set, boxed value, hole or null prototype). */
function carried(value: unknown): boolean {
  if (
    value === null ||
    ["string", "number", "boolean", "bigint", "undefined"].includes(typeof value)
  )
    return true;
  if (typeof value === "function") return true;
  if (value instanceof Date || value instanceof Uint8Array) return true;
  if (Array.isArray(value)) {
    return (
      Object.getPrototypeOf(value) === Array.prototype &&
      value.every((v, i) => i in value && carried(v))
    );
  }
  if (typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.values(value as object).every(carried);
  }
  return false;
}

const any = capnwebAnything;
const anyArgs = (args: fc.Arbitrary<unknown>[]) => argsOf(args, any).filter((a) => carried(a));
/** Ids that can never name a new execution (so a start cannot begin a stray run). */
const badId = fc.oneof(
  fc.constantFrom("", "a\uD800", "a\u0000b", "x".repeat(257), 42, null, undefined),
  any.filter((v) => typeof v !== "string"),
);
const self = fc.oneof(
  { weight: 2, arbitrary: fc.constant("$SELF") },
  { weight: 3, arbitrary: idLike() },
);

let api: RpcStub<TestApi>;
beforeAll(async () => {
  const response = await SELF.fetch("https://baton.test/test/rpc", {
    headers: { Upgrade: "websocket", Authorization: "Bearer test-token" },
  });
  expect(response.status).toBe(101);
  const ws = response.webSocket as WebSocket;
  ws.accept();
  api = newWebSocketRpcSession<TestApi>(ws);
});
afterAll(() => api?.[Symbol.dispose]());

const gw = () => api as unknown as Record<string, unknown>;

const executionCalls: Record<string, fc.Arbitrary<unknown[]>> = {
  status: anyArgs([self]),
  result: anyArgs([self, optionsLike({ timeout: durationLike }, any)]),
  sendEvent: anyArgs([
    self,
    idLike("go", "late"),
    any,
    optionsLike({ dedupeKey: idLike("k") }, any),
  ]),
  journal: anyArgs([self, optionsLike({ from: intLike, limit: intLike }, any)]),
  pause: anyArgs([self]),
  resume: anyArgs([self]),
  cancel: anyArgs([self]),
  restart: anyArgs([self]),
  subscribe: anyArgs([
    self,
    fc.oneof(
      fc.constant(() => {}),
      any,
    ),
  ]),
};

const workflowCalls: Record<string, fc.Arbitrary<unknown[]>> = {
  start: anyArgs([
    fc.oneof(fc.constant({ n: 1 }), any),
    optionsLike({ id: fc.oneof(fc.constant("$SELF"), badId), retention: durationLike }, any),
  ]),
  execute: anyArgs([
    fc.oneof(fc.constant({ n: 1 }), any),
    optionsLike({ id: fc.oneof(fc.constant("$SELF"), badId), timeout: durationLike }, any),
  ]),
  result: anyArgs([self, optionsLike({ timeout: durationLike }, any)]),
};

describe("property: the gateway's methods refuse bad input cleanly (over Cap'n Web)", () => {
  for (const [method, args] of Object.entries(executionCalls)) {
    it(method, async () => {
      await checkRefusals({
        name: `gateway.${method}`,
        seed: () => waitingExecution("prop-gw"),
        objects: (s) => [s.stub],
        call: async (s, a) => {
          const out = await callMethod(
            gw(),
            method,
            a.map((x) => withSelf(x, s.id)),
          );
          // A subscription that opened: close it (it holds a place of the session's budget).
          if (method === "subscribe") await callMethod(out, "close", []).catch(() => undefined);
          return out;
        },
        pending: async (s) => (await s.stub.resultWaits()) > 0,
        args,
        numRuns: 15,
        rpc: "capnweb",
      });
    });
  }

  for (const [method, args] of Object.entries(workflowCalls)) {
    for (const workflow of ["eventful", "validated"]) {
      it(`workflows.${workflow}.${method}`, async () => {
        await checkRefusals({
          name: `gateway.workflows.${workflow}.${method}`,
          seed: () => waitingExecution("prop-gw-wf"),
          objects: (s) => [s.stub],
          call: (s, a) =>
            callMethod(
              (gw().workflows as Record<string, unknown>)[workflow],
              method,
              a.map((x) => withSelf(x, s.id)),
            ),
          pending: async (s) => (await s.stub.resultWaits()) > 0,
          args,
          numRuns: 15,
          rpc: "capnweb",
        });
      });
    }
  }

  it("list", async () => {
    const stats = await checkRefusals({
      name: "gateway.list",
      seed: async () => ({}),
      objects: () => [],
      call: (_s, a) => callMethod(gw(), "list", a),
      args: anyArgs([
        optionsLike(
          {
            workflow: fc.oneof(idLike("greet"), fc.array(idLike("greet"), { maxLength: 2 })),
            idPrefix: idLike("a"),
            status: fc.oneof(fc.constantFrom("running", "nope"), any),
            startedAfter: fc.oneof(intLike, fc.date()),
            limit: intLike,
            cursor: fc.oneof(fc.base64String({ maxLength: 20 }), weirdString),
          },
          any,
        ),
      ]),
      numRuns: 30,
      rpc: "capnweb",
    });
    expect(stats.refused).toBeGreaterThan(0);
  });

  const lockCalls: Record<string, fc.Arbitrary<unknown[]>> = {
    acquire: anyArgs([
      self,
      optionsLike(
        {
          owner: idLike("other"),
          ttl: durationLike,
          wait: durationLike,
          permits: intLike,
          waiterId: waiterLike,
        },
        any,
      ),
    ]),
    renew: anyArgs([self, leaseLike, durationLike]),
    release: anyArgs([self, leaseLike]),
    status: anyArgs([self]),
    isLocked: anyArgs([self]),
    abandon: anyArgs([self, waiterLike, optionsLike({ release: any }, any)]),
  };
  for (const [method, args] of Object.entries(lockCalls)) {
    it(`locks.${method}`, async () => {
      await checkRefusals({
        name: `gateway.locks.${method}`,
        seed: heldLock,
        objects: (s) => [s.stub],
        call: (s, [name, ...rest]) =>
          callMethod(gw().locks, method, [
            withSelf(name, s.name),
            ...rest.map((x) => realLock(x, s)),
          ]),
        pending: async (s) => (await queued(s.stub)) > 1,
        args,
        numRuns: 15,
        rpc: "capnweb",
      });
    });
  }

  const checkpointCalls: Record<string, fc.Arbitrary<unknown[]>> = {
    save: anyArgs([
      self,
      idLike("state"),
      any,
      optionsLike({ expectedVersion: intLike, keep: intLike, ttl: durationLike }, any),
    ]),
    load: anyArgs([self, idLike("state"), optionsLike({ version: intLike }, any)]),
    list: anyArgs([self]),
    history: anyArgs([
      self,
      idLike("state"),
      optionsLike({ fromVersion: intLike, limit: intLike }, any),
    ]),
    delete: anyArgs([self, idLike("state")]),
  };
  for (const [method, args] of Object.entries(checkpointCalls)) {
    it(`checkpoints.${method}`, async () => {
      await checkRefusals({
        name: `gateway.checkpoints.${method}`,
        seed: async () => {
          const scope = uniqueName("prop-gw-scope");
          const stub = env.Checkpoints.getByName(scope);
          await stub.save("state", { v: 1 });
          await stub.save("state", { v: 2 }, { ttl: "1 hour" });
          await quiet([stub]);
          return { scope, stub };
        },
        objects: (s) => [s.stub],
        call: (s, [scope, ...rest]) =>
          callMethod(gw().checkpoints, method, [withSelf(scope, s.scope), ...rest]),
        args,
        numRuns: 15,
        rpc: "capnweb",
      });
    });
  }
});
