import { BatonError } from "./errors.ts";
import { injectSqlFault, sqlFaults } from "./sql-faults.ts";
import type { SqlParam, SqlRow, SqlStatements, SqlValue } from "./sql-types.ts";

export type { SqlParam, SqlRow, SqlValue };

/**
 * SQLite allows at most this many bound parameters in one statement on Durable Objects.
 *
 * @example
 * ```ts
 * for (const ids of chunkParams(allIds)) sql.run(`DELETE FROM t WHERE id IN (${placeholders(ids.length)})`, ...ids);
 * ```
 */
export const MAX_SQL_PARAMS = 100;

/**
 * A small typed wrapper over `ctx.storage.sql`. Rows are typed by the caller; a failing statement
 * throws a `STORAGE_ERROR` whose `details.statement` carries the SQL text (never the bound
 * values, which may be private).
 *
 * Statements are synchronous. Writes issued with no `await` between them commit together; wrap a
 * group in {@link Sql.transaction} when it must be all-or-nothing even if code in the middle throws.
 *
 * @example
 * ```ts
 * interface TodoRow { id: number; title: string; done: 0 | 1 }
 * const sql = new Sql(ctx.storage);
 * sql.run("INSERT INTO todos (title, done) VALUES (?, 0)", "write docs");
 * const open = sql.all<TodoRow>("SELECT * FROM todos WHERE done = 0 ORDER BY id");
 * const one = sql.one<TodoRow>("SELECT * FROM todos WHERE id = ?", 1); // TodoRow | undefined
 * ```
 */
export class Sql implements SqlStatements {
  readonly #storage: DurableObjectStorage;

  constructor(storage: DurableObjectStorage) {
    this.#storage = storage;
  }

  /** All rows of a query. */
  all<T extends SqlRow = SqlRow>(query: string, ...params: SqlParam[]): T[] {
    return this.#exec<T>(query, params).toArray();
  }

  /** The first row of a query, or `undefined` when it returns none. */
  one<T extends SqlRow = SqlRow>(query: string, ...params: SqlParam[]): T | undefined {
    const result = this.#exec<T>(query, params).next();
    return result.done ? undefined : result.value;
  }

  /** The first column of the first row (for `SELECT COUNT(*)`, `MAX(...)`), or `undefined`. */
  value<V extends SqlValue = SqlValue>(query: string, ...params: SqlParam[]): V | undefined {
    const cursor = this.#exec(query, params);
    for (const row of cursor.raw()) return row[0] as V;
    return undefined;
  }

  /** Runs a statement (or several separated by `;` when there are no params); returns rows written. */
  run(query: string, ...params: SqlParam[]): number {
    const cursor = this.#exec(query, params);
    // Drain so that every statement of a multi-statement string runs.
    for (const _ of cursor.raw()) {
      /* discard */
    }
    return cursor.rowsWritten;
  }

  /**
   * Runs `fn` in a synchronous transaction: if it throws, every write it made is rolled back.
   *
   * @example
   * ```ts
   * sql.transaction(() => {
   *   sql.run("UPDATE accounts SET balance = balance - 10 WHERE id = ?", from);
   *   sql.run("UPDATE accounts SET balance = balance + 10 WHERE id = ?", to);
   * });
   * ```
   */
  transaction<T>(fn: () => T): T {
    return this.#storage.transactionSync(() => {
      const result = fn();
      if (isThenable(result)) {
        // The transaction would commit before the async work runs: refuse, and roll back.
        throw new BatonError(
          "INVALID_ARGUMENT",
          "A SQL transaction callback must be synchronous (it returned a promise). Do async work before or after the transaction.",
        );
      }
      return result;
    });
  }

  /** Size of the object's database in bytes. */
  get databaseSize(): number {
    return this.#storage.sql.databaseSize;
  }

  #exec<T extends SqlRow>(query: string, params: SqlParam[]): SqlStorageCursor<T> {
    if (params.length > MAX_SQL_PARAMS) {
      throw new BatonError(
        "STORAGE_ERROR",
        `SQL statement binds ${params.length} parameters; Durable Object SQLite allows at most ${MAX_SQL_PARAMS}. Split the statement into batches.`,
        { statement: query, params: params.length, limit: MAX_SQL_PARAMS },
      );
    }
    try {
      // Test-only fault injection (sql-faults.ts): one branch on an empty Map in production.
      if (sqlFaults.size !== 0) injectSqlFault(this.#storage, query);
      return this.#storage.sql.exec<T>(query, ...params.map(toBinding));
    } catch (cause) {
      const reason = cause instanceof Error ? cause.message : String(cause);
      throw new BatonError(
        "STORAGE_ERROR",
        `SQL statement failed: ${reason}. Statement: ${query.trim()}`,
        { statement: query, reason },
        { cause },
      );
    }
  }
}

function isThenable(value: unknown): boolean {
  return (
    (typeof value === "object" || typeof value === "function") &&
    value !== null &&
    typeof (value as { then?: unknown }).then === "function"
  );
}

function toBinding(param: SqlParam): SqlValue {
  if (typeof param === "boolean") return param ? 1 : 0;
  if (typeof param === "bigint") return param.toString();
  if (ArrayBuffer.isView(param)) {
    // A view over part of a buffer must bind only its own bytes.
    const { buffer, byteOffset, byteLength } = param;
    if (byteOffset === 0 && byteLength === buffer.byteLength && buffer instanceof ArrayBuffer) {
      return buffer;
    }
    return new Uint8Array(buffer, byteOffset, byteLength).slice().buffer;
  }
  return param;
}

/**
 * Splits `items` into chunks small enough to bind in one statement, leaving room for
 * `reserved` other parameters.
 *
 * @example
 * ```ts
 * for (const ids of chunkParams(allIds)) {
 *   sql.run(`DELETE FROM t WHERE id IN (${placeholders(ids.length)})`, ...ids);
 * }
 * ```
 */
export function chunkParams<T>(items: readonly T[], reserved = 0): T[][] {
  const size = MAX_SQL_PARAMS - reserved;
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * `?, ?, ?` with `n` placeholders.
 *
 * @example
 * ```ts
 * sql.all(`SELECT * FROM t WHERE id IN (${placeholders(ids.length)})`, ...ids);
 * ```
 */
export function placeholders(n: number): string {
  return Array.from({ length: n }, () => "?").join(", ");
}
