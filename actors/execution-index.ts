import { Actor } from "../src/foundation/actor.ts";
import {
  INDEX_SHARD,
  type IndexCounts,
  type IndexedExecution,
  type IndexedStatus,
  type IndexUpdate,
  type ListPage,
  type ListQuery,
} from "../src/protocol/listing.ts";

export type { IndexCounts, IndexedExecution, IndexedStatus, IndexUpdate, ListPage, ListQuery };
export { INDEX_SHARD };

import { base64url } from "../src/foundation/bindings.ts";
import { BatonError, checkId, invalidArgument } from "../src/foundation/errors.ts";
import type { Migration } from "../src/foundation/migrations.ts";
import { runMigrations } from "../src/foundation/migrations.ts";

const STATUSES: readonly IndexedStatus[] = [
  "pending",
  "running",
  "paused",
  "completed",
  "failed",
  "cancelled",
  "timed_out",
];

const SCHEMA = "baton.index";
/** Deleted executions leave a tombstone this long, so a late, older update cannot revive them. */
const TOMBSTONE_MS = 7 * 24 * 60 * 60 * 1000;
const MAX_LIMIT = 1000;

const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "executions index",
    up: (sql) => {
      sql.run(`CREATE TABLE _baton_index (
        id TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        workflow TEXT,
        status TEXT,
        mode TEXT,
        created_at INTEGER,
        updated_at INTEGER,
        ended_at INTEGER,
        -- Set when the execution was deleted (a tombstone until deleted_at + TOMBSTONE_MS).
        deleted_at INTEGER
      ) STRICT`);
      sql.run(
        "CREATE INDEX _baton_index_by_start ON _baton_index (created_at DESC, id DESC) WHERE deleted_at IS NULL",
      );
      sql.run(
        "CREATE INDEX _baton_index_by_workflow ON _baton_index (workflow, created_at DESC, id DESC) WHERE deleted_at IS NULL",
      );
      sql.run(
        "CREATE INDEX _baton_index_by_status ON _baton_index (status, created_at DESC, id DESC) WHERE deleted_at IS NULL",
      );
    },
  },
  {
    version: 2,
    name: "reporting object",
    up: (sql) => {
      // The Durable Object id that reports each execution (NULL for rows from before it).
      sql.run("ALTER TABLE _baton_index ADD COLUMN source TEXT");
    },
  },
];

interface IndexRow {
  id: string;
  version: number;
  workflow: string;
  status: IndexedStatus;
  mode: "workflow" | "tracked";
  created_at: number;
  updated_at: number;
  ended_at: number | null;
  [column: string]: string | number | null;
}

type IndexTimers = { prune: Record<string, never> };

/**
 * The index of executions, for listing and filtering them from code. Execution actors keep it
 * up to date through an outbox: every change of an execution's status writes an outbox row in
 * the same transaction as the change, and a timer delivers it here (at least once; an update
 * carries a version, so a repeated or late one changes nothing). No row is lost and none is a
 * phantom, even if an actor is evicted between its change and the delivery.
 *
 * Bind it as `ExecutionIndex` (the Execution actor's `indexBinding`) and read it with
 * {@link executionIndex}. One object holds the whole index; see the README for the sharding
 * plan past one object's write rate.
 *
 * @example
 * ```ts
 * export { ExecutionIndex } from "baton";
 * // wrangler.toml: [[durable_objects.bindings]] name = "ExecutionIndex", class_name = "ExecutionIndex"
 * const page = await executionIndex(env.ExecutionIndex).list({ workflow: "orders", status: "failed" });
 * ```
 */
