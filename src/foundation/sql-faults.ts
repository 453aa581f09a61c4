/**
 * Injectable storage faults, for tests only: "the Nth statement matching this pattern, in this
 * object, fails as SQLite would". {@link Sql} checks {@link sqlFaults} before every statement;
 * production never arms one, so that check is one branch on an empty Map.
 *
 * Faults are keyed by the object's `DurableObjectStorage` (the `ctx.storage` its {@link Sql}
 * wraps): a test reaches it with `runInDurableObject(stub, (_, state) => state.storage)`. Under
 * the Workers vitest integration the Durable Objects run in the test's isolate, so the test and
 * the actors share this module. An object reset (`state.abort()`) gets a new storage object, so
 * its faults stop applying: a crash clears injected faults, as a real restart would.
 *
 * The fault throws before the statement runs (a failed statement writes nothing), with a message
 * like SQLite's; {@link Sql} turns it into a `STORAGE_ERROR`. Inside `sql.transaction` the throw
 * rolls back the transaction's earlier writes, as a real failure does.
 *
 * @example
 * ```ts
 * const storage = await runInDurableObject(stub, (_i, state) => state.storage);
 * const fault = armSqlFault(storage, { match: "UPDATE _baton_steps SET status = 'completed'" });
 * // ... drive the object; its first matching statement throws STORAGE_ERROR ...
 * expect(fault.fired).toBe(1);
 * fault.disarm();
 * ```
 */

/** Which statements fail. */
export interface SqlFault {
  /** Statements it applies to: a substring of the SQL text, or a RegExp tested against it. */
  match: string | RegExp;
  /** The first matching statement (counted from arming, 1-based) that fails. Default 1. */
  nth?: number;
  /** How many matching statements fail from the `nth` on. Default 1; `Infinity`: all. */
  times?: number;
  /** The error message, as SQLite words it. Default a disk I/O error. */
  message?: string;
}

/** An armed fault: what it saw and did so far. */
export interface ArmedSqlFault {
  /** Matching statements seen since arming. */
  readonly seen: number;
  /** Statements it made fail. */
  readonly fired: number;
  /** The SQL text of the statements it made fail. */
  readonly failed: readonly string[];
  /** Stops it (later statements run). */
  disarm(): void;
}

interface Armed extends ArmedSqlFault {
  seen: number;
  fired: number;
  failed: string[];
  readonly fault: Required<Omit<SqlFault, "match">> & { match: string | RegExp };
}

/**
 * The armed faults by storage object. Empty in production; {@link Sql} reads its size on every
 * statement and looks no further while it is 0.
 */
export const sqlFaults = new Map<DurableObjectStorage, Armed[]>();

/** Default message: SQLite's wording of an I/O failure. */
export const INJECTED_FAULT_MESSAGE = "SQLITE_IOERR: disk I/O error (injected fault)";

/**
 * Arms a fault on one object's storage. For tests only.
 *
 * @throws Error on a bad `match`, `nth` or `times`.
 */
export function armSqlFault(storage: DurableObjectStorage, fault: SqlFault): ArmedSqlFault {
  const nth = fault.nth ?? 1;
  const times = fault.times ?? 1;
  if (!(typeof fault.match === "string" ? fault.match.length > 0 : fault.match instanceof RegExp)) {
    throw new Error("armSqlFault: match must be a non-empty string or a RegExp");
  }
  if (!Number.isSafeInteger(nth) || nth < 1) {
    throw new Error("armSqlFault: nth must be an integer >= 1");
  }
  if (!(times === Number.POSITIVE_INFINITY || (Number.isSafeInteger(times) && times >= 1))) {
    throw new Error("armSqlFault: times must be an integer >= 1 or Infinity");
  }
  const armed: Armed = {
    seen: 0,
    fired: 0,
    failed: [],
    fault: { match: fault.match, nth, times, message: fault.message ?? INJECTED_FAULT_MESSAGE },
    disarm: () => {
      const list = sqlFaults.get(storage);
      if (!list) return;
      const rest = list.filter((a) => a !== armed);
      if (rest.length === 0) sqlFaults.delete(storage);
      else sqlFaults.set(storage, rest);
    },
  };
  sqlFaults.set(storage, [...(sqlFaults.get(storage) ?? []), armed]);
  return armed;
}

/** Disarms every fault (of one object's storage, or of all). For tests only. */
export function clearSqlFaults(storage?: DurableObjectStorage): void {
  if (storage === undefined) sqlFaults.clear();
  else sqlFaults.delete(storage);
}

/**
 * Throws the injected error if an armed fault of `storage` takes this statement. Called by
 * {@link Sql} only when {@link sqlFaults} is not empty.
 */
export function injectSqlFault(storage: DurableObjectStorage, query: string): void {
  const list = sqlFaults.get(storage);
  if (!list) return;
  for (const armed of list) {
    const { match, nth, times, message } = armed.fault;
    if (typeof match === "string" ? !query.includes(match) : !matches(match, query)) continue;
    armed.seen++;
    if (armed.seen < nth || armed.seen >= nth + times) continue;
    armed.fired++;
    armed.failed.push(query);
    throw new Error(message);
  }
}

function matches(pattern: RegExp, query: string): boolean {
  pattern.lastIndex = 0; // a /g or /y pattern keeps state between tests otherwise
  return pattern.test(query);
}
