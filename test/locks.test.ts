import {
  env,
  evictDurableObject,
  runDurableObjectAlarm,
  runInDurableObject,
} from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { type Lease, locks } from "../src/index.ts";
import {
  advance as advanceClock,
  eventually,
  expectBatonError,
  probe,
  resetActor,
  uniqueName,
} from "./helpers.ts";
import type { TestLocks } from "./worker.ts";

const client = () => locks(env.Locks);
const lockStub = (name: string) => env.Locks.getByName(name);

/** Resets the lock actor's instance: pending calls fail, storage stays. */
const resetLock = (name: string) => resetActor(lockStub(name));
/** Moves the lock actor's clock and delivers its due alarms. */
const advance = (name: string, ms: number) => advanceClock(lockStub(name), ms);

describe("locks: leases and fencing", () => {
  it("grants, reports the holder to others, and releases", async () => {
    const name = uniqueName("lock");
    const first = await client().acquire(name, { owner: "a", ttl: "1m" });
    expect(first.acquired).toBe(true);
    if (!first.acquired) return;
    expect(first.lease).toMatchObject({ fence: 1, owner: "a" });
    expect(first.lease.token).toMatch(/^[0-9a-f-]{36}$/);
    const second = await client().acquire(name, { owner: "b", ttl: "1m" });
    expect(second).toMatchObject({
      acquired: false,
      holders: [{ owner: "a", fence: 1 }],
      queue: 0,
    });
    expect(await client().isLocked(name)).toBe(true);
    expect(await client().status(name)).toMatchObject({
      permits: 1,
      queue: 0,
      locked: true,
      fence: 1,
    });
    await client().release(name, first.lease);
    expect(await client().status(name)).toMatchObject({ holders: [], locked: false, fence: 1 });
    const third = await client().acquire(name, { owner: "c", ttl: "1m" });
    expect(third).toMatchObject({ acquired: true, lease: { fence: 2 } });
  });

  it("expires a lease by alarm, rejects the stale holder, and hands the lock to the next waiter", async () => {
    const name = uniqueName("lock");
    const held = await client().acquire(name, { owner: "a", ttl: "1m" });
    if (!held.acquired) throw new Error("not acquired");
    const waiting = client().acquire(name, { owner: "b", ttl: "1m", wait: "5m" });
    await eventually(
      () => client().status(name),
      (s) => s.queue === 1,
    );
    await advance(name, 60_000);
    const next = await waiting;
    expect(next).toMatchObject({ acquired: true, lease: { owner: "b", fence: 2 } });
    await expectBatonError(client().renew(name, held.lease, "1m"), "LEASE_EXPIRED", /fence 1/);
    await expectBatonError(client().release(name, held.lease), "LEASE_EXPIRED");
    expect(await client().status(name)).toMatchObject({
      holders: [{ owner: "b", fence: 2 }],
      queue: 0,
    });
  });

  it("renews a lease, and rejects release of a lease that is not the holder's", async () => {
    const name = uniqueName("lock");
    const got = await client().acquire(name, { owner: "a", ttl: "1m" });
    if (!got.acquired) throw new Error("not acquired");
    await advance(name, 50_000);
    const renewed = await client().renew(name, got.lease, "1m");
    expect(renewed.expiresAt).toBe((await lockStub(name).clock()) + 60_000);
    await advance(name, 20_000); // past the first expiry, within the renewal
    expect((await client().status(name)).holders).toHaveLength(1);
    const forged: Lease = {
      ...got.lease,
      token: crypto.randomUUID(),
      expiresAt: renewed.expiresAt,
    };
    await expectBatonError(client().release(name, forged), "NOT_HOLDER", /not held/);
    await client().release(name, renewed);
    await expectBatonError(client().release(name, renewed), "NOT_HOLDER");
  });

  it("keeps fences strictly increasing across eviction and expiry", async () => {
    const name = uniqueName("lock");
    const fences: number[] = [];
    for (let i = 0; i < 3; i++) {
      const got = await client().acquire(name, { owner: `o${i}`, ttl: "1m" });
      if (!got.acquired) throw new Error("not acquired");
      fences.push(got.lease.fence);
      if (i === 0) await client().release(name, got.lease);
      if (i === 1) await advance(name, 60_000);
      await evictDurableObject(lockStub(name));
    }
    expect(fences).toEqual([1, 2, 3]);
  });
});

