/**
 * Errors designed for the RPC boundary.
 *
 * workerd carries an error's `name`, `message` and own properties (such as `code` and `details`)
 * across native RPC, but not its class: on the caller's side `instanceof BatonError` is false.
 * Use {@link isBatonError} to test for a Baton error and its code on either side of a stub.
 */

/**
 * Every stable error code Baton can raise. Codes never change meaning once released; new codes
 * may be added.
 *
 * @example
 * ```ts
 * ERROR_CODES.includes("CONFLICT" as ErrorCode); // is this a code of this version?
 * ```
 */
export const ERROR_CODES = [
  // Input and limits
  "INVALID_ARGUMENT",
  "INVALID_DURATION",
  "PAYLOAD_TOO_LARGE",
  "LIMIT_EXCEEDED",
  // Access
  "UNAUTHORIZED",
  "FORBIDDEN",
  // Storage and encoding
  "SERIALIZATION_ERROR",
  "STORAGE_ERROR",
  "MIGRATION_ERROR",
  "CONFIGURATION_ERROR",
  // State machines and timers
  "INVALID_TRANSITION",
  "NO_TIMER_HANDLER",
  "TIMER_NOT_FOUND",
  // Executions
  "UNKNOWN_WORKFLOW",
  "INVALID_INPUT",
  "EXECUTION_NOT_FOUND",
  "EXECUTION_CONFLICT",
  "EXECUTION_FINISHED",
  "NONDETERMINISM",
  "STEP_TIMEOUT",
  "STEP_INTERRUPTED",
  "STEP_NOT_FOUND",
  "ASYNC_TRANSACTION",
  "EVENT_TIMEOUT",
  "RESULT_TIMEOUT",
  "EXECUTION_TIMEOUT",
  "CANCELLED",
  "STEP_FAILED",
  "LOOP_LIMIT",
  "INDEX_CONFLICT",
  // Locks
  "LOCK_TIMEOUT",
  "LEASE_EXPIRED",
  "NOT_HOLDER",
  "PERMITS_MISMATCH",
  // Checkpoints and state
  "CONFLICT",
  "CHECKPOINT_NOT_FOUND",
  "STATE_NOT_FOUND",
  "INVALID_TOKEN",
  // Schedules
  "SCHEDULE_NOT_FOUND",
  "SCHEDULE_CONFLICT",
] as const;

/** A stable, documented error code. See {@link ERROR_CODES}. */
export type ErrorCode = (typeof ERROR_CODES)[number];

const CODES: ReadonlySet<string> = new Set(ERROR_CODES);

/** Structured, serializable facts about an error (what limit, which statement, ...). */
export type ErrorDetails = Record<string, unknown>;

/**
 * The one error type Baton throws. It has a stable {@link ErrorCode} in `code`, a message that says
 * what failed and how to fix it, and optional `details` for programs.
 *
 * @example
 * ```ts
 * throw new BatonError("INVALID_ARGUMENT", 'Timer kind must be a non-empty string; got "".', {
 *   argument: "kind",
 * });
 * ```
 */
export class BatonError extends Error {
  /** Marks the error as Baton's; an own property, so it survives native RPC. */
  readonly baton = true as const;
  /** Stable machine-readable code. */
  readonly code: ErrorCode;
  /** Structured facts about the failure. */
  readonly details: ErrorDetails | undefined;

  constructor(code: ErrorCode, message: string, details?: ErrorDetails, options?: ErrorOptions) {
    // The cause is kept as a plain Error (name and message): a cause carrying values RPC cannot
    // clone (a devalue error holds the offending value) would make workerd drop every property
    // of this error, its `code` included, on the way to the caller.
    super(message, options && "cause" in options ? { cause: plainCause(options.cause) } : {});
    // Own property (not a prototype getter) so that it crosses RPC.
    this.name = "BatonError";
    this.code = code;
    this.details = details;
  }
}

