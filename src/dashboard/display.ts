/**
 * Values as the dashboard shows them: JSON, with what JSON cannot hold tagged (`{"$map": …}`,
 * `{"$date": …}` …) and anything larger than its budget replaced by a note of its size.
 */

/** Largest JSON of one value the dashboard sends (an input, an output, an event payload). */
export const DISPLAY_BYTES = 256 * 1024;
/** Largest JSON of one step output in the journal table (the page shows many). */
export const DISPLAY_STEP_BYTES = 16 * 1024;

/** A JSON-safe form of a codec value (Map, Set, Date, BigInt, binary, undefined, NaN ...). */
export function toJsonSafe(value: unknown, depth = 0): unknown {
  if (depth > 64) return { $omitted: "nested too deep to show" };
  if (value === undefined) return { $undefined: true };
  if (value === null || typeof value === "string" || typeof value === "boolean") return value;
  if (typeof value === "number") return Number.isFinite(value) ? value : { $number: String(value) };
  if (typeof value === "bigint") return { $bigint: value.toString() };
  if (value instanceof Date) {
    return { $date: Number.isNaN(value.getTime()) ? "Invalid Date" : value.toISOString() };
  }
  if (value instanceof Map) {
    return {
      $map: [...value].map(([k, v]) => [toJsonSafe(k, depth + 1), toJsonSafe(v, depth + 1)]),
    };
  }
  if (value instanceof Set) return { $set: [...value].map((v) => toJsonSafe(v, depth + 1)) };
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) {
    return { $binary: `${value.constructor.name}(${value.byteLength} bytes)` };
  }
  if (value instanceof Error) return { $error: { name: value.name, message: value.message } };
  if (Array.isArray(value)) return value.map((v) => toJsonSafe(v, depth + 1));
  if (typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = toJsonSafe(v, depth + 1);
    return out;
  }
  return { $omitted: typeof value };
}

/** {@link toJsonSafe}, or a note of its size when its JSON is over `budget` bytes. */
export function forDisplay(value: unknown, budget = DISPLAY_BYTES): unknown {
  const safe = toJsonSafe(value);
  const json = JSON.stringify(safe) ?? "null";
  const bytes = new TextEncoder().encode(json).byteLength;
  return bytes > budget
    ? { $omitted: `${bytes} bytes of JSON, more than the dashboard shows` }
    : safe;
}