describe("locks: the wait queue", () => {
  it("gives mutual exclusion to 20 concurrent acquirers, in FIFO order, with increasing fences", async () => {
    const name = uniqueName("mutex");
    const p = probe();
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        client().withLock(name, { owner: `w${i}`, ttl: "1m", wait: "5m" }, async (lease) => {
          await p.stub.record("log", { event: "enter", who: i, fence: lease.fence });
          await new Promise((r) => setTimeout(r, 1));
          await p.stub.record("log", { event: "exit", who: i, fence: lease.fence });
        }),
      ),
    );
    const log = await p.stub.records("log");
    expect(log).toHaveLength(40);
    for (let i = 0; i < log.length; i += 2) {
      // enter, exit, enter, exit ...: no two critical sections overlap.
      expect(log[i]).toMatchObject({ event: "enter" });
      expect(log[i + 1]).toMatchObject({ event: "exit", who: log[i]?.who });
    }
    const fences = log.filter((e) => e.event === "enter").map((e) => e.fence as number);
    expect(fences).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(new Set(log.map((e) => e.who)).size).toBe(20);
    expect(await client().status(name)).toMatchObject({ holders: [], queue: 0, fence: 20 });
  });

  it("times out a waiter with LOCK_TIMEOUT after about `wait`, leaving no phantom holder", async () => {
    const name = uniqueName("lock");
    const held = await client().acquire(name, { owner: "a", ttl: "1h" });
    if (!held.acquired) throw new Error("not acquired");
    const waiting = client().acquire(name, { owner: "b", ttl: "1m", wait: "2s" });
    const caught = expectBatonError(waiting, "LOCK_TIMEOUT", /2000 ms/);
    await eventually(
      () => client().status(name),
      (s) => s.queue === 1,
    );
    await advance(name, 1_999);
    expect((await client().status(name)).queue).toBe(1);
    await advance(name, 1);
    await caught;
    await client().release(name, held.lease);
    expect(await client().status(name)).toMatchObject({ holders: [], queue: 0, fence: 1 });
  });

  it("keeps the queue's order when the lock actor is evicted while callers wait", async () => {
    const name = uniqueName("lock");
    const held = await client().acquire(name, { owner: "holder", ttl: "1h" });
    if (!held.acquired) throw new Error("not acquired");
    const order: string[] = [];
    const waiters: Promise<void>[] = [];
    for (const [i, owner] of ["w1", "w2", "w3"].entries()) {
      waiters.push(
        (async () => {
          const got = await client().acquire(name, { owner, ttl: "1m", wait: "10m" });
          if (!got.acquired) throw new Error("not acquired");
          order.push(`${owner}:${got.lease.fence}`);
          await client().release(name, got.lease);
        })(),
      );
      // The next waiter comes only once this one is queued: the order is the test's, not timing's.
      await eventually(
        () => client().status(name),
        (s) => s.queue === i + 1,
      );
    }
    await resetLock(name); // as a deploy or crash would (evictDurableObject waits for in-flight calls)
    // The waiters' connections broke; the client re-attaches them with their waiter ids.
    await eventually(
      () => client().status(name),
      (s) => s.queue === 3,
    );
    await client().release(name, held.lease);
    await Promise.all(waiters);
    expect(order).toEqual(["w1:2", "w2:3", "w3:4"]);
  });

  it("expires a granted-but-unclaimed lease on its TTL", async () => {
    const name = uniqueName("lock");
    const waiterId = crypto.randomUUID();
    const held = await client().acquire(name, { owner: "a", ttl: "1h" });
    if (!held.acquired) throw new Error("not acquired");
    // A waiter queued directly on the stub; its caller goes away.
    const stub = lockStub(name);
    void stub.acquire({ owner: "gone", ttl: "1m", wait: "10m", waiterId }).catch(() => undefined);
    await eventually(
      () => client().status(name),
      (s) => s.queue === 1,
    );
    await resetLock(name);
    await client().release(name, held.lease);
    expect(await client().status(name)).toMatchObject({ holders: [{ owner: "gone", fence: 2 }] });
    // Re-attaching with the waiter id returns the lease granted meanwhile.
    expect(await client().acquire(name, { owner: "gone", ttl: "1m", waiterId })).toMatchObject({
      acquired: true,
      lease: { fence: 2 },
    });
    await advance(name, 60_000);
    expect(await client().status(name)).toMatchObject({ holders: [], locked: false });
  });

  it("runs a duplicated expiry alarm once", async () => {
    const name = uniqueName("lock");
    await client().acquire(name, { owner: "a", ttl: "1m" });
    const next = client().acquire(name, { owner: "b", ttl: "1m", wait: "10m" });
    await eventually(
      () => client().status(name),
      (s) => s.queue === 1,
    );
    await lockStub(name).advanceClock(60_000);
    await runInDurableObject(lockStub(name), async (instance: TestLocks) => {
      await Promise.all([instance.alarm(), instance.alarm()]);
      await instance.alarm();
    });
    expect(await next).toMatchObject({ acquired: true, lease: { owner: "b", fence: 2 } });
    expect(await client().status(name)).toMatchObject({ holders: [{ owner: "b" }], fence: 2 });
  });
});

