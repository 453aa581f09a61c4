import { MAX_DURATION_MS, parseDuration } from "../foundation/duration.ts";
import { isBatonError } from "../foundation/errors.ts";
import {
  type RetryPolicy,
  type Step,
  type StepAttempt,
  StepFailedError,
  type StepOptions,
} from "../workflow/workflow.ts";

/** Cloudflare Workflows' duration units (Baton's durations take these and more). */
export type WorkflowDurationLabel =
  | "second"
  | "minute"
  | "hour"
  | "day"
  | "week"
  | "month"
  | "year";
/** A duration as Workflows writes it: `"5 seconds"`, `"1 month"`, or milliseconds. */
export type WorkflowSleepDuration = `${number} ${WorkflowDurationLabel}${"s" | ""}` | number;
export type WorkflowDelayDuration = WorkflowSleepDuration;
export type WorkflowTimeoutDuration = WorkflowSleepDuration;
export type WorkflowRetentionDuration = WorkflowSleepDuration;
export type WorkflowBackoff = "constant" | "linear" | "exponential";

/**
 * What a `step.do` callback receives: Workflows' step context (`step.name`, `step.count`,
 * `attempt`, `config`) and Baton's own (`idempotencyKey`, `signal`, `previousError`, `secret`).
 */
export type WorkflowStepContext = StepAttempt;

/** A retry delay computed from the failed attempt's context and its error. */
export type WorkflowDelayFunction = (input: {
  ctx: WorkflowStepContext;
  error: Error;
}) => WorkflowDelayDuration | Promise<WorkflowDelayDuration>;

/** A step's retries and timeout, as Workflows configures them. */
export interface WorkflowStepConfig {
  retries?: {
    limit: number;
    delay: WorkflowDelayDuration | WorkflowDelayFunction;
    backoff?: WorkflowBackoff;
  };
  timeout?: WorkflowTimeoutDuration;
  /** Accepted for compatibility; Baton keeps step outputs in the execution's own storage. */
  sensitive?: "output";
}

/** What a rollback handler receives (Workflows' `WorkflowRollbackContext`). */
export interface WorkflowRollbackContext<T = unknown> {
  /** The rolled-back step's context: its name and count, its configuration. */
  ctx: WorkflowStepContext;
  /** Why the rollback runs: the workflow's error, or `Terminated` for `terminate({ rollback: true })`. */
  error: Error;
  /** The step's output. */
  output: T | undefined;
  /** @deprecated Use `ctx.step.name` and `ctx.step.count`. `"<name>-<count>"`. */
  stepName: string;
}

/** A step's rollback (saga compensation), as Workflows declares it after the callback. */
export interface WorkflowStepRollbackOptions<T = unknown> {
  rollback: (context: WorkflowRollbackContext<T>) => Promise<void>;
  rollbackConfig?: Pick<WorkflowStepConfig, "retries" | "timeout">;
}

/** An event a `waitForEvent` returns. */
export type WorkflowStepEvent<T> = { payload: Readonly<T>; timestamp: Date; type: string };

/**
 * Cloudflare Workflows' `step`, over Baton's engine: what a {@link WorkflowEntrypoint}'s `run`
 * receives. Workflows' defaults apply: a step attempt times out after 10 minutes, a
 * `waitForEvent` after 24 hours, and both timeouts throw {@link WorkflowTimeoutError}. Baton's
 * own step kinds are there too (`child`, `children`, `checkpoint`, `transaction`, `patched`,
 * `deprecatePatch`).
 */
export interface WorkflowStep
  extends Pick<
    Step,
    "child" | "children" | "checkpoint" | "transaction" | "patched" | "deprecatePatch"
  > {
  do<T>(
    name: string,
    callback: (ctx: WorkflowStepContext) => Promise<T>,
    rollbackOptions?: WorkflowStepRollbackOptions<T>,
  ): Promise<T>;
  do<T>(
    name: string,
    config: WorkflowStepConfig,
    callback: (ctx: WorkflowStepContext) => Promise<T>,
    rollbackOptions?: WorkflowStepRollbackOptions<T>,
  ): Promise<T>;
  sleep(name: string, duration: WorkflowSleepDuration): Promise<void>;
  sleepUntil(name: string, timestamp: Date | number): Promise<void>;
  waitForEvent<T>(
    name: string,
    options: { type: string; timeout?: WorkflowTimeoutDuration },
  ): Promise<WorkflowStepEvent<T>>;
}

/**
 * A step attempt or an event wait ran out of time, as Workflows reports it
 * (`Execution timed out after <ms>ms`). `code` is Baton's: `STEP_TIMEOUT` or `EVENT_TIMEOUT`.
 */
