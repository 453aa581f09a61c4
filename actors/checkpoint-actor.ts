import type { Value } from "../src/execution/types.ts";
import { Actor } from "../src/foundation/actor.ts";
import { requireNamespace } from "../src/foundation/bindings.ts";
import { decode, encode, encodeSync } from "../src/foundation/codec.ts";
import { type Duration, parseDuration } from "../src/foundation/duration.ts";
import { BatonError, checkId, invalidArgument, isBatonError } from "../src/foundation/errors.ts";
import { type Migration, runMigrations } from "../src/foundation/migrations.ts";
import type { ExecutionActor } from "./execution-actor.ts";

const CHECKPOINT_SCHEMA = "baton.checkpoint";

const CHECKPOINT_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "checkpoints, resume tokens",
    up: (sql) => {
      sql.run(`CREATE TABLE _baton_checkpoints (
        name TEXT NOT NULL,
        version INTEGER NOT NULL CHECK (version > 0),
        saved_at INTEGER NOT NULL,
        expires_at INTEGER,
        bytes INTEGER NOT NULL,
        PRIMARY KEY (name, version)
      ) STRICT`);
      sql.run("CREATE INDEX _baton_checkpoints_time ON _baton_checkpoints (saved_at)");
      // The last version number ever given to a name: it never goes down (not on delete, not on
      // expiry), so a version number is never reused and a stale expectedVersion cannot match.
      sql.run(`CREATE TABLE _baton_checkpoint_names (
        name TEXT PRIMARY KEY,
        last_version INTEGER NOT NULL
      ) STRICT`);
      // Resume tokens: only a hash of the token is stored.
      sql.run(`CREATE TABLE _baton_tokens (
        hash TEXT PRIMARY KEY,
        execution_id TEXT NOT NULL,
        event TEXT NOT NULL,
        binding TEXT NOT NULL,
        data BLOB NOT NULL,
        issued_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        redeemed_at INTEGER
      ) STRICT`);
    },
  },
];

/**
 * Delivery attempts of a redeemed token's event: with the scheduler's backoff (capped at 5
 * minutes) about two days of retries before it is dead-lettered.
 */
const DELIVERY_ATTEMPTS = 600;

/** The execution can never take the token's event: gone, finished, or not a workflow. */
function isUnreachable(error: unknown): boolean {
  return (
    isBatonError(error, "EXECUTION_NOT_FOUND") ||
    isBatonError(error, "EXECUTION_FINISHED") ||
    isBatonError(error, "INVALID_TRANSITION")
  );
}

/** Errors that retrying cannot fix: the execution cannot take it, or the payload is refused. */
function isPermanent(error: unknown): boolean {
  return (
    isUnreachable(error) ||
    isBatonError(error, "INVALID_ARGUMENT") ||
    isBatonError(error, "PAYLOAD_TOO_LARGE") ||
    isBatonError(error, "LIMIT_EXCEEDED")
  );
}

/** Largest resume payload (it travels in a timer payload). */
const MAX_EVENT_PAYLOAD = 200 * 1024;

/** Versions kept per name when a save does not say `keep`. */
export const DEFAULT_KEEP = 100;
/** Old versions deleted by one save, at most (see `keep`). */
const PRUNE_PER_SAVE = 256;
/** Largest page of `history()`. */
const MAX_HISTORY_PAGE = 1000;

/** Longest checkpoint or token name. */
const MAX_NAME = 256;
/** Longest time-to-live of a checkpoint or a token: 1 year. */
export const MAX_CHECKPOINT_TTL = 365 * 24 * 60 * 60 * 1000;

/** A stored version of a checkpoint. */
export interface CheckpointVersion {
  name: string;
  version: number;
  savedAt: number;
  /** When it is deleted by its TTL, if it has one. */
  expiresAt: number | null;
  /** Encoded size (after compression). */
  bytes: number;
}

/** A loaded checkpoint. */
export interface LoadedCheckpoint<T = Value> {
  value: T;
  version: number;
  savedAt: number;
}

/** Options of `save`. */
export interface SaveOptions {
  /**
   * Optimistic concurrency: save only if the latest version is this one (0 = the name has no
   * version yet); otherwise `CONFLICT` with the current version.
   */
  expectedVersion?: number;
  /** Delete this version after this long (by alarm). */
  ttl?: Duration;
  /**
   * Keep only the last `keep` versions of this name (older ones are deleted). Default
   * {@link DEFAULT_KEEP} (100): a name's history does not grow without bound unless you say so;
   * at most 10,000.
   */
  keep?: number;
}

