import { decode, encode } from "./codec.ts";
import { BatonError, invalidArgument } from "./errors.ts";
import type { Sql } from "./sql.ts";

/**
 * Bytes per stored chunk. Durable Object SQLite rows are limited to 2 MB; a chunk stays well under
 * that with room for its key columns.
 *
 * @example
 * ```ts
 * const { chunks } = await values.put("blobs", "a", new Uint8Array(5_000_000)); // chunks ≥ 1
 * ```
 */
export const CHUNK_BYTES = 1_900_000;

/**
 * Largest value (after encoding and compression) a {@link ValueStore} accepts: 32 MiB. Encoding,
 * compression and reassembly hold several copies in memory, and an isolate has 128 MB.
 *
 * @example
 * ```ts
 * if (bytes.byteLength > MAX_VALUE_BYTES) await bucket.put(key, bytes); // keep it in R2
 * ```
 */
export const MAX_VALUE_BYTES = 32 * 1024 * 1024;

const TABLE = "_baton_values";

/** Framework migration that creates the chunked value table. */
export const VALUES_TABLE_SQL = `CREATE TABLE ${TABLE} (
  ns TEXT NOT NULL,
  key TEXT NOT NULL,
  seq INTEGER NOT NULL CHECK (seq >= 0),
  chunks INTEGER NOT NULL CHECK (chunks > 0),
  bytes BLOB NOT NULL,
  PRIMARY KEY (ns, key, seq)
) STRICT, WITHOUT ROWID`;

/** What {@link ValueStore.put} wrote. */
export interface PutResult {
  /** Encoded size in bytes (after compression). */
  bytes: number;
  /** Rows used. */
  chunks: number;
}

/**
 * Stores codec-encoded values of any size in the object's SQLite, split across rows below the
 * 2 MB row limit and reassembled on read. A write replaces the whole value atomically: a reader
 * never sees a mix of old and new chunks, and a value that cannot be encoded changes nothing.
 *
 * @example
 * ```ts
 * const values = new ValueStore(sql);
 * await values.put("reports", "2026-11", { rows: new Map([["a", 1]]) });
 * const report = await values.get<{ rows: Map<string, number> }>("reports", "2026-11");
 * ```
 */
export class ValueStore {
  readonly #sql: Sql;
  /** Puts in flight per key: writes to one key apply in call order even though encoding is async. */
  readonly #writes = new Map<string, Promise<unknown>>();

  constructor(sql: Sql) {
    this.#sql = sql;
  }

