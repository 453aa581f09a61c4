import { BatonError, invalidArgument, truncateText } from "../foundation/errors.ts";
import { isNonRetryable, type StepError, StepFailedError } from "../workflow/workflow.ts";
import type { StepRow } from "./schema.ts";
import type { ExecutionError } from "./types.ts";

const MAX_STEP_NAME = 256;
/**
 * Longest stored error message (UTF-8 bytes); longer ones are cut. An error quoting a big input
 * must not make the write that records the failure exceed the row limit (and leave the execution
 * running forever, failing that write on every replay).
 */
export const MAX_ERROR_MESSAGE_BYTES = 8 * 1024;
/** Longest stored error name and code. */
const MAX_ERROR_TAG = 256;
const EVENT_TYPE = /^[\w.:/-]{1,128}$/;

/** Any thrown value as a journaled step error (name, message, its own string `code`). */
export function toStepError(error: unknown): StepError {
  if (error instanceof Error || (typeof error === "object" && error !== null)) {
    const e = error as { name?: unknown; message?: unknown; code?: unknown };
    return {
      name: typeof e.name === "string" ? truncateText(e.name, MAX_ERROR_TAG) : "Error",
      message: truncateText(
        typeof e.message === "string" ? e.message : safeString(error),
        MAX_ERROR_MESSAGE_BYTES,
      ),
      ...(typeof e.code === "string" ? { code: truncateText(e.code, MAX_ERROR_TAG) } : {}),
      ...(isNonRetryable(error) ? { nonRetryable: true } : {}),
    };
  }
  return { name: "Error", message: truncateText(safeString(error), MAX_ERROR_MESSAGE_BYTES) };
}

/** `String(value)`, or a placeholder when even that throws (a hostile toString). */
function safeString(value: unknown): string {
  try {
    return String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

/** What made the workflow fail, as the execution reports it. `current`: the latest step. */
export function toExecutionError(error: unknown, current: string | null): ExecutionError {
  if (error instanceof StepFailedError) {
    return {
      code: truncateText(error.code, MAX_ERROR_TAG),
      message: truncateText(error.message, MAX_ERROR_MESSAGE_BYTES),
      name: truncateText(error.name, MAX_ERROR_TAG),
      step: error.step,
      attempt: error.attempt,
    };
  }
  const info = toStepError(error);
  return {
    code: info.code ?? "WORKFLOW_FAILED",
    message: info.message,
    name: info.name,
    step: info.code === "NONDETERMINISM" ? current : null,
    attempt: null,
  };
}

/** The error a replay throws again for a step the journal shows failed. */
export function failedError(row: StepRow): StepFailedError {
  const error: StepError = row.error
    ? JSON.parse(row.error)
    : { name: "Error", message: "step failed" };
  return new StepFailedError(row.name, row.attempts, error);
}

export function nondeterminism(detail: string, details?: Record<string, unknown>): BatonError {
  return new BatonError(
    "NONDETERMINISM",
    `Replay does not match the journal: ${detail}. Deploy such changes as a new workflow version and keep the old one registered for running executions.`,
    details,
  );
}

export function eventTimeout(name: string, type: string): BatonError {
  return new BatonError(
    "EVENT_TIMEOUT",
    `step.waitForEvent("${name}") timed out waiting for an event of type "${type}".`,
    { step: name, type },
  );
}

export function checkStepName(name: unknown): asserts name is string {
  if (typeof name !== "string" || name.length === 0 || name.length > MAX_STEP_NAME) {
    invalidArgument("Step name", `must be a string of 1 to ${MAX_STEP_NAME} characters`, name);
  }
}

/** Event types: 1-128 characters of letters, digits and _ . : / -. */
export function checkEventType(type: unknown): asserts type is string {
  if (typeof type !== "string" || !EVENT_TYPE.test(type)) {
    invalidArgument(
      "Event type",
      "must be 1-128 characters of letters, digits and _ . : / -",
      type,
    );
  }
}