/** What a redeemed resume token was for. */
export interface RedeemedToken {
  executionId: string;
  event: string;
  data: Value;
}

type CheckpointTimers = {
  expire: { name: string; version: number };
  "token-expire": { hash: string };
  /** Delivers a redeemed token's event to its execution (retried until it lands). */
  deliver: { hash: string; payload: Value };
};

interface CheckpointRow {
  name: string;
  version: number;
  saved_at: number;
  expires_at: number | null;
  bytes: number;
  [column: string]: string | number | null;
}

interface TokenRow {
  hash: string;
  execution_id: string;
  event: string;
  binding: string;
  data: ArrayBuffer;
  issued_at: number;
  expires_at: number;
  redeemed_at: number | null;
  [column: string]: string | number | ArrayBuffer | null;
}

/**
 * The Checkpoint actor: one instance per scope (for example one per execution). Named,
 * versioned snapshots of any codec value (Map, Date, BigInt ...; any size up to 32 MiB encoded,
 * stored across rows), with optimistic concurrency (`expectedVersion` → `CONFLICT`), history,
 * per-version TTL and a keep-last-K retention, all expired by alarm.
 *
 * It also keeps resume tokens (see {@link resumeTokens}): unguessable, single-use, expiring, stored
 * only as a hash.
 *
 * @example
 * ```ts
 * export { CheckpointActor as Checkpoints } from "baton";
 * const cp = checkpoints(env.Checkpoints);
 * const { version } = await cp.save("cart-42", "state", { items: new Map([["sku", 2]]) });
 * const loaded = await cp.load("cart-42", "state"); // { value, version, savedAt }
 * await cp.save("cart-42", "state", next, { expectedVersion: loaded.version }); // CONFLICT if changed
 * ```
 */
