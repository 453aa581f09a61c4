/**
 * A Node client of the dev Worker's Cap'n Web gateway: it starts an order workflow, follows its
 * live progress, approves it, and prints the result. Types come from the Worker (`import type`
 * only): workflow names, inputs and results are checked at compile time.
 *
 *   npm run dev              # in one terminal: the dev Worker on http://127.0.0.1:8787
 *   npm run example:node     # in another (BATON_URL and BATON_TOKEN override the defaults)
 */
// In your project: `from "baton/client"`.
import { type GatewayStub, type LiveEvent, connect as open } from "../../src/remote/index.ts";
import type { DevApi } from "../dev/worker.ts";

/** Opens a session to the gateway (a WebSocket; the token goes in a header from Node). */
export function connect(url: string, token: string): GatewayStub<DevApi> {
  return open<DevApi>(url, { token });
}

/**
 * Starts order `orderId`, follows it live until its terminal event, approving it once it waits,
 * and returns the live events and the result.
 */
export async function followOrder(
  api: GatewayStub<DevApi>,
  orderId: string,
  log: (line: string) => void = console.log,
) {
  const order = { orderId, items: ["book", "pen"], amount: 42 };
  const started = await api.workflows.order.start(order, { id: orderId });
  log(`started ${started.id} (${started.status})`);

  const events: LiveEvent[] = [];
  let approved = false;
  const ended = new Promise<void>((resolve, reject) => {
    const onEvent = async (event: LiveEvent) => {
      events.push(event);
      if (event.type === "initial_state") log(`state: ${event.state.status}`);
      else if (event.type === "progress") log(`step ${event.stepIndex}: ${event.step}`);
      else log(`${event.type}`);
      // The stream broke (the actor was reset or redeployed): follow it again from its state.
      if (event.type === "disconnected") {
        api.subscribe(orderId, onEvent).catch(reject);
        return;
      }
      // The order waits for an approval after its first step: send it once.
      if (!approved && (event.type === "progress" || event.type === "initial_state")) {
        approved = true;
        await api.sendEvent(orderId, "approve", { approved: true, by: "node-client" });
      }
      if (event.type === "completed" || event.type === "cancelled") resolve();
      if (event.type === "failed") reject(new Error(event.error));
    };
    api.subscribe(orderId, onEvent).catch(reject);
  });
  await ended;
  // Typed by the workflow: `result.value.chargeId` is a string.
  const result = await api.workflows.order.result(orderId, { timeout: "30s" });
  if (result.ok) log(`charged ${result.value.chargeId}, shipped ${result.value.tracking}`);
  return { events, result };
}

// Run directly: `node examples/node-client/main.ts`.
if (import.meta.main) {
  const url = process.env.BATON_URL ?? "ws://127.0.0.1:8787/rpc";
  const token = process.env.BATON_TOKEN ?? "dev-token";
  const api = connect(url, token);
  try {
    const { result } = await followOrder(api, `order-${Date.now()}`);
    console.log(JSON.stringify(result, null, 2));
  } finally {
    api[Symbol.dispose]();
  }
}