describe("locks: callers that give up", () => {
  it("does not grant to a waiter whose wait ran out before its timeout alarm", async () => {
    const name = uniqueName("lock");
    const held = await client().acquire(name, { owner: "a", ttl: "1h" });
    if (!held.acquired) throw new Error("not acquired");
    const late = expectBatonError(
      client().acquire(name, { owner: "b", ttl: "1m", wait: "1s" }),
      "LOCK_TIMEOUT",
    );
    await eventually(
      () => client().status(name),
      (s) => s.queue === 1,
    );
    await lockStub(name).advanceClock(2_000); // the timeout alarm has not run
    await client().release(name, held.lease);
    await late;
    expect(await client().status(name)).toMatchObject({ holders: [], queue: 0, fence: 1 });
  });

  it("gives a re-used waiter id a fresh wait, not its old overdue timeout", async () => {
    const name = uniqueName("lock");
    const waiterId = crypto.randomUUID();
    const held = await client().acquire(name, { owner: "a", ttl: "1h" });
    if (!held.acquired) throw new Error("not acquired");
    const first = expectBatonError(
      lockStub(name).acquire({ owner: "b", ttl: "1m", wait: "1s", waiterId }),
      "LOCK_TIMEOUT",
    );
    await eventually(
      () => client().status(name),
      (s) => s.queue === 1,
    );
    await lockStub(name).advanceClock(1_000);
    const second = lockStub(name).acquire({ owner: "b", ttl: "1m", wait: "1m", waiterId });
    await first;
    await runDurableObjectAlarm(lockStub(name)); // the old timer, if still there, must not fire on it
    expect((await client().status(name)).queue).toBe(1);
    await client().release(name, held.lease);
    expect(await second).toMatchObject({ acquired: true, lease: { owner: "b", fence: 2 } });
  });

  it("withdraws a waiter, or releases what was granted to it, on abandon", async () => {
    const name = uniqueName("lock");
    const [wb, wc] = [crypto.randomUUID(), crypto.randomUUID()];
    const held = await client().acquire(name, { owner: "a", ttl: "1h" });
    if (!held.acquired) throw new Error("not acquired");
    const gone = expectBatonError(
      lockStub(name).acquire({ owner: "b", ttl: "1h", wait: "1h", waiterId: wb }),
      "LOCK_TIMEOUT",
    );
    const stays = lockStub(name).acquire({ owner: "c", ttl: "1h", wait: "1h", waiterId: wc });
    await eventually(
      () => client().status(name),
      (s) => s.queue === 2,
    );
    expect(await client().abandon(name, wb)).toBe("withdrawn");
    await gone;
    await client().release(name, held.lease);
    expect(await stays).toMatchObject({ acquired: true, lease: { owner: "c" } });
    expect(await client().abandon(name, wc)).toBe("released");
    expect(await client().abandon(name, crypto.randomUUID())).toBe("none");
    expect(await client().status(name)).toMatchObject({ holders: [], queue: 0 });
  });
});

