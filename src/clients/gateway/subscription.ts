// Workers' own RpcTarget, which capnweb uses on Workers too: the declarations need no capnweb.
import { RpcTarget } from "cloudflare:workers";
import {
  type DisconnectedEvent,
  isTerminalEvent,
  type LiveEvent,
} from "../../execution/live-events.ts";

/** Events a subscription may have waiting for the client before it is dropped. */
const MAX_BACKLOG = 1000;

/** The live subscription `subscribe()` returns; `close()` (or disposing it) ends it. */
export interface GatewaySubscription {
  close(): void;
}

/**
 * A live subscription: relays the execution's WebSocket events to the client's callback.
 * @internal
 */
export class Subscription extends RpcTarget implements GatewaySubscription {
  readonly #ws: WebSocket;
  readonly #listener: (event: LiveEvent) => unknown;
  readonly #executionId: string;
  readonly #onEnd: () => void;
  #closed = false;
  #ended = false;
  #backlog = 0;

  constructor(
    ws: WebSocket,
    listener: (event: LiveEvent) => unknown,
    executionId: string,
    onEnd: () => void,
  ) {
    super();
    this.#ws = ws;
    this.#listener = listener;
    this.#executionId = executionId;
    this.#onEnd = onEnd;
    // Calls are chained, so the client sees the events in the order the actor sent them.
    let chain: Promise<unknown> = Promise.resolve();
    const deliver = (event: LiveEvent) => {
      if (++this.#backlog > MAX_BACKLOG) {
        this.#disconnect(chain, "the subscriber fell too far behind");
        return;
      }
      chain = chain
        .then(() => this.#listener(event))
        .then(
          () => this.#backlog--,
          () => this.close(),
        );
    };
    ws.addEventListener("message", (message) => {
      if (this.#closed) return;
      const event = JSON.parse(String(message.data)) as LiveEvent;
      // Delivered (or, past the backlog, replaced by `disconnected`) before the stream counts
      // as ended, so a subscriber too far behind is told even when the last event overflows.
      deliver(event);
      if (isTerminalEvent(event)) this.#ended = true;
    });
    ws.addEventListener("close", () => {
      // Broken before its terminal event (the actor was reset, or redeployed): say so.
      if (!this.#ended && !this.#closed) this.#disconnect(chain, "the live stream was cut");
      else chain = chain.finally(() => this.#release());
    });
    ws.addEventListener("error", () => {
      if (!this.#ended && !this.#closed) this.#disconnect(chain, "the live stream failed");
    });
    ws.accept();
  }

  close(): void {
    if (!this.#closed) {
      try {
        this.#ws.close(1000, "Unsubscribed.");
      } catch {
        // Closed already.
      }
    }
    this.#release();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #disconnect(chain: Promise<unknown>, reason: string): void {
    if (this.#ended) return;
    this.#ended = true;
    const event: DisconnectedEvent = {
      type: "disconnected",
      executionId: this.#executionId,
      reason: `${reason}; subscribe again for the current state.`,
    };
    void chain
      .then(() => this.#listener(event))
      .catch(() => {})
      .finally(() => this.close());
  }

  #release(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#onEnd();
    (this.#listener as Partial<Disposable>)[Symbol.dispose]?.();
  }
}
