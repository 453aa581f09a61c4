/**
 * Shared pieces of the property-based bad-input tests (issue 17): arbitraries of wrong and
 * near-valid arguments, a dump of an object's SQLite tables, and the property itself — a call
 * either succeeds or is refused with a documented `BatonError` code, and a refused call leaves
 * every table of the objects it reaches as it was.
 */
import { env, runInDurableObject } from "cloudflare:test";
import fc from "fast-check";
import { expect } from "vitest";
// @ts-expect-error -- a Vite raw import: the text of the guide, parsed below.
import errorsGuide from "../../docs/errors.md?raw";
import type { Lease } from "../../src/index.ts";
import { eventually, executionStub, uniqueName } from "../helpers.ts";
import type { TestExecutions, TestLocks } from "../worker.ts";

// ---- documented error codes ----------------------------------------------------------------------

/** The codes of the "Error codes" table of docs/errors.md (the stable, documented ones). */
export const DOCUMENTED_CODES: ReadonlySet<string> = new Set(
  [...String(errorsGuide).matchAll(/^\|\s*`([A-Z][A-Z_]+)`\s*\|/gm)].map((m) => m[1] as string),
);

/**
 * Asserts `error` is a Baton error with a documented code: over native RPC its `name` (or its
 * `baton` mark) says so too; over Cap'n Web only the own properties (`code`) are kept.
 */
export function expectDocumentedError(
  error: unknown,
  context: string,
  rpc: "native" | "capnweb" = "native",
): void {
  const e = error as { name?: unknown; message?: unknown; code?: unknown; baton?: unknown };
  const describe = `${context}: got ${String(e?.name)} (code ${String(e?.code)}): ${String(e?.message)}`;
  expect(typeof error === "object" && error !== null, describe).toBe(true);
  expect(typeof e.code === "string" && DOCUMENTED_CODES.has(e.code), describe).toBe(true);
  expect(typeof e.message === "string" && e.message.length > 0, describe).toBe(true);
  if (rpc === "native") expect(e.name === "BatonError" || e.baton === true, describe).toBe(true);
}

// ---- arbitraries ---------------------------------------------------------------------------------

/** Object keys (an own "__proto__" key cannot cross RPC: the caller's side refuses it). */
const key = fc.string({ unit: "binary", maxLength: 8 }).filter((k) => k !== "__proto__");

/** Any value native RPC can carry: nested objects, Dates, Maps, Sets, BigInts, typed arrays. */
export const anything: fc.Arbitrary<unknown> = fc.anything({
  key,
  maxDepth: 3,
  maxKeys: 5,
  withBigInt: true,
  withDate: true,
  withMap: true,
  withSet: true,
  withTypedArray: true,
  withSparseArray: true,
  withObjectString: true,
  stringUnit: "binary",
});

/** Any value Cap'n Web can carry (no Map, Set, typed array of other than bytes, or hole). */
export const capnwebAnything: fc.Arbitrary<unknown> = fc.anything({
  key,
  maxDepth: 3,
  maxKeys: 5,
  withBigInt: true,
  withDate: true,
  withObjectString: true,
  stringUnit: "binary",
});

/** Strings that break id, name and type rules (empty, huge, lone surrogates, control chars). */
export const weirdString: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    "",
    " ",
    "a\uD800",
    "\uDC00x",
    "a\u0000b",
    "a\u007fb",
    "a\u0085b",
    "x".repeat(257),
    "y".repeat(70_000),
    "😀",
    "__proto__",
    "constructor",
    "../..",
    "'; DROP TABLE _baton_execution; --",
    '"',
    "a\nb",
    "\uFFFD",
  ),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.string({ maxLength: 300 }),
);

/** Numbers that break count, version and time rules. */
export const weirdNumber: fc.Arbitrary<number> = fc.oneof(
  fc.constantFrom(
    Number.NaN,
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
    -0,
    0,
    -1,
    1,
    0.5,
    2 ** 53,
    -(2 ** 53),
    1e21,
    -1e21,
    Number.MAX_VALUE,
    Number.MIN_VALUE,
  ),
  fc.integer(),
  fc.double(),
);

