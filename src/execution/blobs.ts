import { decodeSized } from "../foundation/codec.ts";
import type { Sql } from "../foundation/sql.ts";
import type { ValueStore } from "../foundation/values.ts";
import type { EventRow, StepRow } from "./schema.ts";

/** Outputs and inputs larger than this (encoded) are stored in the value store, not inline. */
const INLINE_MAX = 1_000_000;

/**
 * Where an execution's values live: the input, the output and step outputs are codec bytes in
 * their row, or — past {@link INLINE_MAX} — `ref:<key>` into the value store; a wait's output is
 * `event:<id>`, the consumed event's row (so a payload is stored once).
 */
export class Blobs {
  readonly #sql: Sql;
  readonly #values: ValueStore;

  constructor(sql: Sql, values: ValueStore) {
    this.#sql = sql;
    this.#values = values;
  }

  /** Inline bytes, or a reference to the value store for big ones. */
  store(key: string, bytes: Uint8Array): Uint8Array | string {
    if (bytes.byteLength <= INLINE_MAX) return bytes;
    this.#values.putEncoded("execution", key, bytes);
    return `ref:${key}`;
  }

  /**
   * Stores `bytes` as {@link Blobs.store} does and hands the stored form to `write` (the row that
   * refers to it). Inline bytes need nothing more; bytes put aside in the value store are written
   * in one transaction with that row, so a failed row write leaves no orphan behind.
   */
  storeWith<T>(key: string, bytes: Uint8Array, write: (stored: Uint8Array | string) => T): T {
    if (bytes.byteLength <= INLINE_MAX) return write(bytes);
    return this.#sql.transaction(() => write(this.store(key, bytes)));
  }

  /** A step's output, decoded. */
  async readStepOutput(row: StepRow): Promise<unknown> {
    return (await this.#read(row.output as ArrayBuffer | string | null)).value;
  }

  /** A step's output, decoded, with its encoded size before compression (for page budgets). */
  readStepOutputSized(row: StepRow): Promise<{ value: unknown; bytes: number }> {
    return this.#read(row.output as ArrayBuffer | string | null);
  }

  /** The execution's input, decoded (read here: rows are read without their blobs). */
  async readInput(): Promise<unknown> {
    const stored = this.#sql.value<ArrayBuffer | string>(
      "SELECT input FROM _baton_execution WHERE id = 1",
    );
    return (await this.#read(stored ?? null)).value;
  }

  /** The execution's output, decoded. */
  async readOutput(): Promise<unknown> {
    const stored = this.#sql.value<ArrayBuffer | string>(
      "SELECT output FROM _baton_execution WHERE id = 1",
    );
    return (await this.#read(stored ?? null)).value;
  }

  /** Deletes a value that {@link Blobs.store} put aside (`ref:<key>`); inline values need nothing. */
  deleteStored(stored: string): void {
    if (stored.startsWith("ref:")) this.#values.delete("execution", stored.slice(4));
  }

  /** Deletes every stored value of the execution (retention). */
  clear(): void {
    this.#values.clear("execution");
  }

  /** Deletes every stored value but the input (a restart). */
  clearAllButInput(): void {
    for (const key of this.#values.keys("execution")) {
      if (key !== "input") this.#values.delete("execution", key);
    }
  }

  async #read(stored: ArrayBuffer | string | null): Promise<{ value: unknown; bytes: number }> {
    const none = { value: undefined, bytes: 0 };
    if (stored === null) return none;
    if (typeof stored === "string") {
      if (stored.startsWith("event:")) {
        const event = this.#sql.one<EventRow>(
          "SELECT * FROM _baton_events WHERE id = ?",
          Number(stored.slice(6)),
        );
        if (!event) return none;
        const payload = await decodeSized(event.payload);
        return {
          value: { type: event.type, payload: payload.value, receivedAt: event.received_at },
          bytes: payload.bytes,
        };
      }
      const bytes = this.#values.getEncoded("execution", stored.slice(4));
      return bytes === undefined ? none : decodeSized(bytes);
    }
    return decodeSized(stored);
  }
}
