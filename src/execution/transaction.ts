import { encodeSync } from "../foundation/codec.ts";
import { BatonError, isBatonError } from "../foundation/errors.ts";
import type { Sql } from "../foundation/sql.ts";
import { type StepError, StepFailedError, type TransactionSql } from "../workflow/workflow.ts";
import { failedError, toStepError } from "./errors.ts";
import type { Replay } from "./replay.ts";
import { never, type Run } from "./run.ts";
import { attemptRecord } from "./schema.ts";

/** Refuses statements that name Baton's own tables. */
function guarded(sql: Sql): TransactionSql {
  const check = (query: string) => {
    if (typeof query === "string" && /_baton_/i.test(query)) {
      throw new BatonError(
        "INVALID_ARGUMENT",
        "A transactional step may not touch Baton's own tables (_baton_*): use tables of your own, created by your Execution actor's migrations.",
      );
    }
    return query;
  };
  return {
    all: (query, ...params) => sql.all(check(query), ...params),
    one: (query, ...params) => sql.one(check(query), ...params),
    value: (query, ...params) => sql.value(check(query), ...params),
    run: (query, ...params) => sql.run(check(query), ...params),
  } as TransactionSql;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === "object" || typeof value === "function") &&
    value !== null &&
    typeof (value as { then?: unknown }).then === "function"
  );
}

/** Thrown inside the transaction to roll it back before a mocked crash (baton/testing). */
const CRASH = Symbol("crash");

/**
 * `step.transaction`: runs `body` synchronously inside one SQLite transaction with the insert of
 * its completed journal entry, so its writes and its journal entry commit together or not at
 * all: its effect happens exactly once, with no idempotency key. On replay the journaled result
 * is returned without running it. A body that throws rolls back and fails the step at once (it
 * is not retried: run it again by catching the error and calling a step of another name); a body
 * that returns a promise (an `async` function, one that awaits) is refused with
 * `ASYNC_TRANSACTION` and its writes rolled back.
 */
export async function runTransaction<T>(
  replay: Replay,
  run: Run,
  name: string,
  body: (sql: TransactionSql) => T,
): Promise<T> {
  if (run.dead) return never();
  const begun = replay.begin(run, name, "do");
  if (!begun) return never();
  const { seq, occurrence, row } = begun;
  if (row?.status === "completed") {
    return replay.replayed(run, (await run.track(replay.blobs.readStepOutput(row))) as T);
  }
  if (row?.status === "failed") throw failedError(row);
  if (row) return never(); // cancelled: the original run stopped it (a transaction is never left running)
  if (run.cancelling) return replay.frontier(run);
  await replay.passGate(run);
  if (run.dead || run.stopping) return never();
  const { host } = replay;
  const { sql } = host;
  // baton/testing's mocks count attempts; a transaction journals none, so its hooks count them.
  const hooks = host.testHooks(); // undefined at once in production (no hooks)
  let override: ReturnType<NonNullable<NonNullable<typeof hooks>["step"]>>;
  if (hooks?.step) {
    hooks.transactionTries ??= new Map();
    const tries = hooks.transactionTries;
    const attempt = (tries.get(`${name}#${occurrence}`) ?? 0) + 1;
    tries.set(`${name}#${occurrence}`, attempt);
    override = hooks.step(name, occurrence, attempt);
  }
  if (override?.kind === "crash") {
    // baton/testing: the actor dies before the commit (after the body ran, if `after`). What
    // came before is durable, as the platform would have it by then.
    await host.storage.sync();
    if (run.dead) return never();
    try {
      sql.transaction(() => {
        if (override.after) body(guarded(sql));
        throw CRASH;
      });
    } catch {
      // Rolled back.
    }
    host.abort(`baton/testing: a crash during transaction step "${name}"`);
    return never();
  }
  const started = host.now();
  /** The step's one journal row: completed with its output, or failed with its error. */
  const journal = (end: { output?: Uint8Array | string; error?: StepError }) => {
    const now = host.now();
    sql.run(
      `INSERT INTO _baton_steps (seq, name, occurrence, kind, status, attempts, started_at,
         attempt_started_at, ended_at, output, error, attempt_log)
       VALUES (?, ?, ?, 'do', ?, 1, ?, ?, ?, ?, ?, ?)`,
      seq,
      name,
      occurrence,
      end.error ? "failed" : "completed",
      started,
      started,
      now,
      end.output ?? null,
      end.error ? JSON.stringify(end.error) : null,
      end.error ? `[${attemptRecord(1, now, end.error)}]` : null,
    );
  };
  let value: T;
  // Set once the body is done: a failure from then on is the engine's own write's (a crash).
  let journalFailed = false;
  try {
    value = sql.transaction(() => {
      let result: T;
      if (override?.kind === "throw") throw override.error;
      if (override?.kind === "return") result = override.value as T;
      else result = body(guarded(sql));
      if (isThenable(result)) {
        (result as PromiseLike<unknown>).then(undefined, () => {}); // its rejection is ours now
        throw new BatonError(
          "ASYNC_TRANSACTION",
          `The body of transactional step "${name}" returned a promise: it must be synchronous (no async, no await). Do I/O in a step.do before or after it.`,
          { step: name },
        );
      }
      const bytes = encodeSync(result);
      try {
        journal({ output: replay.blobs.store(`step:${seq}`, bytes) });
      } catch (error) {
        // The engine's own write failing in storage: a crash, not the body's failure.
        journalFailed = isBatonError(error, "STORAGE_ERROR");
        throw error;
      }
      return result;
    });
  } catch (error) {
    if (run.dead) return never();
    // Rolled back with the body's writes: the replay runs the body again. (A failure at the
    // commit itself, after the journal row was written, comes of the body's writes: its own.)
    if (journalFailed) return replay.crash(run, error);
    const stepError: StepError = { ...toStepError(error), nonRetryable: true };
    if (!replay.wrote(run, () => journal({ error: stepError }))) return never();
    throw new StepFailedError(name, 1, stepError);
  }
  host.stepDone(seq, name, () => value);
  return value;
}
