/**
 * Small helpers shared by Baton's actors and clients: finding a Durable Object namespace in a
 * Worker's env, and the hashing and text encodings they use. Internal (not exported by the
 * package).
 */
import { BatonError, type ErrorDetails } from "./errors.ts";

/** The Durable Object namespace bound as `binding` in `env`, or `null` if there is none. */
export function findNamespace<T extends Rpc.DurableObjectBranded | undefined = undefined>(
  env: unknown,
  binding: string | undefined,
): DurableObjectNamespace<T> | null {
  const ns =
    binding === undefined ? undefined : (env as Record<string, unknown> | undefined)?.[binding];
  return typeof (ns as { getByName?: unknown } | undefined)?.getByName === "function"
    ? (ns as DurableObjectNamespace<T>)
    : null;
}

/**
 * The Durable Object namespace bound as `binding` in `env`.
 *
 * @throws BatonError `INVALID_ARGUMENT` with `message` (and `details`) if there is none.
 */
export function requireNamespace<T extends Rpc.DurableObjectBranded | undefined = undefined>(
  env: unknown,
  binding: string | undefined,
  message: string,
  details: ErrorDetails = { binding: binding ?? null },
): DurableObjectNamespace<T> {
  const ns = findNamespace<T>(env, binding);
  if (!ns) throw new BatonError("INVALID_ARGUMENT", message, details);
  return ns;
}

/** SHA-256 of `text`'s UTF-8, as lowercase hex (the first `bytes` bytes of it, default all). */
export async function sha256Hex(text: string, bytes = 32): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)),
  );
  return Array.from(digest.subarray(0, bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Base64url without padding. */
export function base64url(bytes: Uint8Array): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}
