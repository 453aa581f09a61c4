import { type ExecutionTimers, HEARTBEAT_MS } from "../../src/execution/host.ts";
import type { ExecutionRow } from "../../src/execution/schema.ts";
import { findNamespace } from "../../src/foundation/bindings.ts";
import { isBatonError } from "../../src/foundation/errors.ts";
import type { Scheduler } from "../../src/foundation/scheduler/scheduler.ts";
import type { Sql } from "../../src/foundation/sql.ts";
import { INDEX_SHARD, type IndexUpdate } from "../../src/protocol/listing.ts";
import type { ExecutionIndex } from "../execution-index.ts";

/** What the outbox needs from its Execution actor. */
export interface OutboxHost {
  readonly sql: Sql;
  readonly timers: Scheduler<ExecutionTimers>;
  readonly env: unknown;
  /** The binding of the index (read late: a subclass may override it). */
  indexBinding(): string;
  /** This Durable Object's id, recorded with every row the index keeps. */
  readonly source: string;
  row(): ExecutionRow | undefined;
}

/**
 * The index outbox: how listing stays consistent with the executions. Every status change (and
 * the purge) writes an outbox row and a retry timer in the same SQLite transaction as the
 * change, so the two cannot diverge; delivery is tried at once and retried without end. An
 * update carries the latest state with a version that only grows, and the index applies only
 * newer versions, so a late or repeated delivery changes nothing.
 */
export class IndexOutbox {
  readonly #host: OutboxHost;
  #delivering: Promise<void> | null = null;

  constructor(host: OutboxHost) {
    this.#host = host;
  }

  #namespace(): DurableObjectNamespace<ExecutionIndex> | null {
    return findNamespace<ExecutionIndex>(this.#host.env, this.#host.indexBinding());
  }

  /**
   * Outbox entry for the index, written inside the transaction of the change (or of the purge):
   * the change and its index update cannot diverge. A retry timer goes with it; the delivery is
   * tried right after this synchronous block.
   */
  record(deleted: boolean): void {
    const { sql, timers } = this.#host;
    if (!this.#namespace()) return;
    const id = sql.value<string>("SELECT execution_id FROM _baton_execution WHERE id = 1");
    if (id === undefined) return;
    sql.run(
      "INSERT INTO _baton_index_outbox (execution_id, deleted) VALUES (?, ?)",
      id,
      deleted ? 1 : 0,
    );
    // Retried (every 5 minutes at most) for as long as it takes: the index must catch up.
    timers.enqueue(
      "index",
      {},
      { after: HEARTBEAT_MS },
      { key: "index", maxAttempts: Number.MAX_SAFE_INTEGER },
    );
    queueMicrotask(() => void this.deliver().catch(() => {}));
  }

  /** Delivers the outbox (one delivery at a time; a change meanwhile is picked up by its loop). */
  deliver(): Promise<void> {
    this.#delivering ??= this.#send().finally(() => {
      this.#delivering = null;
    });
    return this.#delivering;
  }

  async #send(): Promise<void> {
    const { sql, timers } = this.#host;
    for (;;) {
      const ns = this.#namespace();
      const top = sql.one<{ version: number; execution_id: string; deleted: number }>(
        "SELECT * FROM _baton_index_outbox ORDER BY version DESC LIMIT 1",
      );
      if (!ns || !top) return;
      // The latest state (or the deletion) stands for every change up to `top.version`.
      const row = top.deleted ? undefined : this.#host.row();
      const update: IndexUpdate = {
        id: top.execution_id,
        version: top.version,
        execution: row
          ? {
              id: row.execution_id,
              workflow: row.workflow,
              status: row.status,
              mode: row.mode,
              createdAt: row.created_at,
              updatedAt: row.updated_at,
              endedAt: row.ended_at,
            }
          : null,
        source: this.#host.source,
      };
      try {
        await ns.getByName(INDEX_SHARD).apply([update]);
      } catch (error) {
        if (!isBatonError(error, "INDEX_CONFLICT")) throw error;
        // A misconfiguration no retry can mend (another class has this id in the same index):
        // say so loudly and stop retrying; the index keeps the other class's row.
        console.error(`baton: execution "${top.execution_id}" is not indexed: ${error.message}`);
      }
      sql.run("DELETE FROM _baton_index_outbox WHERE version <= ?", top.version);
      const pending = () => sql.value<number>("SELECT COUNT(*) FROM _baton_index_outbox");
      if (pending() === 0) {
        await timers.cancel("index");
        // A change that came during that await goes now too, not at its retry timer.
        if (pending() === 0) return;
      }
    }
  }
}
