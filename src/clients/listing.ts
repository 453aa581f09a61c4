import type { ExecutionIndex } from "../../actors/execution-index.ts";
import {
  INDEX_SHARD,
  type IndexCounts,
  type IndexedExecution,
  type ListPage,
  type ListQuery,
} from "../protocol/listing.ts";
import { connector } from "./executions.ts";

type IndexStub = {
  list(query: ListQuery): Promise<ListPage>;
  get(id: string): Promise<IndexedExecution | null>;
  counts(query: Omit<ListQuery, "cursor" | "limit">): Promise<IndexCounts>;
};

/**
 * Lists executions from the {@link ExecutionIndex}: newest first by start time, filtered by
 * workflow, status and start time, a page at a time. The index follows the executions through
 * an outbox, so it may trail a status change by the time one RPC takes (longer only while the
 * index is unreachable); it never loses an execution nor keeps a deleted one.
 *
 * @example
 * ```ts
 * const index = executionIndex(env.ExecutionIndex);
 * let page = await index.list({ workflow: "orders", status: ["failed", "cancelled"], limit: 100 });
 * while (page.cursor) page = await index.list({ workflow: "orders", status: ["failed", "cancelled"], limit: 100, cursor: page.cursor });
 * ```
 */
export class ExecutionIndexClient {
  readonly #connect: () => IndexStub;

  constructor(
    target: DurableObjectNamespace<ExecutionIndex> | { indexShard(name: string): unknown },
  ) {
    const connect = connector<IndexStub>(target, "indexShard");
    this.#connect = () => connect(INDEX_SHARD);
  }

  /**
   * One page of executions, newest first.
   *
   * @throws BatonError `INVALID_ARGUMENT` for a bad filter, limit (1–1000) or cursor.
   */
  list(query: ListQuery = {}): Promise<ListPage> {
    return this.#connect().list(query);
  }

  /**
   * How many executions match `query`'s filters: in all, by status and by workflow (for
   * dashboards; it counts rows, so it is dearer than a page of `list`).
   *
   * @example
   * ```ts
   * const { byStatus } = await executionIndex(env.ExecutionIndex).counts({ workflow: "order" });
   * console.log(`${byStatus.failed} failed orders`);
   * ```
   * @throws BatonError `INVALID_ARGUMENT` for a bad filter.
   */
  counts(query: Omit<ListQuery, "cursor" | "limit"> = {}): Promise<IndexCounts> {
    return this.#connect().counts(query);
  }

  /** One execution as indexed, or `null`. */
  get(id: string): Promise<IndexedExecution | null> {
    return this.#connect().get(id);
  }
}

/** The typed client of the execution index (see {@link ExecutionIndexClient}). */
export function executionIndex(
  target: DurableObjectNamespace<ExecutionIndex> | { indexShard(name: string): unknown },
): ExecutionIndexClient {
  return new ExecutionIndexClient(target);
}
