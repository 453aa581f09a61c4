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
   * `"batch"`: one HTTP request (Node 18+ or any browser, no WebSocket needed) carrying every
   * call made before the first `await`; the session ends when they return, so await them
   * together (`await Promise.all([api.status(a), api.status(b)])`) — a call made but not awaited
   * before that first `await` fails with "Batch RPC request ended".
   */
  transport?: "websocket" | "batch";
  /**
   * The WebSocket class to use (default: the runtime's global `WebSocket`). Node 20 has none:
   * pass one (e.g. `import WebSocket from "ws"`), or use `transport: "batch"`. It is given the
   * token as `new WebSocket(url, { headers: { Authorization } })`, as `ws` takes it.
   */
  WebSocket?: new (
    url: string,
    ...rest: never[]
  ) => unknown;
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
  if (!/^(http|ws)s?:$/.test(target.protocol)) {
    return invalidArgument("url", "must be an absolute http(s) or ws(s) URL", String(url));
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
  const global = globalThis as { WebSocket?: unknown };
  const Socket = (options.WebSocket ?? global.WebSocket) as
    | (new (
        url: string,
        options?: unknown,
      ) => WebSocket)
    | undefined;
  if (!Socket) {
    return invalidArgument(
      "WebSocket",
      'is not built into this runtime (Node 20): pass options.WebSocket (the "ws" package), or use transport: "batch"',
      undefined,
    );
  }
  // Node's WebSocket and the "ws" package take headers (the token stays out of the URL);
  // browsers', Deno's and Workers' do not. Node 21+ says so in navigator.userAgent; Node 20 has
  // no navigator.
  const agent = (globalThis as { navigator?: { userAgent?: string } }).navigator?.userAgent;
  const node =
    options.WebSocket !== undefined ||
    (agent === undefined
      ? typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions
          ?.node === "string"
      : agent.startsWith("Node.js"));
  let socket: WebSocket;
  if (options.token && node) {
    socket = new Socket(target.href, { headers: { Authorization: `Bearer ${options.token}` } });
  } else {
    if (options.token) target.searchParams.set("token", options.token);
    socket = new Socket(target.href);
  }
  // capnweb reads the global WebSocket's constants when it takes the socket: lend it the class
  // given for the call (Node 20 has no global WebSocket), and take it back at once.
  const lend = global.WebSocket === undefined;
  if (lend) global.WebSocket = Socket;
  try {
    return newWebSocketRpcSession<Api & object>(socket) as GatewayStub<Api>;
  } finally {
    if (lend) delete global.WebSocket;
  }
}