/** A plausible id: lowercase letters, digits and dashes. */
export const plainId: fc.Arbitrary<string> = fc.stringMatching(/^[a-z][a-z0-9-]{0,24}$/);

/** Id-like arguments: plausible, broken, or any value at all. */
export function idLike(...known: string[]): fc.Arbitrary<unknown> {
  return fc.oneof(
    ...(known.length ? [{ weight: 3, arbitrary: fc.constantFrom(...known) }] : []),
    { weight: 2, arbitrary: plainId },
    { weight: 3, arbitrary: weirdString },
    { weight: 2, arbitrary: anything },
  );
}

/** Integer-like arguments. */
export const intLike: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: weirdNumber },
  { weight: 1, arbitrary: fc.constantFrom("1", null, true, [], {}, undefined) },
  { weight: 1, arbitrary: fc.bigInt() },
);

/** Duration-like arguments: valid and broken text, numbers, Dates, BigInts, anything. */
export const durationLike: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(
    "1s",
    "250ms",
    "5 minutes",
    "1 hour",
    "2 days",
    "1e400s",
    "-1s",
    "1 fortnight",
    "",
    "s",
    " 1s",
    "1.5s",
    "0",
    "100 years",
    "101 years",
    "NaN s",
    "Infinity ms",
    "9".repeat(400),
  ),
  weirdNumber,
  fc.bigInt(),
  fc.date(),
  anything,
);

/** An options argument: a record of near-valid fields (any subset), or any value at all. */
export function optionsLike(
  fields: Record<string, fc.Arbitrary<unknown>>,
  any: fc.Arbitrary<unknown> = anything,
): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 5, arbitrary: fc.record(fields, { requiredKeys: [], noNullPrototype: true }) },
    { weight: 1, arbitrary: fc.constantFrom(undefined, null, {}, [], "options", 0) },
    { weight: 2, arbitrary: any },
  );
}

/**
 * The argument list of a call: the given arguments, sometimes cut short (missing arguments),
 * sometimes replaced by any list at all.
 */
export function argsOf(
  args: fc.Arbitrary<unknown>[],
  any: fc.Arbitrary<unknown> = anything,
): fc.Arbitrary<unknown[]> {
  const full = fc.tuple(...args) as fc.Arbitrary<unknown[]>;
  return fc.oneof(
    { weight: 6, arbitrary: full },
    {
      weight: 1,
      arbitrary: fc.tuple(full, fc.nat(args.length)).map(([a, n]) => a.slice(0, n)),
    },
    { weight: 1, arbitrary: fc.array(any, { maxLength: 4 }) },
  );
}

// ---- storage snapshots ---------------------------------------------------------------------------

/** Tables no call of the API writes: the test clocks, and workerd's own. */
const IGNORED_TABLES = new Set(["test_clock", "test_meta", "test_outage"]);

type Row = Record<string, SqlStorageValue>;

/** Every row of every table of the object (clock tables aside), blobs as hex, rows sorted. */
export async function snapshot(stub: DurableObjectStub): Promise<Record<string, string[]>> {
  return runInDurableObject(stub, (_instance, state) => {
    const sql = state.storage.sql;
    const out: Record<string, string[]> = {};
    const tables = sql
      .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
      .toArray();
    for (const { name } of tables) {
      if (IGNORED_TABLES.has(name) || name.startsWith("_cf_")) continue;
      out[name] = sql
        .exec<Row>(`SELECT * FROM "${name.replaceAll('"', '""')}"`)
        .toArray()
        .map((row) => JSON.stringify(row, (_k, v) => (v instanceof ArrayBuffer ? hex(v) : v)))
        .sort();
    }
    return out;
  });
}