export class ExecutionIndex<Env = unknown> extends Actor<Env, IndexTimers> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    runMigrations(this.sql, SCHEMA, MIGRATIONS);
    this.timers.on("prune", async () => {
      this.sql.run(
        "DELETE FROM _baton_index WHERE deleted_at IS NOT NULL AND deleted_at < ?",
        this.now() - TOMBSTONE_MS,
      );
      // Tombstones made after this timer was scheduled get their own turn.
      const oldest = this.sql.value<number>(
        "SELECT MIN(deleted_at) FROM _baton_index WHERE deleted_at IS NOT NULL",
      );
      if (oldest !== undefined && oldest !== null) {
        await this.timers.schedule(
          "prune",
          {},
          { at: oldest + TOMBSTONE_MS + 60_000 },
          { key: "prune" },
        );
      }
    });
  }

  /**
   * Applies updates from Execution actors: each replaces what the index has for its execution
   * if its version is newer. Returns how many changed something.
   *
   * @throws BatonError `INVALID_ARGUMENT` for a malformed update (nothing is applied).
   * @throws BatonError `INDEX_CONFLICT` when an update's execution id is indexed for another
   *   Durable Object (two Execution actor classes share this index and reuse an id); nothing
   *   is applied, and the row stays with the object that had it first.
   */
  async apply(updates: IndexUpdate[]): Promise<number> {
    if (!Array.isArray(updates) || updates.length > MAX_LIMIT) {
      invalidArgument("updates", `must be an array of at most ${MAX_LIMIT} index updates`, updates);
    }
    for (const update of updates) checkUpdate(update);
    const changed = this.sql.transaction(() => {
      let count = 0;
      for (const { id, version, execution, source } of updates) {
        const current = this.sql.one<{ version: number; source: string | null }>(
          "SELECT version, source FROM _baton_index WHERE id = ?",
          id,
        );
        if (current && current.source !== null && current.source !== source) {
          throw new BatonError(
            "INDEX_CONFLICT",
            `Execution id "${id}" is already indexed for another Durable Object: two Execution actor classes report to this index with the same id. Give each class its own index binding (indexBinding), or keep their ids apart.`,
            { id },
          );
        }
        if (current && current.version >= version) continue;
        count++;
        if (execution === null) {
          // The prune timer commits with the tombstone (an outbox): a write failing after the
          // rows were stored would leave a tombstone that no redelivery schedules a prune for.
          this.timers.enqueue("prune", {}, { after: TOMBSTONE_MS + 60_000 }, { key: "prune" });
          this.sql.run(
            `INSERT INTO _baton_index (id, version, deleted_at, source) VALUES (?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET version = excluded.version, workflow = NULL,
               status = NULL, mode = NULL, created_at = NULL, updated_at = NULL, ended_at = NULL,
               deleted_at = excluded.deleted_at, source = excluded.source`,
            id,
            version,
            this.now(),
            source,
          );
          continue;
        }
        this.sql.run(
          `INSERT INTO _baton_index (id, version, workflow, status, mode, created_at, updated_at, ended_at, deleted_at, source)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)
           ON CONFLICT (id) DO UPDATE SET version = excluded.version, workflow = excluded.workflow,
             status = excluded.status, mode = excluded.mode, created_at = excluded.created_at,
             updated_at = excluded.updated_at, ended_at = excluded.ended_at, deleted_at = NULL,
             source = excluded.source`,
          id,
          version,
          execution.workflow,
          execution.status,
          execution.mode,
          execution.createdAt,
          execution.updatedAt,
          execution.endedAt,
          source,
        );
      }
      return count;
    });
    return changed;
  }

  /**
   * Executions newest first (by start time), filtered, a page at a time.
   *
   * @throws BatonError `INVALID_ARGUMENT` for a bad filter, limit or cursor.
   */
  list(query: ListQuery = {}): ListPage {
    const { where, params } = filters(query);
    const limit = query.limit ?? 50;
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
      invalidArgument("limit", `must be an integer from 1 to ${MAX_LIMIT}`, limit);
    }
    if (query.cursor !== undefined) {
      const [at, id] = decodeCursor(query.cursor);
      where.push("(created_at < ? OR (created_at = ? AND id < ?))");
      params.push(at, at, id);
    }
    const rows = this.sql.all<IndexRow>(
      `SELECT * FROM _baton_index WHERE ${where.join(" AND ")}
       ORDER BY created_at DESC, id DESC LIMIT ?`,
      ...params,
      limit + 1,
    );
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return {
      executions: page.map(toExecution),
      cursor: rows.length > limit && last ? encodeCursor(last.created_at, last.id) : null,
    };
  }

  /**
   * How many executions match `query`'s filters (its `cursor` and `limit` aside), in all and by
   * status and by workflow. It counts rows, so it costs more as the index grows than a page of
   * `list` does: fine for a dashboard, not for every request.
   *
   * @throws BatonError `INVALID_ARGUMENT` for a bad filter.
   */
  counts(query: Omit<ListQuery, "cursor" | "limit"> = {}): IndexCounts {
    const { where, params } = filters(query);
    const rows = this.sql.all<{ status: IndexedStatus; workflow: string; n: number }>(
      `SELECT status, workflow, COUNT(*) AS n FROM _baton_index WHERE ${where.join(" AND ")}
       GROUP BY status, workflow`,
      ...params,
    );
    const counts: IndexCounts = {
      total: 0,
      byStatus: Object.fromEntries(STATUSES.map((s) => [s, 0])) as Record<IndexedStatus, number>,
      byWorkflow: {},
    };
    for (const row of rows) {
      counts.total += row.n;
      counts.byStatus[row.status] += row.n;
      counts.byWorkflow[row.workflow] = (counts.byWorkflow[row.workflow] ?? 0) + row.n;
    }
    return counts;
  }

  /** One execution as indexed, or `null`. */
  get(id: string): IndexedExecution | null {
    checkId(id, "id");
    const row = this.sql.one<IndexRow>(
      "SELECT * FROM _baton_index WHERE id = ? AND deleted_at IS NULL",
      id,
    );
    return row ? toExecution(row) : null;
  }
}

