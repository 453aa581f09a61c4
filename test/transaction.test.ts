/**
 * Transactional steps (`step.transaction`): the body's writes to the Execution actor's own
 * SQLite and the step's journal entry commit together, so a crash right after the commit does
 * not run it again, a crash before it leaves nothing written, and an async body is refused.
 */
import { env } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { testExecutions } from "../src/testing/index.ts";
import { asyncLedger, ledger, sneakyLedger } from "./compat-workflows.ts";

const kit = testExecutions(env.Executions);
afterEach(() => kit.dispose());

const rows = (id: string, account: string) => env.Executions.getByName(id).ledgerRows(account);

describe("step.transaction", () => {
  it("writes once, returns its value, and the subclass reads the table over RPC", async () => {
    const { result, journal, execution } = await kit.run(ledger, { account: "acc-1", amount: 5 });
    expect(result).toEqual({
      ok: true,
      status: "completed",
      value: { balance: 5, after: "notified" },
    });
    expect(journal.map((s) => [s.name, s.status, s.attempts, s.output])).toEqual([
      ["credit", "completed", 1, 5],
      ["after", "completed", 1, "notified"],
    ]);
    expect(await rows(execution.id, "acc-1")).toEqual([{ account: "acc-1", amount: 5 }]);
  });

  it("a crash right after its commit does not run it again", async () => {
    const t = kit.execution(ledger);
    t.mockStep("after", { crash: "before", times: 1 });
    await t.start({ account: "acc-2", amount: 7 });
    await t.settle();
    expect(await t.result()).toEqual({
      ok: true,
      status: "completed",
      value: { balance: 7, after: "notified" },
    });
    expect(await rows(t.id, "acc-2")).toEqual([{ account: "acc-2", amount: 7 }]);
    const after = (await t.journal()).find((s) => s.name === "after");
    expect(after?.failedAttempts?.[0]?.error.code).toBe("STEP_INTERRUPTED"); // the crash happened
  });

  it("a crash before its commit leaves nothing written; it runs again, once", async () => {
    const t = kit.execution(ledger);
    t.mockStep("credit", { crash: true, times: 1 }); // the body runs, the actor dies before the commit
    await t.start({ account: "acc-3", amount: 2 });
    await t.settle();
    expect(await t.result()).toMatchObject({ ok: true, value: { balance: 2 } });
    expect(await rows(t.id, "acc-3")).toEqual([{ account: "acc-3", amount: 2 }]);
  });

  it("survives an eviction and a replay without writing again", async () => {
    const t = kit.execution(ledger);
    t.mockStep("after", { throws: "later", times: 1 });
    await t.start({ account: "acc-4", amount: 1 });
    await t.evict();
    await t.advanceToNextTimer();
    expect(await t.result()).toMatchObject({ ok: true, value: { balance: 1 } });
    expect(await rows(t.id, "acc-4")).toHaveLength(1);
  });

  it("refuses a body that awaits (ASYNC_TRANSACTION) and rolls its writes back", async () => {
    const { result, journal, execution } = await kit.run(asyncLedger, { account: "acc-5" });
    expect(result).toEqual({ ok: true, status: "completed", value: "ASYNC_TRANSACTION" });
    expect(journal[0]).toMatchObject({
      name: "credit",
      status: "failed",
      error: { code: "ASYNC_TRANSACTION", nonRetryable: true },
    });
    expect(await rows(execution.id, "acc-5")).toEqual([]);
  });

  it("keeps Baton's own tables out of reach", async () => {
    const { result } = await kit.run(sneakyLedger, null);
    expect(result).toMatchObject({ ok: false, error: { code: "INVALID_ARGUMENT", step: "peek" } });
  });

  it("is kept by a restart from the step after it", async () => {
    const t = kit.execution(ledger);
    await t.start({ account: "acc-6", amount: 3 });
    await t.handle.restart({ from: { name: "after" } });
    await t.settle();
    expect(await t.result()).toMatchObject({ ok: true, value: { balance: 3 } });
    expect(await rows(t.id, "acc-6")).toHaveLength(1);
    await t.handle.restart({ from: { name: "credit" } });
    await t.settle();
    expect(await t.result()).toMatchObject({ ok: true, value: { balance: 6 } }); // ran again: a second credit
    expect(await rows(t.id, "acc-6")).toHaveLength(2);
  });
});
