/**
 * What crosses RPC between the Execution actors, the ExecutionIndex and its callers (types and
 * constants only: no runtime code of the actors, so callers pay nothing for importing them).
 */

/** Lifecycle statuses an execution has in the index (`waiting`/`sleeping` are `running`). */
export type IndexedStatus =
  | "pending"
  | "running"
  | "paused"
  | "completed"
  | "failed"
  | "cancelled"
  | "timed_out";

/** One execution as the index knows it. */
export interface IndexedExecution {
  id: string;
  workflow: string;
  status: IndexedStatus;
  /** `workflow` (run by Baton) or `tracked` (reported by outside code). */
  mode: "workflow" | "tracked";
  /** When it started (ms since the epoch). */
  createdAt: number;
  updatedAt: number;
  endedAt: number | null;
}

/** An update an Execution actor delivers: its state at `version`, or its deletion. */
export interface IndexUpdate {
  id: string;
  /** Increases with every change of that execution; an older update never overwrites a newer. */
  version: number;
  /** The execution's state, or `null` once its retention ran out and it was deleted. */
  execution: IndexedExecution | null;
  /**
   * The reporting Durable Object's id (`ctx.id.toString()`). Two Execution actor classes that
   * share one index and use the same execution id are told apart by it: the second one's
   * updates are refused with `INDEX_CONFLICT` instead of overwriting the first's row.
   */
  source: string;
}

/** Filters and paging of {@link ExecutionIndex.list}. */
export interface ListQuery {
  /** One workflow or several. */
  workflow?: string | readonly string[];
  /**
   * Only executions whose id starts with this (for example a tenant's `"acme/"`): 1–256
   * characters.
   */
  idPrefix?: string;
  /** One status or several. */
  status?: IndexedStatus | readonly IndexedStatus[];
  /** Started at or after this time (ms since the epoch, or a Date). */
  startedAfter?: number | Date;
  /** Started before this time. */
  startedBefore?: number | Date;
  /** Page size, 1–1000 (default 50). */
  limit?: number;
  /** From a previous page's `cursor`. */
  cursor?: string;
}

/** A page of executions, newest first. */
export interface ListPage {
  executions: IndexedExecution[];
  /** Pass it as `cursor` for the next page; `null` on the last page. */
  cursor: string | null;
}

/** How many executions match a query's filters (`ExecutionIndex.counts`). */
export interface IndexCounts {
  total: number;
  /** Every status, 0 where none. */
  byStatus: Record<IndexedStatus, number>;
  /** Per workflow name that has any. */
  byWorkflow: Record<string, number>;
}

/** The name of the one index object (see the README's sharding plan). */
export const INDEX_SHARD = "executions";
