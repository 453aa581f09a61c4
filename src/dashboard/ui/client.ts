/** The dashboard API from the page: the token (kept for this tab only), errors with codes. */

const TOKEN_KEY = "baton.dashboard.token";

/** An API error with the server's stable code (`UNAUTHORIZED`, `EXECUTION_FINISHED` …). */
export class ApiError extends Error {
  readonly code: string;
  readonly status: number;
  /** On a 401: whether the dashboard takes a token (`token`) or its own hook decides (`hook`). */
  readonly auth: string | null;
  constructor(code: string, message: string, status: number, auth: string | null = null) {
    super(message);
    this.code = code;
    this.status = status;
    this.auth = auth;
  }
}

export class Client {
  readonly base: string;
  /** How the last 401 said to sign in: `token`, or `hook` (the app's own sign-in decides). */
  auth: string | null = null;

  constructor(base: string) {
    this.base = base;
  }

  get token(): string | null {
    return sessionStorage.getItem(TOKEN_KEY);
  }

  set token(value: string | null) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  }

  get<T>(path: string, params?: Record<string, string | number | undefined>): Promise<T> {
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(params ?? {})) {
      if (v !== undefined && v !== "") query.set(k, String(v));
    }
    const search = query.toString();
    return this.#call<T>("GET", `${path}${search ? `?${search}` : ""}`);
  }

  post<T>(path: string, body?: unknown): Promise<T> {
    return this.#call<T>("POST", path, body);
  }

  async #call<T>(method: string, path: string, body?: unknown): Promise<T> {
    // The token goes in a header (never a cookie another site's page could make us send), and
    // X-Baton-Dashboard marks the call as this page's own.
    const headers: Record<string, string> = { "X-Baton-Dashboard": "1" };
    const token = this.token;
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response: Response;
    try {
      response = await fetch(`${this.base}/api${path}`, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        credentials: "same-origin",
      });
    } catch (error) {
      throw new ApiError("NETWORK", `The Worker did not answer: ${(error as Error).message}`, 0);
    }
    const text = await response.text();
    let data: unknown = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      // not JSON
    }
    if (!response.ok) {
      if (response.status === 401) this.auth = response.headers.get("X-Baton-Auth");
      const e = (data ?? {}) as { code?: string; message?: string };
      throw new ApiError(
        e.code ?? `HTTP_${response.status}`,
        e.message ?? `${response.status} ${response.statusText}`,
        response.status,
        response.headers.get("X-Baton-Auth"),
      );
    }
    return data as T;
  }

  /**
   * Opens execution `id`'s live progress. The token travels as a WebSocket subprotocol (a
   * browser's WebSocket cannot send headers), never in the URL.
   */
  live(id: string, onEvent: (event: { type: string }) => void, onState: (open: boolean) => void) {
    const url = new URL(
      `${this.base}/api/executions/${encodeURIComponent(id)}/live`,
      location.href,
    );
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const protocols = ["baton.dashboard"];
    const token = this.token;
    if (token) {
      const bytes = new TextEncoder().encode(token);
      const b64 = btoa(String.fromCharCode(...bytes))
        .replaceAll("+", "-")
        .replaceAll("/", "_")
        .replace(/=+$/, "");
      protocols.push(`baton.bearer.${b64}`);
    }
    const socket = new WebSocket(url, protocols);
    socket.addEventListener("open", () => onState(true));
    socket.addEventListener("close", () => onState(false));
    socket.addEventListener("message", (message) => {
      try {
        onEvent(JSON.parse(String(message.data)) as { type: string });
      } catch {
        // not an event
      }
    });
    return () => socket.close();
  }
}
