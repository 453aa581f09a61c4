import { encode } from "../foundation/codec.ts";
import { parseDuration } from "../foundation/duration.ts";
import { BatonError } from "../foundation/errors.ts";
import {
  type RetryDelayFunction,
  retryDelay,
  type StepAttempt,
  type StepConfig,
  type StepError,
  StepFailedError,
} from "../workflow/workflow.ts";
import { failedError, toStepError } from "./errors.ts";
import type { Replay } from "./replay.ts";
import { type ResolvedPolicy, stepConfig } from "./retry.ts";
import { type CompensationFn, never, type Run } from "./run.ts";
import { APPEND_ATTEMPT_SQL, attemptRecord, type ExecutionRow } from "./schema.ts";

/** What the attempt history says of an attempt the actor's crash (or reset) cut short. */
const INTERRUPTED: StepError = {
  name: "BatonError",
  code: "STEP_INTERRUPTED",
  message: "The actor stopped during this attempt (evicted, aborted or reset); it ran again.",
};

/** What else a `step.do` call carries: a saga compensation, or that it is one. */
export interface DoExtras {
  compensate?:
    | { fn: CompensationFn; policy: ResolvedPolicy; timeoutMs?: number | undefined }
    | undefined;
  /** This call runs a compensation (it runs even while the run is stopping). */
  compensating?: boolean;
}

/**
 * `step.do`: returns the journaled output of a completed step, or runs attempts until one
 * succeeds, a non-retryable error stops it, or its attempts run out. Each attempt is counted in
 * the journal before its body runs; the backoff between attempts is a `wake` timer, so an
 * eviction during it loses nothing and no attempt starts early or twice. A step found `running`
 * lost its runner to a crash: that attempt counts, and the recovery attempt is made durable
 * before its body runs, so a body that kills the actor every time still uses up its attempts.
 */
