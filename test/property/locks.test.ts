/**
 * Bad input, property-based (issue 17): every public RPC method of the Lock actor (TestLocks),
 * against a lock with real state: a holder and a caller waiting in line.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  acquireOptions,
  anything,
  argsOf,
  checkRefusals,
  durationLike,
  heldLock,
  leaseLike,
  optionsLike,
  queued,
  realLock,
  type SeededLock,
  waiterLike,
} from "./arbitraries.ts";

const cases: Array<{ name: string; args: fc.Arbitrary<unknown[]>; numRuns?: number }> = [
  { name: "acquire", args: argsOf([acquireOptions]), numRuns: 60 },
  { name: "renew", args: argsOf([leaseLike, durationLike]), numRuns: 60 },
  { name: "release", args: argsOf([leaseLike]), numRuns: 60 },
  { name: "status", args: argsOf([anything]), numRuns: 10 },
  { name: "isLocked", args: argsOf([anything]), numRuns: 10 },
  {
    name: "abandon",
    args: argsOf([waiterLike, optionsLike({ release: fc.oneof(fc.boolean(), anything) })]),
    numRuns: 40,
  },
];

describe("property: the Lock actor's RPC methods refuse bad input cleanly", () => {
  for (const c of cases) {
    it(c.name, async () => {
      const stats = await checkRefusals<SeededLock>({
        name: `lock.${c.name}`,
        seed: heldLock,
        objects: (s) => [s.stub],
        call: (s, args) =>
          (s.stub as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[c.name]?.(
            ...args.map((a) => realLock(a, s)),
          ) ?? Promise.reject(new Error(`no method ${c.name}`)),
        // A valid acquire with `wait` on the held lock queues: accepted.
        pending: async (s) => (await queued(s.stub)) > 1,
        args: c.args,
        numRuns: c.numRuns ?? 30,
      });
      if ((c.numRuns ?? 30) >= 20) expect(stats.refused, JSON.stringify(stats)).toBeGreaterThan(0);
    });
  }

  it("release of a lease with an out-of-range expiresAt is refused with a code", async () => {
    const s = await heldLock();
    for (const expiresAt of [Number.NEGATIVE_INFINITY, -1e20, Number.NaN]) {
      const lease = { token: "no-such-token", fence: 1, expiresAt, owner: "x" };
      const error = await s.stub.release(lease).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect((error as { code?: string })?.code, String(error)).toMatch(/NOT_HOLDER|LEASE_EXPIRED/);
    }
  });
});
