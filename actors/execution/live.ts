import {
  type CancelledEvent,
  type CompletedEvent,
  type FailedEvent,
  type InitialStateEvent,
  jsonIfSmall,
  MAX_LIVE_OUTPUT_BYTES,
  MAX_LIVE_RESULT_BYTES,
  OMITTED,
  type ProgressEvent,
} from "../../src/execution/live-events.ts";
import { type ExecutionRow, TERMINAL } from "../../src/execution/schema.ts";
import type { ExecutionInfo } from "../../src/execution/types.ts";
import { parseError } from "./status.ts";

/** Tag of live-progress WebSockets. */
const LIVE_TAG = "live";

/** What the live channel reads from its Execution actor. */
export interface LiveSource {
  row(): ExecutionRow | undefined;
  readOutput(): Promise<unknown>;
  info(row: ExecutionRow): ExecutionInfo;
  now(): number;
  /** Most subscribers at once (a global cap per execution, across every gateway and route). */
  maxSubscribers(): number;
}

/**
 * An execution's live progress over hibernatable WebSockets: `initial_state` on connection, a
 * `progress` event per step finished in this run, then exactly one terminal event, after which
 * the socket is closed. A socket that got (or is getting) its terminal event is marked in its
 * attachment, so a restart's progress never reaches it, also after hibernation.
 */
export class LiveChannel {
  readonly #ctx: DurableObjectState;
  readonly #source: LiveSource;

  constructor(ctx: DurableObjectState, source: LiveSource) {
    this.#ctx = ctx;
    this.#source = source;
  }

  /** Accepts a subscriber (the actor's `fetch`): 426 without an upgrade, 404 without an execution. */
  async connect(request: Request): Promise<Response> {
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") {
      return Response.json(
        {
          code: "INVALID_ARGUMENT",
          message: "Live progress is a WebSocket: send the request with `Upgrade: websocket`.",
        },
        { status: 426 },
      );
    }
    const row = this.#source.row();
    if (!row) {
      return Response.json(
        {
          code: "EXECUTION_NOT_FOUND",
          message: "No such execution: it was never started, or its retention ran out.",
        },
        { status: 404 },
      );
    }
    const max = this.#source.maxSubscribers();
    if (this.#ctx.getWebSockets(LIVE_TAG).length >= max) {
      return Response.json(
        {
          code: "LIMIT_EXCEEDED",
          message: `This execution already has ${max} live subscribers, the most it takes; try again later.`,
        },
        { status: 429 },
      );
    }
    // Ended already: build its terminal event first, then (if it is still ended) accept, send
    // and close with no await in between, so nothing from a restart slips in.
    const ending = TERMINAL.has(row.status) ? await this.#terminalMessage(row) : null;
    const current = this.#source.row() ?? row;
    const ended = ending !== null && TERMINAL.has(current.status) && current.run === row.run;
    const { 0: client, 1: server } = new WebSocketPair();
    this.#ctx.acceptWebSocket(server, [LIVE_TAG]);
    const initial: InitialStateEvent = { type: "initial_state", state: this.#source.info(current) };
    server.send(JSON.stringify(initial));
    if (ended) {
      server.serializeAttachment({ ended: true });
      server.send(ending);
      server.close(1000, "The execution has ended.");
    }
    return new Response(null, { status: 101, webSocket: client });
  }

  /** A step finished (or a tracked execution reported one): its `progress` event. */
  stepDone(seq: number, step: string, output: () => unknown, index = seq): void {
    const sockets = this.#open();
    if (sockets.length === 0) return;
    const row = this.#source.row();
    if (!row) return;
    const { json, omitted } = jsonIfSmall(output(), MAX_LIVE_OUTPUT_BYTES);
    const head = JSON.stringify({
      type: "progress",
      executionId: row.execution_id,
      step,
      stepIndex: index,
      totalSteps: row.total_steps,
      ...(omitted ? { outputOmitted: true } : {}),
      timestamp: this.#source.now(),
    } satisfies ProgressEvent);
    broadcast(sockets, json === undefined ? head : `${head.slice(0, -1)},"output":${json}}`);
  }

  /** The terminal event goes to the sockets open now (a later one gets it from `connect`). */
  ended(): void {
    const sockets = this.#open();
    const row = this.#source.row();
    if (sockets.length === 0 || !row) return;
    // Marked now, before the await below: a restart's progress never reaches them.
    for (const ws of sockets) ws.serializeAttachment({ ended: true });
    void this.#terminalMessage(row).then((message) => {
      broadcast(sockets, message);
      for (const ws of sockets) {
        try {
          ws.close(1000, "The execution has ended.");
        } catch {
          // Closed by the client meanwhile.
        }
      }
    });
  }

  /** Sockets that have not had (and are not getting) their terminal event. */
  #open(): WebSocket[] {
    return this.#ctx
      .getWebSockets(LIVE_TAG)
      .filter((ws) => !(ws.deserializeAttachment() as { ended?: boolean } | null)?.ended);
  }

  async #terminalMessage(row: ExecutionRow): Promise<string> {
    const base = { executionId: row.execution_id, timestamp: row.ended_at ?? this.#source.now() };
    if (row.status === "completed") {
      let result: unknown = OMITTED;
      try {
        result = await this.#source.readOutput();
      } catch {
        // Unreadable: leave it out; result() reports the error.
      }
      const { json, omitted } = jsonIfSmall(result, MAX_LIVE_RESULT_BYTES);
      const head = JSON.stringify({
        type: "completed",
        ...base,
        ...(omitted ? { resultOmitted: true } : {}),
      } satisfies CompletedEvent);
      return json === undefined ? head : `${head.slice(0, -1)},"result":${json}}`;
    }
    if (row.status === "cancelled") {
      return JSON.stringify({ type: "cancelled", ...base } satisfies CancelledEvent);
    }
    const error = row.error ? parseError(row.error) : null;
    return JSON.stringify({
      type: "failed",
      ...base,
      error: error?.message ?? `The execution ${row.status}.`,
      code: error?.code ?? (row.status === "timed_out" ? "TIMED_OUT" : "FAILED"),
      step: error?.step ?? null,
    } satisfies FailedEvent);
  }
}

/** Sends `message` to every socket; a socket closing meanwhile is skipped. */
function broadcast(sockets: WebSocket[], message: string): void {
  for (const ws of sockets) {
    try {
      ws.send(message);
    } catch {
      // Closed by the client meanwhile.
    }
  }
}

/** Answers a subscriber's close with a close (1005/1006, which may not be sent, as 1000). */
export function closeBack(ws: WebSocket, code: number, reason: string): void {
  try {
    ws.close(code === 1005 || code === 1006 ? 1000 : code, reason);
  } catch {
    // Already closed.
  }
}