export class CheckpointActor<Env = unknown> extends Actor<Env, CheckpointTimers> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    runMigrations(this.sql, CHECKPOINT_SCHEMA, CHECKPOINT_MIGRATIONS);
    this.timers
      .on("expire", ({ name, version }) => {
        const row = this.sql.one<CheckpointRow>(
          "SELECT * FROM _baton_checkpoints WHERE name = ? AND version = ?",
          name,
          version,
        );
        if (
          row?.expires_at !== null &&
          row?.expires_at !== undefined &&
          row.expires_at <= this.now()
        ) {
          this.#deleteVersion(name, version);
        }
      })
      .on("token-expire", ({ hash }) => {
        this.sql.run("DELETE FROM _baton_tokens WHERE hash = ? AND redeemed_at IS NULL", hash);
      })
      .on("deliver", async ({ hash, payload }) => {
        try {
          await this.#deliver(hash, payload);
        } catch (error) {
          // Retrying cannot help: log it; the token stays redeemed.
          if (isPermanent(error)) console.error("baton: resume token event refused", error);
          else throw error; // retried with backoff
        }
      });
  }

  // ---- checkpoints ---------------------------------------------------------------------------

  /**
   * Saves a new version of checkpoint `name` and returns it.
   *
   * @throws BatonError `CONFLICT` (with `details.currentVersion`) when `expectedVersion` is not
   *   the latest; `SERIALIZATION_ERROR` when the value cannot be encoded; `PAYLOAD_TOO_LARGE`.
   *   Nothing is stored then, and the previous version is intact.
   */
  async save(name: string, value: Value, options: SaveOptions = {}): Promise<CheckpointVersion> {
    checkName(name);
    const expected = options?.expectedVersion;
    if (expected !== undefined && (!Number.isSafeInteger(expected) || expected < 0)) {
      invalidArgument("expectedVersion", "must be an integer >= 0", expected);
    }
    const ttlMs = options?.ttl === undefined ? undefined : checkTtl(options.ttl);
    const keep = options?.keep ?? DEFAULT_KEEP;
    if (!Number.isSafeInteger(keep) || keep < 1 || keep > 10_000) {
      invalidArgument("keep", "must be an integer from 1 to 10000", keep);
    }
    // Encode before anything is checked or written: the check and the write below run with no
    // await between them, so no other save can slip in.
    const bytes = await encode(value);
    const current = this.#latest(name);
    const currentVersion = current?.version ?? 0;
    if (expected !== undefined && expected !== currentVersion) {
      throw new BatonError(
        "CONFLICT",
        `Checkpoint "${name}" is at version ${currentVersion}, not ${expected}: it changed since you read it. Load it again and retry.`,
        { name, currentVersion, expectedVersion: expected },
      );
    }
    const now = this.now();
    const expiresAt = ttlMs === undefined ? null : now + ttlMs;
    const removed: number[] = []; // versions with a TTL timer to cancel
    const version = this.sql.transaction(() => {
      const next =
        this.sql.value<number>(
          `INSERT INTO _baton_checkpoint_names (name, last_version) VALUES (?, 1)
           ON CONFLICT (name) DO UPDATE SET last_version = last_version + 1 RETURNING last_version`,
          name,
        ) ?? 1;
      this.values.putEncoded("cp", valueKey(name, next), bytes);
      this.sql.run(
        "INSERT INTO _baton_checkpoints (name, version, saved_at, expires_at, bytes) VALUES (?, ?, ?, ?, ?)",
        name,
        next,
        now,
        expiresAt,
        bytes.byteLength,
      );
      // Oldest first, a bounded number per save: a name with a long history from before the
      // default `keep` is trimmed over its next saves, not in one burst.
      for (const old of this.sql.all<{ version: number; expires_at: number | null }>(
        `SELECT version, expires_at FROM _baton_checkpoints WHERE name = ? AND version <= (
           SELECT version FROM _baton_checkpoints WHERE name = ?
           ORDER BY version DESC LIMIT 1 OFFSET ?
         ) ORDER BY version LIMIT ?`,
        name,
        name,
        keep,
        PRUNE_PER_SAVE,
      )) {
        this.#deleteVersion(name, old.version);
        if (old.expires_at !== null) removed.push(old.version);
      }
      // The TTL timer commits with the version: a save that fails leaves neither.
      if (expiresAt !== null) {
        this.timers.enqueue(
          "expire",
          { name, version: next },
          { at: expiresAt },
          { key: `expire:${name}:${next}` },
        );
      }
      return next;
    });
    // The pruned versions' TTL timers are moot; one left behind (this failed) finds nothing.
    for (const old of removed) await this.timers.cancel(`expire:${name}:${old}`).catch(() => false);
    return { name, version, savedAt: now, expiresAt, bytes: bytes.byteLength };
  }

  /**
   * Loads the latest version of `name`, or `options.version`.
   *
   * @throws BatonError `CHECKPOINT_NOT_FOUND`.
   */
  async load(name: string, options: { version?: number } = {}): Promise<LoadedCheckpoint> {
    checkName(name);
    const wanted = options?.version;
    if (wanted !== undefined && (!Number.isSafeInteger(wanted) || wanted < 1)) {
      invalidArgument("version", "must be an integer >= 1", wanted);
    }
    const row =
      wanted === undefined
        ? this.#latest(name)
        : this.sql.one<CheckpointRow>(
            "SELECT * FROM _baton_checkpoints WHERE name = ? AND version = ?",
            name,
            wanted,
          );
    if (!row || (row.expires_at !== null && row.expires_at <= this.now())) {
      throw new BatonError(
        "CHECKPOINT_NOT_FOUND",
        `No checkpoint "${name}"${wanted === undefined ? "" : ` version ${wanted}`} in this scope.`,
        { name, version: wanted ?? null },
      );
    }
    const value = await this.values.get<Value>("cp", valueKey(name, row.version));
    return { value, version: row.version, savedAt: row.saved_at };
  }

  /** The latest version of every checkpoint in this scope, oldest save first. */
  list(): CheckpointVersion[] {
    return this.sql
      .all<CheckpointRow>(
        `SELECT c.* FROM _baton_checkpoints c
         WHERE c.version = (SELECT MAX(version) FROM _baton_checkpoints WHERE name = c.name)
           AND (c.expires_at IS NULL OR c.expires_at > ?)
         ORDER BY c.saved_at, c.name`,
        this.now(),
      )
      .map(toVersion);
  }

  /**
   * The stored versions of `name`, oldest first, a page at a time: from version `fromVersion`
   * (default 1) up to `limit` of them (default 100, at most 1000). Page on from the last one's
   * version + 1.
   */
  history(
    name: string,
    options: { fromVersion?: number; limit?: number } = {},
  ): CheckpointVersion[] {
    checkName(name);
    const from = options?.fromVersion ?? 1;
    const limit = options?.limit ?? 100;
    if (!Number.isSafeInteger(from) || from < 1) {
      invalidArgument("fromVersion", "must be an integer >= 1", from);
    }
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_HISTORY_PAGE) {
      invalidArgument("limit", `must be an integer from 1 to ${MAX_HISTORY_PAGE}`, limit);
    }
    return this.sql
      .all<CheckpointRow>(
        `SELECT * FROM _baton_checkpoints WHERE name = ? AND version >= ?
           AND (expires_at IS NULL OR expires_at > ?) ORDER BY version LIMIT ?`,
        name,
        from,
        this.now(),
        limit,
      )
      .map(toVersion);
  }

  /** Deletes every version of `name`; returns how many there were. */
  async delete(name: string): Promise<number> {
    checkName(name);
    const versions = this.sql.all<{ version: number }>(
      "SELECT version FROM _baton_checkpoints WHERE name = ?",
      name,
    );
    this.sql.transaction(() => {
      for (const { version } of versions) this.#deleteVersion(name, version);
    });
    for (const { version } of versions) await this.timers.cancel(`expire:${name}:${version}`);
    return versions.length;
  }

  /** The newest live (not expired) version of `name`. */
  #latest(name: string): CheckpointRow | undefined {
    return this.sql.one<CheckpointRow>(
      `SELECT * FROM _baton_checkpoints WHERE name = ? AND (expires_at IS NULL OR expires_at > ?)
       ORDER BY version DESC LIMIT 1`,
      name,
      this.now(),
    );
  }

  #deleteVersion(name: string, version: number): void {
    this.sql.run("DELETE FROM _baton_checkpoints WHERE name = ? AND version = ?", name, version);
    this.values.delete("cp", valueKey(name, version));
  }

  // ---- resume tokens -------------------------------------------------------------------------

  /**
   * Stores a resume token's hash with what it resumes. Called by {@link resumeTokens}; the token
   * itself never reaches storage.
   */
  async storeToken(
    hash: string,
    target: {
      executionId: string;
      event: string;
      /** `null`: a token of state only (StateManager without a Baton execution); no event. */
      binding: string | null;
      data?: Value;
      ttlMs: number;
    },
  ): Promise<void> {
    if (typeof hash !== "string" || !/^[0-9a-f]{64}$/.test(hash)) {
      invalidArgument("hash", "must be a SHA-256 hex digest", hash);
    }
    const ttlMs = target?.ttlMs;
    if (
      typeof ttlMs !== "number" ||
      !Number.isSafeInteger(ttlMs) ||
      ttlMs <= 0 ||
      ttlMs > MAX_CHECKPOINT_TTL
    ) {
      invalidArgument("ttlMs", "must be more than 0 and at most 1 year", ttlMs);
    }
    // Refuse a token that could never be delivered.
    if (target.binding !== null) this.#executions(target.binding);
    const bytes = await encode(target.data ?? null);
    // Expiry is measured on this actor's clock, which also runs its expiry timer.
    const expiresAt = this.now() + ttlMs;
    this.sql.run(
      `INSERT INTO _baton_tokens (hash, execution_id, event, binding, data, issued_at, expires_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
      hash,
      target.executionId,
      target.event,
      target.binding ?? "",
      bytes,
      this.now(),
      expiresAt,
    );
    await this.timers.schedule(
      "token-expire",
      { hash },
      { at: expiresAt },
      { key: `token:${hash}` },
    );
  }

  /**
   * Redeems a token (by hash) once: marks it used and delivers `payload` as the token's event to
   * its execution — through a timer retried until it lands, so a redemption is never lost.
   *
   * @throws BatonError `INVALID_TOKEN` for an unknown, used or expired token; nothing changes.
   */
  async redeemToken(
    hash: string,
    payload: Value,
    expect: { executionId?: string } = {},
  ): Promise<RedeemedToken> {
    if (typeof hash !== "string" || !/^[0-9a-f]{64}$/.test(hash)) {
      throw invalidToken();
    }
    // SERIALIZATION_ERROR / PAYLOAD_TOO_LARGE before anything changes.
    const size = encodeSync({ hash, payload: payload ?? null }).byteLength;
    if (size > MAX_EVENT_PAYLOAD) {
      throw new BatonError(
        "PAYLOAD_TOO_LARGE",
        `A resume payload is limited to ${MAX_EVENT_PAYLOAD} bytes encoded; this one is ${size}.`,
        { bytes: size, limit: MAX_EVENT_PAYLOAD },
      );
    }
    const row = this.sql.one<TokenRow>("SELECT * FROM _baton_tokens WHERE hash = ?", hash);
    if (!row || row.redeemed_at !== null || row.expires_at <= this.now()) throw invalidToken();
    // Redeemed on behalf of one execution (StateManager.resume): another's token stays unused.
    if (expect?.executionId !== undefined && expect.executionId !== row.execution_id) {
      throw invalidToken();
    }
    // Marking it used and queueing its delivery commit together (no await between the writes).
    this.sql.run("UPDATE _baton_tokens SET redeemed_at = ? WHERE hash = ?", this.now(), hash);
    const queued = this.timers.schedule(
      "deliver",
      { hash, payload: payload ?? null },
      { after: 0 },
      { key: `deliver:${hash}`, maxAttempts: DELIVERY_ATTEMPTS },
    );
    await queued;
    const redeemed: RedeemedToken = {
      executionId: row.execution_id,
      event: row.event,
      data: (await decode(row.data)) as Value,
    };
    // Deliver now for a quick answer; a transient failure is left to the retried timer. A
    // refused payload gives the token back (the redeemer may try another one). An execution that
    // can no longer take the event (finished, gone) uses the token up: it must never reach a
    // later run of that execution (after a restart).
    try {
      await this.#deliver(hash, payload ?? null);
      await this.timers.cancel(`deliver:${hash}`);
      await this.timers.cancel(`token:${hash}`);
    } catch (error) {
      if (!isPermanent(error)) return redeemed;
      await this.timers.cancel(`deliver:${hash}`);
      if (isUnreachable(error)) {
        this.sql.run("DELETE FROM _baton_tokens WHERE hash = ?", hash);
        await this.timers.cancel(`token:${hash}`);
      } else {
        this.sql.run("UPDATE _baton_tokens SET redeemed_at = NULL WHERE hash = ?", hash);
      }
      throw error;
    }
    return redeemed;
  }

  /** Sends a redeemed token's event; then the token row is no longer needed. */
  async #deliver(hash: string, payload: Value): Promise<void> {
    const row = this.sql.one<TokenRow>("SELECT * FROM _baton_tokens WHERE hash = ?", hash);
    if (!row || row.redeemed_at === null) return;
    if (row.binding === "") {
      // A token of state only: redeeming it is all there is.
      this.sql.run("DELETE FROM _baton_tokens WHERE hash = ?", hash);
      return;
    }
    const ns = this.#executions(row.binding);
    // The token's hash is the event's dedupe key: a repeated delivery changes nothing.
    await ns
      .getByName(row.execution_id)
      .sendEvent(row.event, payload, { dedupeKey: `token:${hash}` });
    // Delivered: forget the token (a reuse finds nothing: INVALID_TOKEN).
    this.sql.run("DELETE FROM _baton_tokens WHERE hash = ?", hash);
  }

  #executions(binding: string): DurableObjectNamespace<ExecutionActor<never>> {
    return requireNamespace<ExecutionActor<never>>(
      this.env,
      binding,
      `Resume tokens deliver through binding "${binding}", but this Checkpoint actor's env has no Durable Object namespace of that name.`,
    );
  }
}

function toVersion(row: CheckpointRow): CheckpointVersion {
  return {
    name: row.name,
    version: row.version,
    savedAt: row.saved_at,
    expiresAt: row.expires_at,
    bytes: row.bytes,
  };
}

function valueKey(name: string, version: number): string {
  return `${name}\u0000${version}`;
}

function checkName(name: unknown): asserts name is string {
  checkId(name, "Checkpoint name", MAX_NAME);
}

function checkTtl(ttl: Duration): number {
  const ms = parseDuration(ttl);
  if (ms <= 0 || ms > MAX_CHECKPOINT_TTL) {
    invalidArgument("ttl", "must be more than 0 and at most 1 year", ttl);
  }
  return ms;
}

function invalidToken(): BatonError {
  return new BatonError(
    "INVALID_TOKEN",
    "This resume token is not valid: it is unknown, was already used, or has expired.",
  );
}