  /** Encodes and stores `value` under (`ns`, `key`), replacing what was there. */
  async put(ns: string, key: string, value: unknown): Promise<PutResult> {
    checkKey(ns, key);
    // Encode fully before touching storage: an encoding error leaves the old value intact.
    const encoding = encode(value);
    const slot = `${ns}\u0000${key}`;
    const previous = this.#writes.get(slot);
    const write = (async () => {
      const bytes = await encoding;
      if (previous) await previous.catch(() => {});
      return this.putEncoded(ns, key, bytes);
    })();
    this.#writes.set(slot, write);
    try {
      return await write;
    } finally {
      if (this.#writes.get(slot) === write) this.#writes.delete(slot);
    }
  }

  /** Stores already-encoded bytes (from `encode`) synchronously and atomically. */
  putEncoded(ns: string, key: string, bytes: Uint8Array): PutResult {
    checkKey(ns, key);
    if (bytes.byteLength > MAX_VALUE_BYTES) {
      throw new BatonError(
        "PAYLOAD_TOO_LARGE",
        `Value is ${bytes.byteLength} bytes after encoding; the limit is ${MAX_VALUE_BYTES} bytes (32 MiB). Store large blobs in R2 and keep a reference.`,
        { bytes: bytes.byteLength, limit: MAX_VALUE_BYTES },
      );
    }
    const chunks = Math.max(1, Math.ceil(bytes.byteLength / CHUNK_BYTES));
    this.#sql.transaction(() => {
      this.#sql.run(`DELETE FROM ${TABLE} WHERE ns = ? AND key = ?`, ns, key);
      for (let seq = 0; seq < chunks; seq++) {
        const part = bytes.subarray(seq * CHUNK_BYTES, (seq + 1) * CHUNK_BYTES);
        this.#sql.run(
          `INSERT INTO ${TABLE} (ns, key, seq, chunks, bytes) VALUES (?, ?, ?, ?, ?)`,
          ns,
          key,
          seq,
          chunks,
          part,
        );
      }
    });
    return { bytes: bytes.byteLength, chunks };
  }

  /** The value stored under (`ns`, `key`), or `undefined`. */
  async get<T = unknown>(ns: string, key: string): Promise<T | undefined> {
    const bytes = this.getEncoded(ns, key);
    return bytes === undefined ? undefined : decode<T>(bytes);
  }

  /** The encoded bytes stored under (`ns`, `key`), reassembled, or `undefined`. */
  getEncoded(ns: string, key: string): Uint8Array | undefined {
    checkKey(ns, key);
    const rows = this.#sql.all<{ seq: number; chunks: number; bytes: ArrayBuffer }>(
      `SELECT seq, chunks, bytes FROM ${TABLE} WHERE ns = ? AND key = ? ORDER BY seq`,
      ns,
      key,
    );
    const first = rows[0];
    if (!first) return undefined;
    if (rows.length !== first.chunks || rows.some((row, i) => row.seq !== i)) {
      throw new BatonError(
        "STORAGE_ERROR",
        `Stored value ${ns}/${key} is incomplete: expected ${first.chunks} chunk(s), found ${rows.length}.`,
        { ns, key, expected: first.chunks, found: rows.length },
      );
    }
    if (rows.length === 1) return new Uint8Array(first.bytes);
    const total = rows.reduce((sum, row) => sum + row.bytes.byteLength, 0);
    const out = new Uint8Array(total);
    let offset = 0;
    for (const row of rows) {
      out.set(new Uint8Array(row.bytes), offset);
      offset += row.bytes.byteLength;
    }
    return out;
  }

  /** True if a value is stored under (`ns`, `key`). */
  has(ns: string, key: string): boolean {
    checkKey(ns, key);
    return (
      this.#sql.one(`SELECT 1 AS x FROM ${TABLE} WHERE ns = ? AND key = ? AND seq = 0`, ns, key) !==
      undefined
    );
  }

  /** Deletes the value; returns whether one existed. */
  delete(ns: string, key: string): boolean {
    checkKey(ns, key);
    return this.#sql.run(`DELETE FROM ${TABLE} WHERE ns = ? AND key = ?`, ns, key) > 0;
  }

  /** Keys stored in `ns`, in key order. */
  keys(ns: string): string[] {
    checkKey(ns, "-");
    return this.#sql
      .all<{ key: string }>(`SELECT key FROM ${TABLE} WHERE ns = ? AND seq = 0 ORDER BY key`, ns)
      .map((row) => row.key);
  }

  /** Deletes every value in `ns`; returns how many values were deleted. */
  clear(ns: string): number {
    checkKey(ns, "-");
    const count =
      this.#sql.value<number>(`SELECT COUNT(*) FROM ${TABLE} WHERE ns = ? AND seq = 0`, ns) ?? 0;
    this.#sql.run(`DELETE FROM ${TABLE} WHERE ns = ?`, ns);
    return count;
  }
}

function checkKey(ns: string, key: string): void {
  if (typeof ns !== "string" || ns.length === 0 || ns.length > 256) {
    invalidArgument("ns", "must be a string of 1 to 256 characters", ns);
  }
  if (typeof key !== "string" || key.length === 0 || key.length > 1024) {
    invalidArgument("key", "must be a string of 1 to 1024 characters", key);
  }
}