/** The WHERE clause (and its parameters) of a query's filters; the cursor is the caller's. */
function filters(query: Omit<ListQuery, "cursor" | "limit">): {
  where: string[];
  params: Array<string | number>;
} {
  if (typeof query !== "object" || query === null) {
    invalidArgument("query", "must be an object", query);
  }
  const where: string[] = ["deleted_at IS NULL"];
  const params: Array<string | number> = [];
  if (query.workflow !== undefined) {
    const workflows = [
      ...new Set(Array.isArray(query.workflow) ? query.workflow : [query.workflow]),
    ];
    if (
      workflows.length === 0 ||
      workflows.length > MAX_LIMIT ||
      !workflows.every((w) => typeof w === "string" && w.length > 0 && w.length <= 256)
    ) {
      invalidArgument(
        "workflow",
        `must be a workflow name, or an array of 1 to ${MAX_LIMIT} of them`,
        query.workflow,
      );
    }
    // One parameter for any number of names (a statement takes at most 100).
    where.push("workflow IN (SELECT value FROM json_each(?))");
    params.push(JSON.stringify(workflows));
  }
  if (query.idPrefix !== undefined) {
    checkId(query.idPrefix, "idPrefix");
    // substr counts characters as length() does, so the two agree for any prefix.
    where.push("substr(id, 1, length(?)) = ?");
    params.push(query.idPrefix, query.idPrefix);
  }
  if (query.status !== undefined) {
    const statuses = [...new Set(Array.isArray(query.status) ? query.status : [query.status])];
    if (statuses.length === 0 || !statuses.every((s) => STATUSES.includes(s as IndexedStatus))) {
      invalidArgument("status", `must be one or more of ${STATUSES.join(", ")}`, query.status);
    }
    where.push(`status IN (${statuses.map(() => "?").join(", ")})`);
    params.push(...(statuses as string[]));
  }
  const after = toTime("startedAfter", query.startedAfter);
  if (after !== undefined) {
    where.push("created_at >= ?");
    params.push(after);
  }
  const before = toTime("startedBefore", query.startedBefore);
  if (before !== undefined) {
    where.push("created_at < ?");
    params.push(before);
  }
  return { where, params };
}

function toExecution(row: IndexRow): IndexedExecution {
  return {
    id: row.id,
    workflow: row.workflow,
    status: row.status,
    mode: row.mode,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    endedAt: row.ended_at,
  };
}

function checkUpdate(update: IndexUpdate): void {
  const u = update as Partial<IndexUpdate> | null;
  const e = u?.execution;
  const ok =
    typeof u?.id === "string" &&
    u.id.length > 0 &&
    u.id.length <= 256 &&
    Number.isSafeInteger(u.version) &&
    (u.version as number) > 0 &&
    typeof u.source === "string" &&
    u.source.length > 0 &&
    u.source.length <= 256 &&
    (e === null ||
      (typeof e === "object" &&
        e.id === u.id &&
        typeof e.workflow === "string" &&
        STATUSES.includes(e.status as IndexedStatus) &&
        (e.mode === "workflow" || e.mode === "tracked") &&
        Number.isSafeInteger(e.createdAt) &&
        Number.isSafeInteger(e.updatedAt) &&
        (e.endedAt === null || Number.isSafeInteger(e.endedAt))));
  if (!ok)
    invalidArgument("index update", "must be { id, version, execution | null, source }", update);
}

function toTime(name: string, value: number | Date | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = value instanceof Date ? value.getTime() : value;
  if (typeof ms !== "number" || !Number.isFinite(ms)) {
    invalidArgument(name, "must be a Date or a time in ms since the epoch", value);
  }
  return ms;
}

function encodeCursor(at: number, id: string): string {
  return base64url(new TextEncoder().encode(JSON.stringify([at, id])));
}

function decodeCursor(cursor: string): [number, string] {
  try {
    if (typeof cursor !== "string" || cursor.length > 4096) throw new Error("bad cursor");
    const binary = atob(cursor.replaceAll("-", "+").replaceAll("_", "/"));
    const text = new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0)));
    const parsed = JSON.parse(text) as unknown;
    if (
      Array.isArray(parsed) &&
      parsed.length === 2 &&
      Number.isSafeInteger(parsed[0]) &&
      typeof parsed[1] === "string"
    ) {
      return parsed as [number, string];
    }
  } catch {
    // fall through
  }
  return invalidArgument("cursor", "must be a cursor returned by list()", cursor);
}
