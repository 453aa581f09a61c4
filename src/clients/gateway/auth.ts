import { invalidArgument } from "../../foundation/errors.ts";

/** What `authorize` returns to refuse a request (401). */
export type Refusal = false | null | undefined;

/** How the gateway tells callers it may serve from anonymous ones. */
export type GatewayAuth<Env, P = true> =
  /**
   * A bearer token kept in a Worker secret (`wrangler secret put BATON_TOKEN`), named here.
   * Callers send `Authorization: Bearer <token>`, or (browsers, whose WebSockets cannot set
   * headers) `?token=<token>` on the URL. Compared in constant time. The principal is `true`.
   */
  | { secret: string }
  /**
   * Your own check (a session cookie, a JWT, mTLS ...): return who calls — the principal your
   * {@link GatewayPolicy} gets with every call (a user, a tenant; `true` will do) — or `false`,
   * `null` or `undefined` to refuse the request with 401. A throw refuses too.
   */
  | { authorize: (request: Request, env: Env) => P | Refusal | Promise<P | Refusal> }
  /** No authentication at all: only for local development or a private network. Principal `true`. */
  | { anonymous: true };

/**
 * The principal of an authorized request, or the response that refuses it (401, or 500).
 * `urlToken: false` refuses a token in the URL (`?token=`) even on a WebSocket upgrade.
 */
export async function authenticate<Env, P>(
  request: Request,
  env: Env,
  auth: GatewayAuth<Env, P>,
  options: { urlToken?: boolean } = {},
): Promise<{ principal: P } | { refused: Response }> {
  if ("anonymous" in auth) {
    return auth.anonymous === true
      ? { principal: true as P }
      : { refused: unauthorized("Not authorized.") };
  }
  if ("authorize" in auth) {
    let principal: P | Refusal = false;
    try {
      principal = await auth.authorize(request, env);
    } catch (error) {
      console.error("baton gateway: authorize threw; the request is refused", error);
      principal = false;
    }
    // Any falsy answer (false, null, undefined, 0, "") refuses.
    return principal ? { principal } : { refused: unauthorized("The request is not authorized.") };
  }
  const secret = (env as Record<string, unknown>)[auth.secret];
  if (typeof secret !== "string" || secret.length === 0) {
    // The name goes to the log only: a response must not echo configuration.
    console.error(
      `baton gateway: the secret named in auth.secret is not set in the env; set it with \`wrangler secret put <name>\` (or .dev.vars locally). Refusing every call.`,
    );
    return {
      refused: Response.json(
        { code: "UNAUTHORIZED", message: "The gateway's token is not configured." },
        { status: 500 },
      ),
    };
  }
  const header = request.headers.get("Authorization");
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  // Only a WebSocket upgrade (browsers cannot set its headers) may carry the token in the URL.
  const websocket =
    options.urlToken !== false && request.headers.get("Upgrade")?.toLowerCase() === "websocket";
  const presented =
    bearer?.[1] ?? (websocket ? new URL(request.url).searchParams.get("token") : null);
  if (!presented) {
    return { refused: unauthorized("A token is required: send `Authorization: Bearer <token>`.") };
  }
  return (await sameSecret(presented, secret))
    ? { principal: true as P }
    : { refused: unauthorized("The token is not valid.") };
}

function unauthorized(message: string): Response {
  return Response.json(
    { code: "UNAUTHORIZED", message },
    { status: 401, headers: { "WWW-Authenticate": 'Bearer realm="baton"' } },
  );
}

/** Constant-time comparison: both sides are hashed to equal lengths first. */
async function sameSecret(presented: string, secret: string): Promise<boolean> {
  const encoder = new TextEncoder();
  const [a, b] = await Promise.all([
    crypto.subtle.digest("SHA-256", encoder.encode(presented)),
    crypto.subtle.digest("SHA-256", encoder.encode(secret)),
  ]);
  return crypto.subtle.timingSafeEqual(a, b);
}

/** @throws BatonError `INVALID_ARGUMENT` unless `auth` is exactly one of the three forms. */
export function checkAuth(auth: unknown): void {
  const a = auth as Record<string, unknown> | undefined;
  const kinds =
    typeof a === "object" && a !== null
      ? [
          typeof a.secret === "string" && a.secret.length > 0,
          typeof a.authorize === "function",
          a.anonymous === true,
        ].filter(Boolean).length
      : 0;
  const ok = kinds === 1 && Object.keys(a as object).length === 1;
  if (!ok) {
    invalidArgument(
      "auth",
      "must be { secret: '<name of a Worker secret>' }, { authorize(request, env) } or, explicitly, { anonymous: true }",
      auth,
    );
  }
}
