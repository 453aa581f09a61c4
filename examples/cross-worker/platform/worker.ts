/**
 * The platform Worker: it binds Baton's actors and exposes them to other Workers through a
 * `BatonService` entrypoint (`Platform`). See ../README.md.
 */
import { BatonService, ExecutionActor, workflow } from "../../../src/index.ts";

export { CheckpointActor as Checkpoints, LockActor as Locks } from "../../../src/index.ts";

export interface PlatformEnv {
  Executions: DurableObjectNamespace<PlatformExecutions>;
}

/**
 * The workflow other Workers start: pack and label an order. A held order waits for a
 * `release` event (sent from the other Worker) before it is labelled.
 */
export const fulfil = workflow(
  "fulfil",
  async (input: { orderId: string; items: number; hold?: boolean }, step) => {
    const packed = await step.do("pack", () => `packed ${input.items} item(s)`);
    if (input.hold) {
      await step.waitForEvent("held", { type: "release", timeout: "1 day" });
    }
    const label = await step.do("label", () => `label-${input.orderId}`);
    return { orderId: input.orderId, packed, label };
  },
);

export class PlatformExecutions extends ExecutionActor<PlatformEnv> {
  readonly workflows = [fulfil];
}

/** What other Workers bind to (entrypoint "Platform"); its type is all they import. */
export class Platform extends BatonService<PlatformEnv, PlatformExecutions> {}

export default {
  fetch: () => Response.json({ name: "baton-platform", entrypoint: "Platform" }),
} satisfies ExportedHandler<PlatformEnv>;
