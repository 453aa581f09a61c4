/**
 * Values as the dashboard shows them: JSON, with what JSON cannot hold tagged (`{"$map": …}`,
 * `{"$date": …}` …) and anything larger than its budget replaced by a note of its size.
 */

/** Largest JSON of one value the dashboard sends (an input, an output, an event payload). */
export const DISPLAY_BYTES = 256 * 1024;
/** Largest JSON of one step output in the journal table (the page shows many). */
export const DISPLAY_STEP_BYTES = 16 * 1024;

/** Nodes of a value {@link toJsonSafe} visits at most (shared parts count each time seen). */
const MAX_NODES = 100_000;

/**
 * A JSON-safe form of a codec value (Map, Set, Date, BigInt, binary, undefined, NaN ...). A
 * cycle becomes `{"$cycle": true}`; past {@link MAX_NODES} nodes (a value whose parts are shared
 * many times over), the rest becomes `{"$omitted": …}`.
 */
export function toJsonSafe(value: unknown): unknown {
  let nodes = 0;
  const path = new Set<object>();
  const visit = (v: unknown): unknown => {
    if (++nodes > MAX_NODES) return { $omitted: "too many parts to show" };
    if (v === undefined) return { $undefined: true };
    if (v === null || typeof v === "string" || typeof v === "boolean") return v;
    if (typeof v === "number") return Number.isFinite(v) ? v : { $number: String(v) };
    if (typeof v === "bigint") return { $bigint: v.toString() };
    if (typeof v !== "object") return { $omitted: typeof v };
    if (v instanceof Date) {
      return { $date: Number.isNaN(v.getTime()) ? "Invalid Date" : v.toISOString() };
    }
    if (ArrayBuffer.isView(v) || v instanceof ArrayBuffer) {
      return { $binary: `${v.constructor.name}(${v.byteLength} bytes)` };
    }
    if (v instanceof Error) return { $error: { name: v.name, message: v.message } };
    if (path.has(v)) return { $cycle: true };
    path.add(v);
    try {
      if (v instanceof Map) return { $map: [...v].map(([k, x]) => [visit(k), visit(x)]) };
      if (v instanceof Set) return { $set: [...v].map(visit) };
      if (Array.isArray(v)) return v.map(visit);
      // A null prototype: a key named "__proto__" stays a key.
      const out: Record<string, unknown> = Object.create(null);
      for (const [k, x] of Object.entries(v)) out[k] = visit(x);
      return out;
    } finally {
      path.delete(v);
    }
  };
  return visit(value);
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
