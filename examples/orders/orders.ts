import { DurableObject } from "cloudflare:workers";
import { z } from "zod";
import { ExecutionActor, NonRetryableError, workflow } from "../../src/index.ts";

export interface OrdersEnv {
  Orders: DurableObjectNamespace<Orders>;
  Payments: DurableObjectNamespace<Payments>;
}

/** An order as the workflow takes it (checked at start: a bad one is `INVALID_INPUT`). */
export const Order = z.object({
  orderId: z.string().regex(/^[\w.-]{1,64}$/, "letters, digits, _ . - (1 to 64)"),
  items: z.array(z.string().min(1).max(200)).min(1).max(100),
  amount: z.number().nonnegative().max(1_000_000),
});
export type Order = z.infer<typeof Order>;

/**
 * reserve → wait for approval → charge (with the step's idempotency key) → ship.
 * A rejected order releases its reservation and fails without retries.
 */
export const orderFlow = workflow(
  "order",
  { input: Order, retries: { limit: 3, delay: "1 second", backoff: "exponential" } },
  async (order, step, ctx) => {
    const env = ctx.env as OrdersEnv;
    const reservation = await step.do(
      "reserve",
      async () => `rsv-${order.orderId}-${order.items.length}`,
    );
    const approval = await step.waitForEvent<{ approved: boolean; by: string }>("approval", {
      type: "approve",
      timeout: "1 day",
    });
    if (!approval.payload.approved) {
      await step.do("release", async () => `released ${reservation}`);
      throw new NonRetryableError(`order ${order.orderId} rejected by ${approval.payload.by}`);
    }
    // The payment provider dedupes on the key, so a retried or replayed charge never bills twice.
    const charge = await step.do("charge", async ({ idempotencyKey }) =>
      env.Payments.getByName("ledger").charge(idempotencyKey, order.amount),
    );
    const tracking = await step.do("ship", async () => `trk-${order.orderId}`);
    return {
      orderId: order.orderId,
      reservation,
      chargeId: charge.chargeId,
      tracking,
      approvedBy: approval.payload.by,
    };
  },
);

/** The Execution actor for orders. */
export class Orders extends ExecutionActor<OrdersEnv> {
  readonly workflows = [orderFlow];
}

/** A stand-in payment provider: charges are idempotent per key. */
export class Payments extends DurableObject {
  charge(key: string, amount: number): { chargeId: string; amount: number; replayed: boolean } {
    const sql = this.ctx.storage.sql;
    sql.exec(
      "CREATE TABLE IF NOT EXISTS charges (key TEXT PRIMARY KEY, id TEXT NOT NULL, amount REAL NOT NULL)",
    );
    const seen = sql
      .exec<{ id: string; amount: number }>("SELECT id, amount FROM charges WHERE key = ?", key)
      .toArray()[0];
    if (seen) return { chargeId: seen.id, amount: seen.amount, replayed: true };
    const id = `ch_${crypto.randomUUID().slice(0, 8)}`;
    sql.exec("INSERT INTO charges VALUES (?, ?, ?)", key, id, amount);
    return { chargeId: id, amount, replayed: false };
  }

  count(): number {
    this.ctx.storage.sql.exec(
      "CREATE TABLE IF NOT EXISTS charges (key TEXT PRIMARY KEY, id TEXT NOT NULL, amount REAL NOT NULL)",
    );
    return this.ctx.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM charges").one().n;
  }
}
