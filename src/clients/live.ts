import { checkId } from "../foundation/errors.ts";

/**
 * Forwards a WebSocket upgrade request to execution `id`'s live progress (a Worker route).
 * Authenticate the request before calling it. Answers 426 without `Upgrade: websocket`, and 404
 * (JSON with code `EXECUTION_NOT_FOUND`) for an execution that does not exist.
 *
 * @example
 * ```ts
 * const match = /^\/executions\/([^/]+)\/live$/.exec(url.pathname);
 * if (match) return liveProgress(request, env.Executions, decodeURIComponent(match[1]));
 * // browser: new WebSocket(`wss://example.com/executions/${id}/live`).onmessage = (m) => JSON.parse(m.data)
 * ```
 */
export async function liveProgress(
  request: Request,
  ns: DurableObjectNamespace<
    Rpc.DurableObjectBranded & { fetch(request: Request): Promise<Response> }
  >,
  id: string,
): Promise<Response> {
  try {
    checkId(id, "The execution id");
  } catch (error) {
    return Response.json(
      { code: "INVALID_ARGUMENT", message: (error as Error).message },
      { status: 400 },
    );
  }
  if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") {
    return Response.json(
      {
        code: "INVALID_ARGUMENT",
        message: "Live progress is a WebSocket: send the request with `Upgrade: websocket`.",
      },
      { status: 426 },
    );
  }
  return ns.getByName(id).fetch(request);
}
