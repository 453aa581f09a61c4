import { BatonError } from "./errors.ts";
import type { Sql } from "./sql.ts";

/**
 * One schema migration. Migrations are numbered from 1 without gaps and are append-only: once
 * released, a migration is never edited or removed; change the schema with a new one.
 *
 * @example
 * ```ts
 * const migrations: Migration[] = [
 *   { version: 1, name: "todos", up: (sql) => sql.run("CREATE TABLE todos (id INTEGER PRIMARY KEY, title TEXT NOT NULL)") },
 *   { version: 2, name: "todos.done", up: (sql) => sql.run("ALTER TABLE todos ADD COLUMN done INTEGER NOT NULL DEFAULT 0") },
 * ];
 * ```
 */
export interface Migration {
  /** 1, 2, 3 ... in order, no gaps. */
  readonly version: number;
  /** A short label for errors and logs. */
  readonly name?: string;
  /** Applies the migration. It runs inside a transaction with the version bump. */
  readonly up: (sql: Sql) => void;
}

const TABLE = "_baton_migrations";

/**
 * Applies the migrations of `scope` that this object has not applied yet, in one transaction
 * with the record of the version reached (each migration nested in its own, so a failing one
 * is rolled back alone), and returns the version now applied.
 * Safe to call on every wake: applied migrations are skipped.
 *
 * Scopes keep independent version counters, so Baton's own tables (scope `"baton"`) and an
 * application's tables (for example scope `"app"`) evolve separately.
 *
 * @throws BatonError `MIGRATION_ERROR` if the list is not numbered 1..n, if a migration fails
 *   (that migration is rolled back; earlier ones stay), or if the object's schema is newer than
 *   the code (a rollback to older code).
 * @example
 * ```ts
 * const version = runMigrations(new Sql(ctx.storage), "app", migrations);
 * ```
 */
export function runMigrations(sql: Sql, scope: string, migrations: readonly Migration[]): number {
  validate(scope, migrations);
  sql.run(
    `CREATE TABLE IF NOT EXISTS ${TABLE} (
       scope TEXT PRIMARY KEY,
       version INTEGER NOT NULL CHECK (version >= 0),
       applied_at INTEGER NOT NULL
     ) STRICT`,
  );
  const current = sql.value<number>(`SELECT version FROM ${TABLE} WHERE scope = ?`, scope) ?? 0;
  if (current > migrations.length) {
    throw new BatonError(
      "MIGRATION_ERROR",
      `Schema "${scope}" of this object is at version ${current}, but the code only knows ${migrations.length} migration(s). Code older than the data was deployed; deploy code that includes every migration (migrations are append-only).`,
      { scope, applied: current, known: migrations.length },
    );
  }
  const pending = migrations.slice(current);
  if (pending.length === 0) return migrations.length;
  // One transaction for the whole run (a new object applies every migration at once), each
  // migration in a nested one: a failing migration is rolled back alone, the earlier ones and
  // the record of the last good version commit, then the failure is thrown.
  let applied = current;
  let failure: { migration: Migration; cause: unknown } | undefined;
  sql.transaction(() => {
    for (const migration of pending) {
      try {
        sql.transaction(() => migration.up(sql));
      } catch (cause) {
        failure = { migration, cause };
        break;
      }
      applied = migration.version;
    }
    if (applied > current) {
      sql.run(
        `INSERT INTO ${TABLE} (scope, version, applied_at) VALUES (?, ?, ?)
         ON CONFLICT (scope) DO UPDATE SET version = excluded.version, applied_at = excluded.applied_at`,
        scope,
        applied,
        Date.now(),
      );
    }
  });
  if (failure) {
    const { migration, cause } = failure;
    const label = migration.name ? ` (${migration.name})` : "";
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new BatonError(
      "MIGRATION_ERROR",
      `Migration ${migration.version}${label} of schema "${scope}" failed and was rolled back: ${reason}`,
      { scope, version: migration.version, reason },
      { cause },
    );
  }
  return migrations.length;
}

/**
 * The applied version of `scope` (0 when none).
 *
 * @example
 * ```ts
 * if (schemaVersion(sql, "app") < 2) console.log("migration 2 pending");
 * ```
 */
export function schemaVersion(sql: Sql, scope: string): number {
  const exists = sql.value<number>(
    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
    TABLE,
  );
  if (!exists) return 0;
  return sql.value<number>(`SELECT version FROM ${TABLE} WHERE scope = ?`, scope) ?? 0;
}

function validate(scope: string, migrations: readonly Migration[]): void {
  if (typeof scope !== "string" || scope.length === 0) {
    throw new BatonError("MIGRATION_ERROR", "A migration scope must be a non-empty string.", {
      scope,
    });
  }
  migrations.forEach((migration, index) => {
    if (migration.version !== index + 1) {
      throw new BatonError(
        "MIGRATION_ERROR",
        `Migrations of schema "${scope}" must be numbered 1, 2, 3 ... in order; position ${index + 1} has version ${String(migration.version)}.`,
        { scope, position: index + 1, version: migration.version },
      );
    }
    if (typeof migration.up !== "function") {
      throw new BatonError(
        "MIGRATION_ERROR",
        `Migration ${migration.version} of schema "${scope}" has no up() function.`,
        { scope, version: migration.version },
      );
    }
  });
}