function hex(buffer: ArrayBuffer): string {
  return `hex:${[...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** Waits until the objects' storage stops changing (background work of a seed is done). */
export async function quiet(stubs: DurableObjectStub[]): Promise<void> {
  let last = "";
  await eventually(
    async () => {
      const now = JSON.stringify(await Promise.all(stubs.map(snapshot)));
      const same = now === last;
      last = now;
      return same && !/"_baton_index_outbox":\["/.test(now);
    },
    (done) => done,
    10_000,
  );
}

// ---- the property --------------------------------------------------------------------------------

/** How a call ended: answered, refused, or still waiting (accepted: it queued or waits). */
export type Outcome =
  | { kind: "ok"; value: unknown }
  | { kind: "refused"; error: unknown }
  | { kind: "pending" };

/**
 * Waits for `call` to settle; with `pending`, also stops (as "pending") once `pending()` says
 * the call is waiting inside the actor (a queued lock request, a result wait).
 */
export async function settle(
  call: () => Promise<unknown>,
  pending?: () => Promise<boolean>,
): Promise<Outcome> {
  let outcome: Outcome | undefined;
  let promise: Promise<unknown>;
  try {
    promise = call();
  } catch (error) {
    return { kind: "refused", error };
  }
  const done = Promise.resolve(promise).then(
    (value) => {
      outcome = { kind: "ok", value };
    },
    (error: unknown) => {
      outcome = { kind: "refused", error };
    },
  );
  if (!pending) {
    await done;
    return outcome as Outcome;
  }
  await eventually(
    async () => outcome !== undefined || (await pending()),
    (stop) => stop,
    10_000,
  );
  // A call that settled while the probe ran is reported as settled.
  return outcome ?? { kind: "pending" };
}

/** One method under the property. */
export interface RefusalCase<T> {
  /** A label for failure messages. */
  name: string;
  /** Makes a fresh object (or objects) with real state; its storage is quiet when it returns. */
  seed: () => Promise<T>;
  /** The objects whose tables a refused call must leave unchanged. */
  objects: (seeded: T) => DurableObjectStub[];
  /** Calls the method with `args`. */
  call: (seeded: T, args: unknown[]) => Promise<unknown>;
  args: fc.Arbitrary<unknown[]>;
  /** Says whether an unsettled call is waiting inside the actor (accepted). */
  pending?: (seeded: T) => Promise<boolean>;
  numRuns?: number;
  rpc?: "native" | "capnweb";
}

/** What the property saw, so a test can also assert it was not vacuous. */
export interface RefusalStats {
  ok: number;
  refused: number;
  pending: number;
  codes: Record<string, number>;
}

/**
 * The property: every call either succeeds (or is accepted and waits) or is refused with a
 * documented Baton error; after a refusal the objects' tables are exactly as before. A seeded
 * object is reused across runs until a call succeeds (a success may change it), then a fresh one
 * is seeded. fast-check prints the seed and the shrunk counterexample on failure.
 */
export async function checkRefusals<T>(c: RefusalCase<T>): Promise<RefusalStats> {
  const stats: RefusalStats = { ok: 0, refused: 0, pending: 0, codes: {} };
  let current: T | undefined;
  await fc.assert(
    fc.asyncProperty(c.args, async (args) => {
      current ??= await c.seed();
      const seeded = current;
      const stubs = c.objects(seeded);
      const before = await Promise.all(stubs.map(snapshot));
      const outcome = await settle(
        () => c.call(seeded, args),
        c.pending ? () => (c.pending as (s: T) => Promise<boolean>)(seeded) : undefined,
      );
      stats[outcome.kind]++;
      if (outcome.kind !== "refused") {
        current = undefined; // it may have changed state: the next run gets a fresh object
        return;
      }
      expectDocumentedError(outcome.error, `${c.name} refused`, c.rpc);
      const code = (outcome.error as { code: string }).code;
      stats.codes[code] = (stats.codes[code] ?? 0) + 1;
      const after = await Promise.all(stubs.map(snapshot));
      expect(after, `${c.name}: a refused call (${code}) changed storage`).toEqual(before);
    }),
    { numRuns: c.numRuns ?? 40 },
  );
  return stats;
}

// ---- seeds shared by the actor tests and the service and gateway tests --------------------------

export interface SeededLock {
  name: string;
  stub: DurableObjectStub<TestLocks>;
  lease: Lease;
  waiterId: string;
}

/** A lock held by "holder" (1 hour lease) with "waiter" queued behind it (30 minutes). */
export async function heldLock(): Promise<SeededLock> {
  const name = uniqueName("prop-lock");
  const stub = env.Locks.getByName(name);
  const first = await stub.acquire({ owner: "holder", ttl: "1 hour" });
  if (!first.acquired) throw new Error("the fresh lock was not free");
  const waiterId = crypto.randomUUID();
  // Waits in line for the whole test (the clock does not move): never awaited.
  stub
    .acquire({ owner: "waiter", ttl: "1 minute", wait: "30 minutes", waiterId })
    .catch(() => undefined);
  await eventually(
    () => stub.status(),
    (s) => s.queue === 1,
  );
  await quiet([stub]);
  return { name, stub, lease: first.lease, waiterId };
}

/** Waiting rows in the queue: a new one means an acquire was accepted and waits. */
export async function queued(stub: DurableObjectStub<TestLocks>): Promise<number> {
  return ((await snapshot(stub))._baton_lock_waiters ?? []).filter((r) => r.includes('"waiting"'))
    .length;
}

// Markers replaced at call time by the seeded lock's real lease token and waiter id.
export const REAL_TOKEN = "$TOKEN";
export const REAL_WAITER = "$WAITER";

export const leaseLike = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record(
      {
        token: fc.oneof(fc.constant(REAL_TOKEN), weirdString, anything),
        fence: fc.oneof(weirdNumber, anything),
        expiresAt: fc.oneof(weirdNumber, anything),
        owner: idLike("holder"),
      },
      { requiredKeys: [], noNullPrototype: true },
    ),
  },
  { weight: 1, arbitrary: anything },
);
export const acquireOptions = optionsLike({
  owner: idLike("holder", "waiter", "other"),
  ttl: durationLike,
  wait: durationLike,
  permits: intLike,
  waiterId: fc.oneof(fc.constant(REAL_WAITER), fc.uuid(), idLike()),
});
export const waiterLike = fc.oneof(fc.constant(REAL_WAITER), fc.uuid(), idLike());

/** Puts the seeded lock's real token and waiter id where the markers are. */
export function realLock(arg: unknown, s: SeededLock): unknown {
  if (arg === REAL_WAITER) return s.waiterId;
  if (typeof arg !== "object" || arg === null || Array.isArray(arg)) return arg;
  const o = { ...(arg as Record<string, unknown>) };
  if (o.token === REAL_TOKEN) o.token = s.lease.token;
  if (o.waiterId === REAL_WAITER) o.waiterId = s.waiterId;
  return o;
}

export interface SeededExecution {
  id: string;
  stub: DurableObjectStub<TestExecutions>;
}

/** An `eventful` execution waiting for its first "go" event. */
export async function waitingExecution(prefix = "prop-wait"): Promise<SeededExecution> {
  const { id, stub } = executionStub(prefix);
  await stub.start("eventful", { n: 1 }, { id });
  await eventually(
    () => stub.status(),
    (s) => s.status === "waiting",
  );
  await quiet([stub]);
  return { id, stub };
}

/** Replaces the marker "$SELF" (an argument, or an options argument's `id`) with `id`. */
export function withSelf(arg: unknown, id: string): unknown {
  if (arg === "$SELF") return id;
  if (typeof arg === "object" && arg !== null && (arg as { id?: unknown }).id === "$SELF") {
    return { ...arg, id };
  }
  return arg;
}

/** Calls `target[name](...args)`: the point is to call with any arguments. */
export function callMethod(target: unknown, name: string, args: unknown[]): Promise<unknown> {
  const t = target as Record<string, (...a: unknown[]) => Promise<unknown>>;
  if (typeof t[name] !== "function") return Promise.reject(new Error(`no method ${name}`));
  // Called on the target itself (a stub's method must not be detached from it).
  return t[name](...args);
}