export async function runDo<T>(
  replay: Replay,
  run: Run,
  exec: ExecutionRow,
  name: string,
  policy: ResolvedPolicy,
  timeoutMs: number | undefined,
  fn: (a: StepAttempt) => T | Promise<T>,
  extra: DoExtras = {},
): Promise<T> {
  if (run.dead) return never();
  const begun = replay.begin(run, name, "do", extra.compensating);
  if (!begun) return never();
  const { seq, occurrence, row } = begun;
  // The step's configuration as its attempts and its compensation see it: made once, when needed.
  let config: StepConfig | undefined;
  const configOf = () => {
    config ??= stepConfig(policy, timeoutMs);
    return config;
  };
  const done = (value: T): T => {
    if (extra.compensate) {
      run.compensations.push({
        seq,
        name,
        count: occurrence + 1,
        config: configOf(),
        output: value,
        ...extra.compensate,
      });
    }
    return value;
  };
  if (row?.status === "completed") {
    return replay.replayed(run, done((await run.track(replay.blobs.readStepOutput(row))) as T));
  }
  if (row?.status === "failed") throw failedError(row);
  // Stopped by a failure or cancel elsewhere in the original run: it stays stopped on replay.
  if (row?.status === "cancelled" && !extra.compensating) return never();
  if (run.cancelling && !extra.compensating) return replay.frontier(run);
  // A step that was in flight when the execution was paused finishes; others wait. A cancel
  // overrides a pause: compensations run at once.
  if (row?.status !== "running" && !extra.compensating) await replay.passGate(run);
  const { host } = replay;
  const { sql } = host;
  const idempotencyKey = `${exec.execution_id}/${name}/${occurrence}`;
  const maxAttempts = policy.limit + 1;
  let attempts = row?.attempts ?? 0;
  let previousError: StepError | undefined = row?.error ? JSON.parse(row.error) : undefined;
  if (row?.status === "backoff" && row.wake_at !== null) await replay.until(run, seq, row.wake_at);
  // Found running: the runner died mid-attempt. That attempt counts.
  let recovering = row?.status === "running";
  for (;;) {
    if (run.dead) return never();
    // Failing or cancelling: no new attempt (one cut short by a crash still runs again).
    if (run.stopping && !extra.compensating && !recovering) return never();
    if (recovering && attempts >= maxAttempts) {
      const error: StepError = {
        name: "BatonError",
        code: "STEP_INTERRUPTED",
        message: `Step "${name}" was interrupted ${attempts} time(s) (the actor was evicted, aborted or reset while it ran) and has no attempts left.`,
        nonRetryable: true,
      };
      if (!replay.wrote(run, () => replay.stepFailed(seq, attempts, error))) return never();
      throw new StepFailedError(name, attempts, error);
    }
    attempts++;
    const now = host.now();
    // The engine's own writes: one that fails crashes the actor (Replay.crash), never the step.
    const started = replay.wrote(run, () => {
      if (row === undefined && attempts === 1) {
        sql.run(
          `INSERT INTO _baton_steps (seq, name, occurrence, kind, status, attempts, started_at, attempt_started_at)
           VALUES (?, ?, ?, 'do', 'running', 1, ?, ?)`,
          seq,
          name,
          occurrence,
          now,
          now,
        );
      } else if (recovering) {
        // The attempt the crash cut short goes into the history (SET reads the old row).
        sql.run(
          `UPDATE _baton_steps SET status = 'running', attempts = ?, wake_at = NULL,
             ${APPEND_ATTEMPT_SQL}, attempt_started_at = ? WHERE seq = ?`,
          attempts,
          attemptRecord(attempts - 1, now, INTERRUPTED),
          now,
          seq,
        );
      } else {
        sql.run(
          "UPDATE _baton_steps SET status = 'running', attempts = ?, wake_at = NULL, attempt_started_at = ? WHERE seq = ?",
          attempts,
          now,
          seq,
        );
      }
    });
    if (!started) return never();
    // After a crash, make the recovery attempt durable before the body runs, so a body that
    // kills the actor every time still uses up its attempts.
    if (recovering) {
      try {
        await host.storage.sync();
      } catch (error) {
        return replay.crash(run, error);
      }
      if (run.dead) return never();
    }
    recovering = false;
    const controller = new AbortController();
    run.controllers.add(controller);
    const context: StepAttempt = {
      attempt: attempts,
      step: { name, count: occurrence + 1 },
      config: configOf(),
      idempotencyKey,
      signal: controller.signal,
      secret: (label?: string) => replay.secret(label ?? idempotencyKey),
      ...(previousError ? { previousError } : {}),
    };
    const outcome = await run.track(
      attempt(
        overridden<T>(host, name, occurrence, attempts, fn) ?? fn,
        context,
        timeoutMs,
        controller,
      ),
    );
    run.controllers.delete(controller);
    if (run.dead) return never();
    if (outcome.ok) {
      let bytes: Uint8Array;
      try {
        bytes = await encode(outcome.value);
      } catch (error) {
        const stepError = { ...toStepError(error), nonRetryable: true };
        if (!replay.wrote(run, () => replay.stepFailed(seq, attempts, stepError))) return never();
        throw new StepFailedError(name, attempts, stepError);
      }
      if (run.dead) return never();
      // The commit: a big output's bytes go to the value store in the same transaction.
      const committed = replay.wrote(run, () =>
        replay.blobs.storeWith(`step:${seq}`, bytes, (output) =>
          sql.run(
            "UPDATE _baton_steps SET status = 'completed', output = ?, ended_at = ?, wake_at = NULL WHERE seq = ?",
            output,
            host.now(),
            seq,
          ),
        ),
      );
      if (!committed) return never();
      host.stepDone(seq, name, () => outcome.value);
      return done(outcome.value);
    }
    const stepError = toStepError(outcome.error);
    // Aborted because the execution is failing or cancelling: no retry, and not a failure
    // of its own. It is journaled as cancelled (and stays so on a replay).
    const stopped = () => {
      if (!run.stopping || extra.compensating) return false;
      // Journaled, or the actor crashed (then the run is dead): either way this call parks.
      replay.wrote(run, () =>
        sql.run(
          "UPDATE _baton_steps SET status = 'cancelled', ended_at = ?, error = ? WHERE seq = ?",
          host.now(),
          JSON.stringify(stepError),
          seq,
        ),
      );
      return true;
    };
    if (stopped()) return never();
    if (stepError.nonRetryable || attempts >= maxAttempts) {
      if (!replay.wrote(run, () => replay.stepFailed(seq, attempts, stepError))) return never();
      throw new StepFailedError(name, attempts, stepError);
    }
    const failedAt = host.now();
    // The failure is journaled first: an actor lost while a delay function runs retries at once,
    // with this attempt's error on record.
    let wakeAt = failedAt + (policy.delayFn ? 0 : retryDelay(policy, attempts));
    const backoff = replay.wrote(run, () =>
      sql.run(
        `UPDATE _baton_steps SET status = 'backoff', wake_at = ?, error = ?, ${APPEND_ATTEMPT_SQL}
         WHERE seq = ?`,
        wakeAt,
        JSON.stringify(stepError),
        attemptRecord(attempts, failedAt, stepError),
        seq,
      ),
    );
    if (!backoff) return never();
    if (policy.delayFn) {
      const computed = await run.track(dynamicDelay(policy.delayFn, context, outcome.error));
      if (run.dead) return never();
      if (stopped()) return never();
      if (!computed.ok) {
        // The attempt's own failure is on record already: this one ends the step.
        const error = { ...toStepError(computed.error), nonRetryable: true };
        const failed = replay.wrote(run, () =>
          sql.run(
            "UPDATE _baton_steps SET status = 'failed', error = ?, ended_at = ?, wake_at = NULL WHERE seq = ?",
            JSON.stringify(error),
            host.now(),
            seq,
          ),
        );
        if (!failed) return never();
        throw new StepFailedError(name, attempts, error);
      }
      wakeAt = failedAt + computed.value;
      const delayed = replay.wrote(run, () =>
        sql.run("UPDATE _baton_steps SET wake_at = ? WHERE seq = ?", wakeAt, seq),
      );
      if (!delayed) return never();
    }
    previousError = stepError;
    await replay.until(run, seq, wakeAt);
    // A pause holds further attempts too.
    await replay.passGate(run);
  }
}

