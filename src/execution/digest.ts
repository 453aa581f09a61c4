import { sha256Hex } from "../foundation/bindings.ts";
import { encodeText } from "../foundation/codec.ts";

/**
 * A stable digest of a start's workflow and input, to tell a repeated start (same digest) from
 * a conflicting one. Plain objects' key order does not matter; Map and array order does.
 */
export async function inputDigest(workflow: string, input: unknown): Promise<string> {
  const text = `${workflow}\u0000${encodeText(canonical(input))}`;
  return await sha256Hex(text);
}

/** A copy of `value` with plain objects' keys sorted (Map and array order is meaningful; kept). */
function canonical(value: unknown, seen = new Map<object, unknown>()): unknown {
  if (typeof value !== "object" || value === null) return value;
  if (seen.has(value)) return seen.get(value);
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    seen.set(value, out);
    for (const item of value) out.push(canonical(item, seen));
    return out;
  }
  if (Object.getPrototypeOf(value) !== Object.prototype && Object.getPrototypeOf(value) !== null) {
    return value;
  }
  const out: Record<string, unknown> = {};
  seen.set(value, out);
  for (const key of Object.keys(value).sort())
    out[key] = canonical((value as Record<string, unknown>)[key], seen);
  return out;
}
