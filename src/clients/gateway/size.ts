import { BatonError } from "../../foundation/errors.ts";

/**
 * Refuses a value whose serialized form would pass `maxBytes` (roughly: JSON-ish bytes), before
 * it is serialized. A stored value can share references (a few KB of devalue can describe a
 * graph whose tree form is astronomically large), and capnweb writes values as trees: this walk
 * counts the tree and stops as soon as it passes the limit, so it never costs more than the
 * limit allows.
 *
 * @throws BatonError `PAYLOAD_TOO_LARGE`.
 */
export function checkTreeSize(value: unknown, maxBytes: number, what: string): void {
  let bytes = 0;
  const stack: unknown[] = [value];
  const charge = (n: number) => {
    bytes += n;
    if (bytes > maxBytes) {
      throw new BatonError(
        "PAYLOAD_TOO_LARGE",
        `${what} is over ${maxBytes} bytes as sent; read it from a Worker, or in smaller pieces.`,
        { limit: maxBytes },
      );
    }
  };
  while (stack.length > 0) {
    const item = stack.pop();
    charge(sizeOf(item));
    if (typeof item !== "object" || item === null || ArrayBuffer.isView(item)) continue;
    // A container is charged for its entries before they are pushed: the walk never holds or
    // visits more than the limit allows, however often entries are shared.
    if (item instanceof Map) {
      charge(item.size * 2);
      for (const [key, entry] of item) stack.push(key, entry);
    } else if (item instanceof Set || Array.isArray(item)) {
      charge(item instanceof Set ? item.size : item.length);
      for (const entry of item) stack.push(entry);
    } else if (!(item instanceof Date) && !(item instanceof ArrayBuffer)) {
      const entries = Object.entries(item);
      charge(entries.length);
      for (const [key, entry] of entries) {
        charge(key.length + 4);
        stack.push(entry);
      }
    }
  }
}

function sizeOf(item: unknown): number {
  if (typeof item === "string") return item.length + 2;
  if (item instanceof ArrayBuffer) return Math.ceil((item.byteLength * 4) / 3);
  if (ArrayBuffer.isView(item)) return Math.ceil((item.byteLength * 4) / 3);
  return 8;
}