type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

/** How long a delay function may take before the step fails. */
const DELAY_FUNCTION_MS = 60_000;

/** The wait before the next attempt, from the policy's delay function (a bad one fails the step). */
async function dynamicDelay(
  fn: RetryDelayFunction,
  ctx: StepAttempt,
  error: unknown,
): Promise<Outcome<number>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const err = error instanceof Error ? error : new Error(String(error));
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new BatonError(
              "STEP_TIMEOUT",
              `The retry delay function of step "${ctx.step.name}" did not return within ${DELAY_FUNCTION_MS} ms.`,
            ),
          ),
        DELAY_FUNCTION_MS,
      );
    });
    const duration = await Promise.race([fn({ ctx, error: err }), late]);
    return { ok: true, value: parseDuration(duration) };
  } catch (failure) {
    return { ok: false, error: failure };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The body a test put in place of this attempt's (baton/testing's step mocks), or undefined:
 * run the step's own. Production has no hooks, so this is always undefined there.
 */
function overridden<T>(
  host: Replay["host"],
  name: string,
  occurrence: number,
  attempt: number,
  fn: (a: StepAttempt) => T | Promise<T>,
): ((a: StepAttempt) => Promise<T>) | undefined {
  const override = host.testHooks()?.step?.(name, occurrence, attempt);
  if (!override) return undefined;
  return async (a) => {
    if (override.kind === "return") return override.value as T;
    if (override.kind === "throw") throw override.error;
    // A crash after the body: its effects happened, its result is never journaled.
    // (A body that throws, at once or later, has still run: the crash comes next either way.)
    if (override.after) await (async () => fn(a))().catch(() => undefined);
    // The attempt is journaled (as the platform would have it by the time a body does I/O),
    // then the actor dies — unless the run was stopped meanwhile (a cancel, a failure elsewhere).
    await host.storage.sync();
    if (a.signal.aborted) throw a.signal.reason;
    host.abort(`baton/testing: a crash during attempt ${attempt} of step "${name}"`);
    return never<T>();
  };
}

/** One attempt of a step body, cut off (its signal aborted) after `timeoutMs`. */
async function attempt<T>(
  fn: (a: StepAttempt) => T | Promise<T>,
  context: StepAttempt,
  timeoutMs: number | undefined,
  controller: AbortController,
): Promise<Outcome<T>> {
  const body = (async () => fn(context))().then(
    (value): Outcome<T> => ({ ok: true, value }),
    (error): Outcome<T> => ({ ok: false, error }),
  );
  if (timeoutMs === undefined) return body;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<Outcome<T>>((resolve) => {
    timer = setTimeout(() => {
      const error = new BatonError(
        "STEP_TIMEOUT",
        `Attempt ${context.attempt} timed out after ${timeoutMs} ms.`,
        { timeoutMs, attempt: context.attempt },
      );
      controller.abort(error);
      resolve({ ok: false, error });
    }, timeoutMs);
  });
  try {
    return await Promise.race([body, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
