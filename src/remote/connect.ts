import { newHttpBatchRpcSession, newWebSocketRpcSession, type RpcStub } from "capnweb";
import { invalidArgument } from "../foundation/errors.ts";

/** A capnweb stub of a gateway's API (`Api` is `BatonApi<[typeof yourWorkflows, ...]>`). */
export type GatewayStub<Api> = RpcStub<Api & object>;

/** Options of {@link connect}. */
export interface ConnectOptions {
  /**
   * The gateway's bearer token (its `auth: { secret }`). Over HTTP batch it goes in the
   * `Authorization` header; over a WebSocket, in a header where the runtime's WebSocket takes
   * headers (Node), else in the URL (`?token=`, which browsers require; it may show in logs).
   */
  token?: string;
  /**
   * `"websocket"` (default): one long session, needed for `subscribe`/`liveEvents`.
   * `"batch"`: the calls made before the first `await` go in one HTTP request (Node 18+ or any
   * browser, no WebSocket needed); the session ends when they return.
   */
  transport?: "websocket" | "batch";
  /**
   * The WebSocket class to use (default: the runtime's global `WebSocket`). Node 20 has none:
   * pass one (e.g. `import WebSocket from "ws"`), or use `transport: "batch"`.
   */
  WebSocket?: new (
    url: string,
    options?: unknown,
  ) => WebSocket;
  /** More headers for HTTP batch requests (ignored for WebSockets). */
  headers?: Record<string, string>;
}

/**
 * Opens a capnweb session to a Baton gateway and returns its typed API. `url` is the gateway's
 * path (`https://…/rpc`; for a WebSocket `http(s)` becomes `ws(s)`).
 *
 * @example
 * ```ts
 * const api = connect<Api>("https://example.com/rpc", { token });
 * const info = await api.status("o-1");
 * api[Symbol.dispose](); // ends a WebSocket session
 * ```
 * @throws BatonError `INVALID_ARGUMENT` for a bad URL, or a WebSocket session without a
 *   WebSocket class in this runtime.
 */
export function connect<Api>(url: string | URL, options: ConnectOptions = {}): GatewayStub<Api> {
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    return invalidArgument("url", "must be an absolute http(s) or ws(s) URL", url);
  }
  const transport = options.transport ?? "websocket";
  if (transport === "batch") {
    target.protocol = target.protocol.replace(/^ws/, "http");
    const headers = new Headers(options.headers);
    if (options.token) headers.set("Authorization", `Bearer ${options.token}`);
    return newHttpBatchRpcSession<Api & object>(
      new Request(target, { method: "POST", headers }),
    ) as GatewayStub<Api>;
  }
  if (transport !== "websocket") {
    return invalidArgument("transport", 'must be "websocket" or "batch"', transport);
  }
  target.protocol = target.protocol.replace(/^http/, "ws");
  const Socket =
    options.WebSocket ??
    (globalThis as { WebSocket?: new (url: string, options?: unknown) => WebSocket }).WebSocket;
  if (!Socket) {
    return invalidArgument(
      "WebSocket",
      'is not built into this runtime (Node 20): pass options.WebSocket (the "ws" package), or use transport: "batch"',
      undefined,
    );
  }
  const node =
    typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions
      ?.node === "string";
  let socket: WebSocket;
  if (options.token && node) {
    // Node's WebSocket (and "ws") take headers: the token stays out of the URL.
    socket = new Socket(target.href, { headers: { Authorization: `Bearer ${options.token}` } });
  } else {
    if (options.token) target.searchParams.set("token", options.token);
    socket = new Socket(target.href);
  }
  return newWebSocketRpcSession<Api & object>(socket) as GatewayStub<Api>;
}