describe("locks: semaphores", () => {
  it("never lets more than 3 of 12 contenders in at once, and every one gets in", async () => {
    const name = uniqueName("sem");
    const p = probe();
    let inside = 0;
    let most = 0;
    await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        client().withLock(name, { owner: `c${i}`, ttl: "1m", wait: "5m", permits: 3 }, async () => {
          inside++;
          most = Math.max(most, inside);
          const status = await client().status(name);
          await p.stub.record("held", { holders: status.holders.length });
          await new Promise((r) => setTimeout(r, 2));
          inside--;
        }),
      ),
    );
    expect(most).toBeLessThanOrEqual(3);
    expect(most).toBeGreaterThan(1);
    const seen = (await p.stub.records("held")).map((r) => r.holders as number);
    expect(seen).toHaveLength(12);
    expect(Math.max(...seen)).toBeLessThanOrEqual(3);
    expect(await client().status(name)).toMatchObject({
      permits: 3,
      holders: [],
      queue: 0,
      fence: 12,
    });
  });

  it("rejects callers that disagree about the number of permits", async () => {
    const name = uniqueName("sem");
    await client().acquire(name, { owner: "a", ttl: "1m", permits: 3 });
    await expectBatonError(
      client().acquire(name, { owner: "b", ttl: "1m", permits: 2 }),
      "PERMITS_MISMATCH",
      /3 permit/,
    );
    expect((await client().status(name)).holders).toHaveLength(1);
  });
});

describe("locks: bad input", () => {
  it("rejects every malformed call with a clear code and changes nothing", async () => {
    const name = uniqueName("bad");
    const got = await client().acquire(name, { owner: "a", ttl: "1m" });
    if (!got.acquired) throw new Error("not acquired");
    const stub = lockStub(name);
    const cases: Array<[() => Promise<unknown>, string, RegExp]> = [
      [() => stub.acquire({ owner: "", ttl: "1m" }), "INVALID_ARGUMENT", /owner/],
      [() => stub.acquire({ owner: "x".repeat(257), ttl: "1m" }), "INVALID_ARGUMENT", /owner/],
      [() => stub.acquire({ owner: "b", ttl: 0 }), "INVALID_ARGUMENT", /ttl/],
      [() => stub.acquire({ owner: "b", ttl: "25 hours" }), "INVALID_ARGUMENT", /ttl/],
      [() => stub.acquire({ owner: "b", ttl: "later" as "1s" }), "INVALID_DURATION", /later/],
      [() => stub.acquire({ owner: "b", ttl: "1m", wait: -1 }), "INVALID_DURATION", /-1/],
      [() => stub.acquire({ owner: "b", ttl: "1m", wait: "2h" }), "INVALID_ARGUMENT", /wait/],
      [() => stub.acquire({ owner: "b", ttl: "1m", permits: 0 }), "INVALID_ARGUMENT", /permits/],
      [() => stub.acquire({ owner: "b", ttl: "1m", permits: 1.5 }), "INVALID_ARGUMENT", /permits/],
      [() => stub.acquire({ owner: "b", ttl: "1m", waiterId: "" }), "INVALID_ARGUMENT", /waiterId/],
      // @ts-expect-error not options
      [() => stub.acquire(null), "INVALID_ARGUMENT", /options/],
      // @ts-expect-error not a lease
      [() => stub.renew({ token: 1 }, "1m"), "INVALID_ARGUMENT", /lease/],
      [() => stub.renew(got.lease, 0), "INVALID_ARGUMENT", /ttl/],
      // @ts-expect-error not a lease
      [() => stub.release("token"), "INVALID_ARGUMENT", /lease/],
      [() => client().status(""), "INVALID_ARGUMENT", /Lock name/],
      [
        () => client().acquire("x".repeat(257), { owner: "a", ttl: "1m" }),
        "INVALID_ARGUMENT",
        /Lock name/,
      ],
    ];
    for (const [call, code, message] of cases)
      await expectBatonError(call(), code as "INVALID_ARGUMENT", message);
    expect(await client().status(name)).toMatchObject({
      holders: [{ owner: "a", fence: 1 }],
      queue: 0,
      fence: 1,
    });
  });

  it("withLock releases when its function throws, and refuses a held lock without wait", async () => {
    const name = uniqueName("with");
    await expect(
      client().withLock(name, { owner: "a", ttl: "1m" }, async () => {
        throw new Error("inside");
      }),
    ).rejects.toThrow("inside");
    expect((await client().status(name)).holders).toHaveLength(0);
    const held = await client().acquire(name, { owner: "b", ttl: "1m" });
    await expectBatonError(
      client().withLock(name, { owner: "c", ttl: "1m" }, () => 1),
      "LOCK_TIMEOUT",
      /held by b/,
    );
    if (held.acquired) await client().release(name, held.lease);
  });
});