function plainCause(cause: unknown): unknown {
  if (cause instanceof Error) {
    const plain: Error & { code?: unknown; details?: unknown } = new Error(cause.message);
    plain.name = cause.name;
    if (cause.stack !== undefined) plain.stack = cause.stack;
    // A Baton error as the cause keeps what programs read from it.
    const { code, details } = cause as { code?: unknown; details?: unknown };
    if (typeof code === "string") plain.code = code;
    if (details !== undefined) {
      try {
        plain.details = structuredClone(details);
      } catch {
        // Not cloneable: left out, like the rest of the cause.
      }
    }
    return plain;
  }
  const kind = typeof cause;
  if (cause === null || ["undefined", "string", "number", "boolean", "bigint"].includes(kind)) {
    return cause;
  }
  try {
    return String(cause);
  } catch {
    return Object.prototype.toString.call(cause);
  }
}

/** The shape of a Baton error as seen by any caller, local or across RPC. */
export interface BatonErrorLike<C extends ErrorCode = ErrorCode> {
  name: string;
  message: string;
  code: C;
  details?: ErrorDetails | undefined;
}

/**
 * True if `error` is a Baton error (optionally with the given code). Works on errors thrown
 * locally and on errors that crossed native RPC or Cap'n Web, where `instanceof` fails.
 *
 * @example
 * ```ts
 * try {
 *   await stub.doSomething();
 * } catch (e) {
 *   if (isBatonError(e, "INVALID_DURATION")) console.log(e.details);
 *   else throw e;
 * }
 * ```
 */
export function isBatonError<C extends ErrorCode>(
  error: unknown,
  code?: C,
): error is BatonErrorLike<C> & Error {
  if (typeof error !== "object" || error === null) return false;
  const e = error as { code?: unknown; baton?: unknown; name?: unknown };
  if (typeof e.code !== "string" || !CODES.has(e.code)) return false;
  if (e.baton !== true && e.name !== "BatonError") return false;
  return code === undefined || e.code === code;
}

/** Short, printable preview of a value for error messages (never the whole value). */
export function preview(value: unknown, max = 60): string {
  let text: string;
  try {
    text = typeof value === "string" ? JSON.stringify(value) : String(value);
    if (typeof value === "object" && value !== null) text = JSON.stringify(value) ?? text;
  } catch {
    text = Object.prototype.toString.call(value);
  }
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** Throws `INVALID_ARGUMENT` naming the argument, the rule and what was received. */
export function invalidArgument(argument: string, rule: string, got: unknown): never {
  throw new BatonError("INVALID_ARGUMENT", `${argument} ${rule}; got ${preview(got)}.`, {
    argument,
  });
}

/** C0 and C1 control characters (and DEL): never part of an id or a name. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * `value` if it is a string of 1 to `max` characters of well-formed Unicode with no control
 * characters: an id, a name or a scope. (A lone surrogate would not survive storage or
 * `getByName`, which turn it into U+FFFD, so `"a\uD800"` would reach the object of `"a\uFFFD"`.)
 *
 * @throws BatonError `INVALID_ARGUMENT` naming `what` otherwise.
 * @example
 * ```ts
 * const stub = env.Executions.getByName(checkId(id, "Execution id"));
 * ```
 */
export function checkId(value: unknown, what: string, max = 256): string {
  if (typeof value !== "string" || value.length === 0 || value.length > max) {
    invalidArgument(what, `must be a string of 1 to ${max} characters`, value);
  }
  if (!value.isWellFormed() || CONTROL.test(value)) {
    invalidArgument(
      what,
      "must be well-formed Unicode (no lone surrogates) without control characters",
      value,
    );
  }
  return value;
}

/**
 * `text` cut to at most `maxBytes` of UTF-8 (whole characters), the note of how much was left out
 * included. Error messages go through it before they are stored: an error that quotes a huge
 * input must not make the write that records the failure exceed SQLite's row limit.
 *
 * @example
 * ```ts
 * truncateText("x".repeat(10_000), 100); // 68 × "x", then "… (9932 more bytes)"
 * ```
 */
export function truncateText(text: string, maxBytes: number): string {
  if (text.length * 3 <= maxBytes) return text; // at most 3 UTF-8 bytes per UTF-16 unit
  const encoder = new TextEncoder();
  const total = encoder.encode(text).byteLength;
  if (total <= maxBytes) return text;
  // The note takes at most this many bytes ("… (" is 5 bytes, a count of up to 16 digits).
  const room = Math.max(0, maxBytes - 32);
  const { read, written } = encoder.encodeInto(text, new Uint8Array(room));
  return `${text.slice(0, read)}… (${total - (written ?? 0)} more bytes)`;
}
