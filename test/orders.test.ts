import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { orderFlow } from "../examples/orders/orders.ts";
import { testExecutions } from "../src/testing/index.ts";
import { eventually, uniqueName } from "./helpers.ts";

const post = (path: string, body: unknown) =>
  SELF.fetch(`http://baton.test${path}`, { method: "POST", body: JSON.stringify(body) });
const get = async (path: string) =>
  (await SELF.fetch(`http://baton.test${path}`)).json() as Promise<Record<string, unknown>>;

describe("example: the order flow through the dev Worker", () => {
  it("reserves, waits for approval, charges once with the idempotency key, ships", async () => {
    const orderId = uniqueName("o");
    const created = await post("/orders", { orderId, items: ["book", "pen"], amount: 12.5 });
    expect(created.status).toBe(201);
    await eventually(
      () => get(`/orders/${orderId}`),
      (s) => s.status === "waiting",
    );
    expect((await post(`/orders/${orderId}/approve`, { approved: true, by: "ada" })).status).toBe(
      200,
    );
    const result = (await get(`/orders/${orderId}/result`)) as {
      ok: boolean;
      value: Record<string, string>;
    };
    expect(result.ok).toBe(true);
    expect(result.value).toMatchObject({
      orderId,
      reservation: `rsv-${orderId}-2`,
      tracking: `trk-${orderId}`,
      approvedBy: "ada",
    });
    expect(result.value.chargeId).toMatch(/^ch_/);
    const journal = (await get(`/orders/${orderId}/journal`)) as unknown as Array<{
      name: string;
      status: string;
    }>;
    expect(journal.map((e) => `${e.name}:${e.status}`)).toEqual([
      "reserve:completed",
      "approval:completed",
      "charge:completed",
      "ship:completed",
    ]);
    // Replaying the charge with the same key (a retry or a restart) never bills twice.
    const ledger = env.Payments.getByName("ledger");
    const again = await ledger.charge(`${orderId}/charge/0`, 12.5);
    expect(again).toMatchObject({ chargeId: result.value.chargeId, replayed: true });
  });

  it("answers 404 with the code for an unknown order, and 400 for a bad one", async () => {
    const missing = await SELF.fetch("http://baton.test/orders/no-such-order");
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ code: "EXECUTION_NOT_FOUND" });
    const bad = await post("/orders", { orderId: "", items: [], amount: 1 });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: "INVALID_ARGUMENT" });
  });
});

describe("example: the order flow on a test clock (baton/testing)", () => {
  const kit = () => testExecutions(env.Orders);
  const order = () => ({ orderId: uniqueName("o"), items: ["x"], amount: 1 });

  it("releases the reservation and fails without retries when the order is rejected", async () => {
    const t = kit().execution(orderFlow);
    await t.start(order());
    expect(await t.waitingFor()).toMatchObject([{ kind: "event", type: "approve" }]);
    await t.sendEvent("approve", { approved: false, by: "bob" });
    expect(await t.result()).toMatchObject({
      ok: false,
      error: { code: "WORKFLOW_FAILED", name: "NonRetryableError" },
    });
    expect((await t.journal()).map((e) => e.name)).toEqual(["reserve", "approval", "release"]);
  });

  it("fails after a day when nobody approves, and not a moment before", async () => {
    const t = kit().execution(orderFlow);
    await t.start(order());
    await t.advance("23 hours");
    expect((await t.status()).status).toBe("waiting");
    await t.advance("1 hour");
    expect(await t.result()).toMatchObject({ ok: false, error: { code: "EVENT_TIMEOUT" } });
  });

  it("bills once when the actor dies right after the charge", async () => {
    const t = kit().execution(orderFlow);
    t.mockStep("charge", { crash: true, times: 1 }); // the ledger charges, then the actor dies
    const input = order();
    await t.start(input);
    await t.sendEvent("approve", { approved: true, by: "ada" });
    expect(await t.result()).toMatchObject({ ok: true, value: { approvedBy: "ada" } });
    const charge = (await t.journal()).find((e) => e.name === "charge");
    // The second attempt charged under the same idempotency key: the ledger replayed the first.
    expect(charge).toMatchObject({ attempts: 2, output: { replayed: true } });
    expect(charge?.failedAttempts).toMatchObject([{ error: { code: "STEP_INTERRUPTED" } }]);
    const ledger = env.Payments.getByName("ledger");
    expect(await ledger.charge(`${t.id}/charge/0`, input.amount)).toMatchObject({
      replayed: true,
    });
  });
});
