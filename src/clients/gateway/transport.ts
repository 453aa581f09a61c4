import { RpcSession, type RpcSessionOptions, type RpcTransport, WebSocketTransport } from "capnweb";
import type { ResolvedLimits } from "./limits.ts";

/**
 * Serves `api` over one HTTP batch within the limits. Before anything runs: 413 for a body over
 * `maxMessageBytes` or one that plainly makes more calls than `callsPerBatch`, 400 for a batch
 * that is not Cap'n Web (never an uncaught 500). After: 413 when the answers pass
 * `responseBytesPerBatch` — the calls have run, their answers are withheld.
 */
export async function serveBatch(
  request: Request,
  api: object,
  limits: ResolvedLimits,
  options: RpcSessionOptions,
): Promise<Response> {
  const body = await readBody(request, limits.maxMessageBytes);
  if (body === null) {
    return tooMuch(`The batch is over ${limits.maxMessageBytes} bytes; send smaller batches.`);
  }
  const lines = body === "" ? [] : body.split("\n");
  let calls = 0;
  for (const line of lines) {
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch {
      message = undefined;
    }
    if (!Array.isArray(message) || typeof message[0] !== "string") {
      return Response.json(
        {
          code: "INVALID_ARGUMENT",
          message:
            "The request is not a Cap'n Web batch: every line must be a message (a JSON array).",
        },
        { status: 400 },
      );
    }
    if (message[0] === "push" || message[0] === "stream") calls++;
  }
  if (calls > limits.callsPerBatch) {
    return tooMuch(`The batch makes ${calls} calls; the limit is ${limits.callsPerBatch}.`);
  }
  const transport = new BatchTransport(lines, limits.responseBytesPerBatch);
  const session = new RpcSession(transport, api, {
    ...options,
    limits: { maxMessageSize: limits.maxMessageBytes },
  });
  try {
    await transport.allReceived;
    await session.drain();
  } catch (error) {
    if (!transport.exceeded) {
      return Response.json(
        {
          code: "INVALID_ARGUMENT",
          message: `The request is not a valid Cap'n Web batch: ${error instanceof Error ? error.message : String(error)}`,
        },
        { status: 400 },
      );
    }
  }
  if (transport.exceeded) {
    return tooMuch(
      `The batch's answers pass ${limits.responseBytesPerBatch} bytes: its calls ran, but their answers are withheld. Read big values in batches of their own.`,
    );
  }
  return new Response(transport.body());
}

/** Serves `api` over a WebSocket session within the limits (closed with 1008 past them). */
export function serveWebSocket(
  api: object,
  limits: ResolvedLimits,
  options: RpcSessionOptions,
): Response {
  const { 0: client, 1: server } = new WebSocketPair();
  server.accept();
  new RpcSession(new SessionTransport(server, limits), api, {
    ...options,
    limits: { maxMessageSize: limits.maxMessageBytes },
  });
  return new Response(null, { status: 101, webSocket: client });
}

function tooMuch(message: string): Response {
  return Response.json({ code: "LIMIT_EXCEEDED", message }, { status: 413 });
}

/** The request's body as text, or `null` past `maxBytes` (read no further than that). */
async function readBody(request: Request, maxBytes: number): Promise<string | null> {
  const declared = Number(request.headers.get("Content-Length") ?? Number.NaN);
  if (declared > maxBytes) return null;
  if (!request.body) return "";
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => {});
      return null;
    }
    chunks.push(value);
  }
  const decoder = new TextDecoder();
  return chunks.map((chunk) => decoder.decode(chunk, { stream: true })).join("") + decoder.decode();
}

/** UTF-8 length of `text`, without encoding it. */
function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0x7f) bytes += code > 0x7ff && (code < 0xd800 || code > 0xdfff) ? 2 : 1;
  }
  return bytes;
}

/** The server end of an HTTP batch, counting the bytes of its answers. */
class BatchTransport implements RpcTransport {
  readonly #incoming: string[];
  readonly #outgoing: string[] = [];
  readonly #maxBytes: number;
  #bytes = 0;
  #done!: () => void;
  #fail!: (reason: unknown) => void;
  /** Resolves once every incoming message was taken; rejects if the session aborts. */
  readonly allReceived = new Promise<void>((resolve, reject) => {
    this.#done = resolve;
    this.#fail = reject;
  });
  exceeded = false;

  constructor(incoming: string[], maxBytes: number) {
    this.#incoming = incoming;
    this.#maxBytes = maxBytes;
    this.allReceived.catch(() => {});
  }

  send(message: string): void {
    if (this.exceeded) return;
    this.#bytes += utf8Length(message);
    if (this.#bytes > this.#maxBytes) {
      this.exceeded = true;
      this.#outgoing.length = 0;
      this.#fail(new Error("response budget exceeded"));
      return;
    }
    this.#outgoing.push(message);
  }

  async receive(): Promise<string> {
    const message = this.#incoming.shift();
    if (message !== undefined) return message;
    this.#done();
    return new Promise<string>(() => {});
  }

  abort(reason: unknown): void {
    this.#fail(reason);
  }

  body(): string {
    return this.#outgoing.join("\n");
  }
}

/** capnweb's WebSocket transport, within a response budget (calls are counted by the API). */
class SessionTransport implements RpcTransport {
  readonly #socket: WebSocket;
  readonly #inner: WebSocketTransport;
  readonly #limits: ResolvedLimits;
  #bytes = 0;
  #closed = false;

  constructor(socket: WebSocket, limits: ResolvedLimits) {
    this.#socket = socket;
    this.#inner = new WebSocketTransport(socket);
    this.#limits = limits;
  }

  send(message: string): void {
    if (this.#closed) return;
    this.#bytes += utf8Length(message);
    if (this.#bytes > this.#limits.responseBytesPerSession) {
      this.#close(`response budget of ${this.#limits.responseBytesPerSession} bytes used up`);
      return;
    }
    this.#inner.send(message);
  }

  receive(): Promise<string> {
    return this.#inner.receive();
  }

  abort(reason: unknown): void {
    this.#closed = true;
    this.#inner.abort(reason);
  }

  /** Ends the session: the client's pending calls fail with the close reason; it may reconnect. */
  #close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#socket.close(1008, `LIMIT_EXCEEDED: ${reason}`.slice(0, 123));
    } catch {
      // Closed already.
    }
  }
}
