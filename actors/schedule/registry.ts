import { BatonError, checkId, invalidArgument } from "../../src/foundation/errors.ts";
import type { Migration } from "../../src/foundation/migrations.ts";
import type { Sql } from "../../src/foundation/sql.ts";
import type { ScheduleList, ScheduleSummary } from "../../src/protocol/schedules.ts";

/** The registry's table (only the registry object, {@link SCHEDULE_REGISTRY}, writes it). */
export const REGISTRY_MIGRATION: Migration = {
  version: 2,
  name: "schedule registry",
  up: (sql) => {
    sql.run(`CREATE TABLE _baton_schedule_registry (
      schedule_id TEXT PRIMARY KEY,
      version INTEGER NOT NULL,
      -- NULL: a deleted schedule's tombstone (older registrations of it are refused).
      summary TEXT
    ) STRICT`);
  },
};

/** Most schedules one `list()` page gives. */
const MAX_PAGE = 500;

/** Stores a schedule's summary unless the registry has a newer one (`version` orders them). */
export function registerSummary(sql: Sql, summary: ScheduleSummary, version: number): void {
  if (typeof summary !== "object" || summary === null) {
    invalidArgument("summary", "must be a schedule summary", summary);
  }
  checkId(summary.id, "Schedule id", 200);
  if (!Number.isSafeInteger(version) || version < 0) {
    invalidArgument("version", "must be an integer >= 0", version);
  }
  sql.run(
    `INSERT INTO _baton_schedule_registry (schedule_id, version, summary) VALUES (?, ?, ?)
     ON CONFLICT (schedule_id) DO UPDATE SET version = excluded.version, summary = excluded.summary
     WHERE excluded.version > _baton_schedule_registry.version`,
    summary.id,
    version,
    JSON.stringify(summary),
  );
}

/**
 * Forgets a deleted schedule, leaving a tombstone at `version`: a registration of it sent before
 * the deletion (a lower version) that arrives after it is refused.
 *
 * @throws BatonError `INVALID_ARGUMENT` for a malformed id or version.
 */
export function unregister(sql: Sql, id: string, version: number): void {
  checkId(id, "Schedule id", 200);
  if (!Number.isSafeInteger(version) || version < 0) {
    invalidArgument("version", "must be an integer >= 0", version);
  }
  sql.run(
    `INSERT INTO _baton_schedule_registry (schedule_id, version, summary) VALUES (?, ?, NULL)
     ON CONFLICT (schedule_id) DO UPDATE SET version = excluded.version, summary = NULL
     WHERE excluded.version > _baton_schedule_registry.version`,
    id,
    version,
  );
}

/**
 * A page of schedules in id order (`sql` null: the registry has no table yet, so none).
 *
 * @throws BatonError `INVALID_ARGUMENT` for a bad `limit` or `cursor`.
 */
export function listSummaries(
  sql: Sql | null,
  query: { limit?: number; cursor?: string | null } = {},
): ScheduleList {
  if (typeof query !== "object" || query === null) {
    invalidArgument("query", "must be { limit?, cursor? }", query);
  }
  const limit = query.limit ?? 100;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_PAGE) {
    invalidArgument("limit", `must be an integer from 1 to ${MAX_PAGE}`, limit);
  }
  const after = query.cursor ?? null;
  if (after !== null && (typeof after !== "string" || after.length > 512)) {
    throw new BatonError("INVALID_ARGUMENT", "cursor must be one a list() page gave.", {
      cursor: String(after).slice(0, 64),
    });
  }
  if (!sql) return { schedules: [], cursor: null }; // no schedule ever registered
  const rows = sql.all<{ schedule_id: string; summary: string | null }>(
    `SELECT schedule_id, summary FROM _baton_schedule_registry
     WHERE schedule_id > ? AND summary IS NOT NULL ORDER BY schedule_id LIMIT ?`,
    after ?? "",
    limit + 1,
  );
  const page = rows.slice(0, limit);
  return {
    schedules: page.map((r) => JSON.parse(r.summary as string) as ScheduleSummary),
    cursor: rows.length > limit ? (page.at(-1)?.schedule_id ?? null) : null,
  };
}
