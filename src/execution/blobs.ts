import { decode } from "../foundation/codec.ts";
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

  /** A step's output, decoded. */
  readStepOutput(row: StepRow): Promise<unknown> {
    return this.#read(row.output as ArrayBuffer | string | null);
  }

  /** The execution's input, decoded (read here: rows are read without their blobs). */
  readInput(): Promise<unknown> {
    return this.#read(
      this.#sql.value<ArrayBuffer | string>("SELECT input FROM _baton_execution WHERE id = 1") ??
        null,
    );
  }

  /** The execution's output, decoded. */
  readOutput(): Promise<unknown> {
    return this.#read(
      this.#sql.value<ArrayBuffer | string>("SELECT output FROM _baton_execution WHERE id = 1") ??
        null,
    );
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

  async #read(stored: ArrayBuffer | string | null): Promise<unknown> {
    if (stored === null) return undefined;
    if (typeof stored === "string") {
      if (stored.startsWith("event:")) {
        const event = this.#sql.one<EventRow>(
          "SELECT * FROM _baton_events WHERE id = ?",
          Number(stored.slice(6)),
        );
        if (!event) return undefined;
        return {
          type: event.type,
          payload: await decode(event.payload),
          receivedAt: event.received_at,
        };
      }
      const bytes = this.#values.getEncoded("execution", stored.slice(4));
      return bytes === undefined ? undefined : decode(bytes);
    }
    return decode(stored);
  }
}
