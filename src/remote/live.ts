import type { LiveEvent } from "../execution/live-events.ts";

/** The part of a gateway stub `liveEvents` uses (its `subscribe`). */
export interface LiveEventsSource {
  subscribe(
    id: string,
    callback: (event: LiveEvent) => void,
  ): Promise<{ close(): void; onRpcBroken?(callback: (error: unknown) => void): void }>;
}

/**
 * Execution `id`'s live events as an async iterator, over a WebSocket session of the gateway:
 * `initial_state`, the `progress` events, then one terminal event (`completed`, `failed`,
 * `cancelled`) or `disconnected` (the stream broke: subscribe again for the current state), after
 * which it ends. Leaving the loop early closes the subscription.
 *
 * @example
 * ```ts
 * for await (const event of liveEvents(api, "o-1")) {
 *   if (event.type === "progress") console.log(`step ${event.stepIndex}: ${event.step}`);
 * }
 * ```
 */
export async function* liveEvents(api: LiveEventsSource, id: string): AsyncGenerator<LiveEvent> {
  const queue: LiveEvent[] = [];
  let wake: (() => void) | undefined;
  const subscription = await api.subscribe(id, (event) => {
    queue.push(event);
    wake?.();
  });
  // The session broke (the socket closed, the stub was disposed): end with `disconnected`.
  subscription.onRpcBroken?.((error) => {
    const reason = error instanceof Error ? error.message : String(error);
    queue.push({ type: "disconnected", executionId: id, reason });
    wake?.();
  });
  try {
    for (;;) {
      while (queue.length === 0) await new Promise<void>((resolve) => (wake = resolve));
      const event = queue.shift() as LiveEvent;
      yield event;
      if (
        event.type === "completed" ||
        event.type === "failed" ||
        event.type === "cancelled" ||
        event.type === "disconnected"
      ) {
        return;
      }
    }
  } finally {
    try {
      subscription.close();
    } catch {
      // Ended already.
    }
  }
}
