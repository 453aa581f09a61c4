/** A value SQLite can store or return: BLOBs come back as `ArrayBuffer`. */
export type SqlValue = ArrayBuffer | string | number | null;
/** A value that can be bound to a `?` placeholder. */
export type SqlParam = SqlValue | ArrayBufferView | boolean | bigint;
/** A row as SQLite returns it. */
export type SqlRow = Record<string, SqlValue>;

/**
 * The statements of Baton's `Sql` (what a transactional step's body gets): runtime-free, so
 * code for browsers can name the types that mention it.
 */
export interface SqlStatements {
  /** Every row of `query`. */
  all<T extends SqlRow = SqlRow>(query: string, ...params: SqlParam[]): T[];
  /** The first row of `query`, or undefined. */
  one<T extends SqlRow = SqlRow>(query: string, ...params: SqlParam[]): T | undefined;
  /** The first column of the first row, or undefined. */
  value<V extends SqlValue = SqlValue>(query: string, ...params: SqlParam[]): V | undefined;
  /** Runs `query`; returns the rows it wrote. */
  run(query: string, ...params: SqlParam[]): number;
}