export class WorkflowTimeoutError extends Error {
  readonly code: "STEP_TIMEOUT" | "EVENT_TIMEOUT";
  constructor(ms: number, code: "STEP_TIMEOUT" | "EVENT_TIMEOUT") {
    super(`Execution timed out after ${ms}ms`);
    this.name = "WorkflowTimeoutError";
    this.code = code;
  }
}

/** Workflows' default step timeout. */
const STEP_TIMEOUT = "10 minutes";
/** Workflows' default `waitForEvent` timeout. */
const EVENT_TIMEOUT = "24 hours";

/** Workflows' retries as Baton's policy (no cap on the backoff, as in Workflows). */
function retryPolicy(retries: WorkflowStepConfig["retries"]): RetryPolicy | undefined {
  if (retries === undefined) return undefined;
  if (typeof retries !== "object" || retries === null) return retries as never; // refused below
  return {
    limit: retries.limit,
    ...(retries.delay === undefined ? {} : { delay: retries.delay as RetryPolicy["delay"] }),
    ...(retries.backoff === undefined ? {} : { backoff: retries.backoff }),
    maxDelay: MAX_DURATION_MS,
  };
}

/** The error a rollback sees for a terminate: Workflows' `Terminated`. */
function rollbackCause(error: Error): Error {
  if (!isBatonError(error, "CANCELLED")) return error;
  const terminated = new Error("Instance terminated during rollback");
  terminated.name = "Terminated";
  return terminated;
}

/** Workflows' `step` over Baton's. */
export function workflowsStep(step: Step): WorkflowStep {
  return {
    async do<T>(
      name: string,
      configOrCallback: WorkflowStepConfig | ((ctx: WorkflowStepContext) => Promise<T>),
      callbackOrRollback?:
        | ((ctx: WorkflowStepContext) => Promise<T>)
        | WorkflowStepRollbackOptions<T>,
      maybeRollback?: WorkflowStepRollbackOptions<T>,
    ): Promise<T> {
      const short = typeof configOrCallback === "function";
      const config = (short ? {} : (configOrCallback ?? {})) as WorkflowStepConfig;
      const callback = (short ? configOrCallback : callbackOrRollback) as (
        ctx: WorkflowStepContext,
      ) => Promise<T>;
      const rollback = (short ? callbackOrRollback : maybeRollback) as
        | WorkflowStepRollbackOptions<T>
        | undefined;
      const timeout = config.timeout ?? STEP_TIMEOUT;
      const options: StepOptions<T> = { timeout };
      // Workflows caps no backoff, configured or not.
      options.retries = retryPolicy(config.retries) ?? { maxDelay: MAX_DURATION_MS };
      if (rollback !== undefined) {
        const handler = rollback?.rollback;
        options.compensate = (output, attempt, cause) =>
          handler({
            ctx: cause ? { ...attempt, step: cause.step, config: cause.config } : attempt,
            error: rollbackCause(cause?.error ?? new Error("rollback")),
            output,
            stepName: cause ? `${cause.step.name}-${cause.step.count}` : name,
          });
        options.compensationRetries = retryPolicy(rollback?.rollbackConfig?.retries) ?? {
          limit: 5,
          delay: "10 seconds",
          backoff: "exponential",
        };
        options.compensationTimeout = rollback?.rollbackConfig?.timeout ?? STEP_TIMEOUT;
      }
      try {
        return await step.do(name, options, callback);
      } catch (error) {
        if (error instanceof StepFailedError && error.code === "STEP_TIMEOUT") {
          throw new WorkflowTimeoutError(parseDuration(timeout), "STEP_TIMEOUT");
        }
        throw error;
      }
    },
    sleep: (name, duration) => step.sleep(name, duration),
    sleepUntil: (name, timestamp) => step.sleepUntil(name, timestamp),
    async waitForEvent<T>(
      name: string,
      options: { type: string; timeout?: WorkflowTimeoutDuration },
    ): Promise<WorkflowStepEvent<T>> {
      const timeout = options?.timeout ?? EVENT_TIMEOUT;
      try {
        const event = await step.waitForEvent<T>(name, { type: options?.type, timeout });
        return { payload: event.payload, type: event.type, timestamp: new Date(event.receivedAt) };
      } catch (error) {
        if (isBatonError(error, "EVENT_TIMEOUT")) {
          throw new WorkflowTimeoutError(parseDuration(timeout), "EVENT_TIMEOUT");
        }
        throw error;
      }
    },
    child: (name, workflow, input) => step.child(name, workflow, input),
    children: (name, runs) => step.children(name, runs),
    checkpoint: (name) => step.checkpoint(name),
    patched: (id) => step.patched(id),
    deprecatePatch: (id) => step.deprecatePatch(id),
    transaction: (name, body) => step.transaction(name, body),
  };
}
