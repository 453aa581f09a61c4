import type { CheckpointActor } from "../../actors/checkpoint-actor.ts";
import type { Lease, LockActor } from "../../actors/lock-actor.ts";
import type { Value } from "../execution/types.ts";
import { findNamespace, requireNamespace } from "../foundation/bindings.ts";
import { type Duration, parseDuration } from "../foundation/duration.ts";
import {
  BatonError,
  checkId,
  type ErrorCode,
  invalidArgument,
  isBatonError,
} from "../foundation/errors.ts";
import { RESERVED_ACCESS } from "../foundation/reserved.ts";
import { CheckpointsClient, ResumeTokens } from "./checkpoints.ts";
import { LocksClient } from "./locks.ts";

/** The state shape of the seed's StateManager (any codec value works). */
export interface ExecutionState {
  id: string;
  status: "running" | "waiting" | "paused" | "completed" | "failed";
  input?: Record<string, unknown>;
  context?: Record<string, unknown>;
  memberOutputs?: Map<string, unknown>;
  currentMember?: string;
  startTime: number;
  metadata?: Record<string, unknown>;
}

/** Options of a {@link StateManager}. */
export interface StateManagerOptions {
  /** The Worker's env; the actors are found by binding name (see `bindings`). */
  env: object;
  /** The execution whose state this is. 1-200 characters. */
  executionId: string;
  /** How long state and checkpoints live after their last save. Default 24 hours. */
  ttl?: Duration;
  /**
   * Binding names. Defaults: `Checkpoints`, `Locks`, and `Executions` — the Execution actor
   * binding in the Checkpoint actor's env, through which resume tokens deliver their event. When
   * `executions` is not given and `env` has no `Executions` binding, tokens resume the state only.
   */
  bindings?: { checkpoints?: string; locks?: string; executions?: string };
  /** Lease length of `lock()`. Default 60 seconds. */
  lockTtl?: Duration;
}

/** A saved checkpoint of the state, as `listCheckpoints()` returns it. */
export interface StateCheckpoint<S> {
  name: string;
  timestamp: number;
  state: S;
}

/** Options of `pause()`. */
export interface PauseOptions {
  /** The member (step) that paused. */
  member: string;
  reason?: string;
  data?: Value;
  /** When the resume token expires (ms since the epoch). Default: the manager's ttl from now. */
  expiresAt?: number;
  /** The event type the token delivers (what the execution waits for). Default "resume". */
  event?: string;
}

const STATE = "$state";
const DEFAULT_TTL = "24 hours";

/** The error codes the seed's StateManager documents: the only ones this facade throws. */
const SEED_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "STATE_NOT_FOUND",
  "LOCK_TIMEOUT",
  "CHECKPOINT_NOT_FOUND",
  "SERIALIZATION_ERROR",
  "STORAGE_ERROR",
  "INVALID_TOKEN",
  "CONFLICT",
]);

/** Tries of a state change that only marks the state (pause, resume) over concurrent saves. */
const MARK_TRIES = 10;

/**
 * The seed's `StateManager`, built on Baton's actors: state and checkpoints are versioned
 * snapshots in a Checkpoint actor (scope `state:<executionId>`), `lock`/`unlock` use a Lock
 * actor, and `pause`/`resume` use resume tokens. Maps, Dates, BigInts ... come back as they went
 * in.
 *
 * Saves are optimistic: a manager remembers the version it last loaded or saved, and a save over
 * a newer version fails with `CONFLICT` (reload and retry). Error codes, the seed's only:
 * `STATE_NOT_FOUND`, `LOCK_TIMEOUT`, `CHECKPOINT_NOT_FOUND`, `SERIALIZATION_ERROR`,
 * `STORAGE_ERROR`, `INVALID_TOKEN`, `CONFLICT`. A malformed argument to a method is
 * `SERIALIZATION_ERROR` (`details.argument` names it; `restore` of a malformed name is
 * `CHECKPOINT_NOT_FOUND`); only the constructor refuses bad configuration (a malformed
 * `executionId`, `ttl`, a missing binding) with `INVALID_ARGUMENT`, before any state operation.
 *
 * It needs no Baton execution behind its id: `pause()` then hands out a token that
 * `resume(token, input)` redeems once, marking the state running and handing `input` over as
 * the paused member's output (`memberOutputs`). When an execution waits behind the id, the token
 * also delivers `input` to it as the event it waits for.
 *
 * @example
 * ```ts
 * const state = new StateManager<ExecutionState>({ env, executionId: "exec_abc123" });
 * await state.save({ id: "exec_abc123", status: "running", startTime: Date.now(), memberOutputs: new Map() });
 * await state.update({ currentMember: "approval" });
 * await state.transaction((s) => { s.memberOutputs?.set("payment", { id: "ch_1" }); });
 * await state.checkpoint("before-payment");
 * const token = await state.pause({ member: "approval", reason: "waiting_for_approval" });
 * ```
 */
export class StateManager<S extends Value = ExecutionState> {
  readonly executionId: string;
  /** State time-to-live in ms. */
  readonly ttl: number;
  readonly #checkpoints: CheckpointsClient;
  readonly #locks: LocksClient;
  readonly #tokens: ResumeTokens;
  readonly #lockTtl: number;
  readonly #executionsBinding: string | null;
  readonly #owner = `state-manager:${crypto.randomUUID()}`;
  #version: number | undefined;
  #lease: Lease | undefined;

  constructor(options: StateManagerOptions) {
    checkId(options?.executionId, "executionId", 200);
    this.executionId = options.executionId;
    this.ttl = duration("ttl", options.ttl ?? DEFAULT_TTL);
    this.#lockTtl = duration("lockTtl", options.lockTtl ?? "60 seconds");
    const env = options.env as Record<string, unknown>;
    // Without a binding to deliver through, tokens resume the state only.
    this.#executionsBinding =
      options.bindings?.executions ?? (findNamespace(env, "Executions") ? "Executions" : null);
    const checkpointNs = namespace(env, options.bindings?.checkpoints ?? "Checkpoints");
    // `state:<id>` is one of Baton's reserved scopes (and lock names): only this class reaches it.
    this.#checkpoints = new CheckpointsClient(
      checkpointNs as DurableObjectNamespace<CheckpointActor>,
      RESERVED_ACCESS,
    );
    this.#tokens = new ResumeTokens(checkpointNs as DurableObjectNamespace<CheckpointActor>);
    this.#locks = new LocksClient(
      namespace(env, options.bindings?.locks ?? "Locks") as DurableObjectNamespace<LockActor>,
      RESERVED_ACCESS,
    );
  }

  get #scope(): string {
    return `state:${this.executionId}`;
  }

  /**
   * Saves the state. Over a version newer than the one this manager last loaded or saved, fails
   * with `CONFLICT` and changes nothing.
   */
  async save(state: S): Promise<void> {
    await this.#saveAt(state, this.#version);
  }

  /** Saves over exactly `expected` (the version the caller read): `CONFLICT` otherwise. */
  async #saveAt(state: S, expected: number | undefined): Promise<void> {
    const saved = await this.#storage(() =>
      this.#checkpoints.save(this.#scope, STATE, state, {
        ...(expected === undefined ? {} : { expectedVersion: expected }),
        ttl: this.ttl,
        keep: 1,
      }),
    );
    this.#version = saved.version;
  }

  /** The state, or `null` when there is none. */
  async load(): Promise<S | null> {
    return (await this.#read()).value;
  }

  /** Reads the state and the version it is at (0 when there is none). */
  async #read(): Promise<{ value: S | null; version: number }> {
    try {
      const loaded = await this.#storage(() => this.#checkpoints.load<S>(this.#scope, STATE));
      this.#version = loaded.version;
      return { value: loaded.value, version: loaded.version };
    } catch (error) {
      if (isBatonError(error, "CHECKPOINT_NOT_FOUND")) {
        this.#version = 0;
        return { value: null, version: 0 };
      }
      throw error;
    }
  }

  /**
   * Merges `updates` into the state (Maps are merged entry by entry) and saves it, optimistically:
   * `CONFLICT` if it changed since it was read. `STATE_NOT_FOUND` when there is no state.
   */
  async update(updates: Partial<S>): Promise<S> {
    if (typeof updates !== "object" || updates === null)
      badArgument("updates", "must be an object", updates);
    return this.transaction((state) => merge(state, updates));
  }

  /** Deletes the state and every checkpoint of it. */
  async delete(): Promise<void> {
    await this.#storage(async () => {
      for (const cp of await this.#checkpoints.list(this.#scope))
        await this.#checkpoints.delete(this.#scope, cp.name);
    });
    this.#version = 0;
  }

  /**
   * Reads the state, lets `fn` change it (in place, or by returning a new state), and saves it —
   * all or nothing: if `fn` throws, nothing is saved; if the state changed meanwhile, `CONFLICT`.
   */
  async transaction(fn: (state: S) => S | undefined | Promise<S | undefined>): Promise<S> {
    if (typeof fn !== "function") badArgument("fn", "must be a function", fn);
    // The version read here is the one the save must find: concurrent calls on this same
    // manager cannot slip past each other.
    const { value: current, version } = await this.#read();
    if (current === null) throw this.#notFound();
    const draft = structuredClone(current);
    const next = ((await fn(draft)) ?? draft) as S;
    await this.#saveAt(next, version);
    return next;
  }

  /** Saves the current state as checkpoint `name`. `STATE_NOT_FOUND` when there is no state. */
  async checkpoint(name: string): Promise<void> {
    checkName(name, "SERIALIZATION_ERROR");
    const state = await this.load();
    if (state === null) throw this.#notFound();
    await this.#storage(() =>
      this.#checkpoints.save(this.#scope, `checkpoint:${name}`, state, { ttl: this.ttl, keep: 1 }),
    );
  }

  /** Makes checkpoint `name` the current state again. `CHECKPOINT_NOT_FOUND` when absent. */
  async restore(name: string): Promise<S> {
    checkName(name, "CHECKPOINT_NOT_FOUND");
    const { value } = await this.#storage(() =>
      this.#checkpoints.load<S>(this.#scope, `checkpoint:${name}`),
    );
    const { version } = await this.#read();
    await this.#saveAt(value, version);
    return value;
  }

  /** The checkpoints, oldest first, with their states. */
  async listCheckpoints(): Promise<Array<StateCheckpoint<S>>> {
    const all = await this.#storage(() => this.#checkpoints.list(this.#scope));
    const out: Array<StateCheckpoint<S>> = [];
    for (const cp of all) {
      if (!cp.name.startsWith("checkpoint:")) continue;
      const { value } = await this.#storage(() => this.#checkpoints.load<S>(this.#scope, cp.name));
      out.push({ name: cp.name.slice("checkpoint:".length), timestamp: cp.savedAt, state: value });
    }
    return out;
  }

  /**
   * Takes the execution's lock. Without `timeout`, answers at once (`false` when it is held);
   * with `timeout` (ms or a duration), waits in line and fails with `LOCK_TIMEOUT` after it.
   */
  async lock(options: { timeout?: Duration } = {}): Promise<boolean> {
    // Already held? Ask the lock (renewing the lease): one that ran out is no longer ours.
    if (this.#lease) {
      try {
        this.#lease = await this.#locks.renew(this.#scope, this.#lease, this.#lockTtl);
        return true;
      } catch (error) {
        if (!isBatonError(error, "LEASE_EXPIRED") && !isBatonError(error, "NOT_HOLDER"))
          throw this.#seedError(error);
        this.#lease = undefined;
      }
    }
    const got = await this.#storage(() =>
      this.#locks.acquire(this.#scope, {
        owner: this.#owner,
        ttl: this.#lockTtl,
        ...(options?.timeout === undefined ? {} : { wait: options.timeout }),
      }),
    );
    if (!got.acquired) return false;
    this.#lease = got.lease;
    return true;
  }

  /** Releases the lock this manager holds (nothing if it holds none). */
  async unlock(): Promise<void> {
    const lease = this.#lease;
    if (!lease) return;
    this.#lease = undefined;
    await this.#locks.release(this.#scope, lease).catch((error: unknown) => {
      if (!isBatonError(error, "LEASE_EXPIRED") && !isBatonError(error, "NOT_HOLDER"))
        throw this.#seedError(error);
    });
  }

  /** True when someone holds the execution's lock. */
  isLocked(): Promise<boolean> {
    return this.#storage(() => this.#locks.isLocked(this.#scope));
  }

  /**
   * Pauses for a human: marks the state paused (saving a new one if there is none) and returns a
   * resume token — unguessable, single-use, expiring — that `resume(token, input)` redeems.
   */
  async pause(options: PauseOptions): Promise<string> {
    if (typeof options?.member !== "string" || options.member.length === 0) {
      badArgument("member", "must be a non-empty string", options?.member);
    }
    const expiresAt = options.expiresAt ?? Date.now() + this.ttl;
    if (!Number.isFinite(expiresAt) || expiresAt <= Date.now()) {
      badArgument(
        "expiresAt",
        "must be a time in the future (ms since the epoch)",
        options.expiresAt,
      );
    }
    const token = await this.#storage(() =>
      this.#tokens.issue({
        executionId: this.executionId,
        event: options.event ?? "resume",
        binding: this.#executionsBinding,
        ttl: expiresAt - Date.now(),
        data: {
          member: options.member,
          reason: options.reason ?? null,
          data: options.data ?? null,
        },
      }),
    );
    await this.#mark((state) => ({
      ...(state ?? this.#newState()),
      status: "paused",
      currentMember: options.member,
    }));
    return token;
  }

  /**
   * Redeems a resume token with `input`: the state is marked running, and `input` becomes the
   * paused member's output (`memberOutputs`); an execution waiting behind the id also receives
   * `input` as the event it waits for. `INVALID_TOKEN` for a used, expired or unknown token, one
   * issued for another execution (that token stays unused), or one whose execution has ended.
   */
  async resume(token: string, input: Value = null): Promise<void> {
    let member: unknown;
    try {
      // Only this execution's tokens: another's is refused and stays unused.
      const redeemed = await this.#tokens.redeem(token, input, { executionId: this.executionId });
      member = (redeemed.data as { member?: unknown } | null)?.member;
    } catch (error) {
      // No Baton execution behind the id: the token is used up, and the state resumes.
      if (!isBatonError(error, "EXECUTION_NOT_FOUND")) throw this.#seedError(error);
    }
    const running = (state: ExecutionState | null): ExecutionState => {
      const current = state ?? this.#newState();
      const at = typeof member === "string" ? member : current.currentMember;
      const outputs = current.memberOutputs;
      return {
        ...current,
        status: "running",
        ...(typeof at === "string" && (outputs === undefined || outputs instanceof Map)
          ? { memberOutputs: new Map([...(outputs ?? []), [at, input]]) }
          : {}),
      };
    };
    try {
      await this.#mark(running);
    } catch (error) {
      // The token is used up (and an execution behind the id has its input): say so, so the
      // caller marks the state with update() instead of retrying a token that is gone.
      const seed = this.#seedError(error) as BatonError;
      throw new BatonError(
        seed.code,
        `The resume token was redeemed, but the state could not be marked running: ${seed.message} Mark it with update({ status: "running" }).`,
        { ...seed.details, tokenRedeemed: true },
        { cause: error },
      );
    }
  }

  /**
   * Changes the state's marks (status, member, outputs) over whatever version is current:
   * re-read and re-applied on a concurrent save, so a pause or a resume is not lost to one.
   * A state that is not an object is left alone.
   */
  async #mark(change: (state: ExecutionState | null) => ExecutionState): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const { value: state, version } = await this.#read();
      if (state !== null && (typeof state !== "object" || Array.isArray(state))) return;
      try {
        await this.#saveAt(change(state as ExecutionState | null) as unknown as S, version);
        return;
      } catch (error) {
        if (!isBatonError(error, "CONFLICT") || attempt >= MARK_TRIES) throw error;
      }
    }
  }

  /** The state `pause` and `resume` save when there is none yet (the seed's shape). */
  #newState(): ExecutionState {
    return { id: this.executionId, status: "running", startTime: Date.now() };
  }

  #notFound(): BatonError {
    return new BatonError(
      "STATE_NOT_FOUND",
      `No state is saved for execution "${this.executionId}".`,
      {
        executionId: this.executionId,
      },
    );
  }

  /** Runs a call to Baton's actors, its errors given one of the seed's codes. */
  async #storage<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      throw this.#seedError(error);
    }
  }

  /**
   * `error` with one of the seed's codes: those pass as they are (a malformed argument, a
   * duration included, is `SERIALIZATION_ERROR`); a lock queue that is full is
   * `LOCK_TIMEOUT`; a token whose execution has ended is `INVALID_TOKEN`; a value too large to
   * store is `STORAGE_ERROR`, as is anything else (the original code in `details.cause`).
   */
  #seedError(error: unknown): Error {
    if (isBatonError(error) && SEED_CODES.has(error.code)) return error;
    const cause = isBatonError(error) ? error.code : null;
    const message = error instanceof Error ? error.message : String(error);
    const details = { executionId: this.executionId, cause };
    if (cause === "INVALID_DURATION" || cause === "INVALID_ARGUMENT") {
      return new BatonError("SERIALIZATION_ERROR", message, details, { cause: error });
    }
    if (cause === "LIMIT_EXCEEDED" || cause === "LOCK_TIMEOUT") {
      return new BatonError("LOCK_TIMEOUT", message, details, { cause: error });
    }
    if (cause === "EXECUTION_FINISHED" || cause === "INVALID_TRANSITION") {
      return new BatonError(
        "INVALID_TOKEN",
        `This resume token can no longer resume anything: ${message}`,
        details,
        { cause: error },
      );
    }
    return new BatonError(
      "STORAGE_ERROR",
      `State storage failed for execution "${this.executionId}": ${message}`,
      details,
      { cause: error },
    );
  }
}

function namespace(env: Record<string, unknown> | undefined, binding: string): unknown {
  return requireNamespace(
    env,
    binding,
    `StateManager needs a Durable Object binding "${binding}" in env (see bindings in its options).`,
  );
}

/** A duration option, `INVALID_ARGUMENT` (the seed has no code of its own for it) when malformed. */
function duration(option: string, value: Duration): number {
  try {
    return parseDuration(value);
  } catch (error) {
    return invalidArgument(option, `must be a duration: ${(error as Error).message}`, value);
  }
}

/** A method's malformed argument: the seed has no code for it, so `SERIALIZATION_ERROR`. */
function badArgument(argument: string, problem: string, value: unknown): never {
  try {
    return invalidArgument(argument, problem, value);
  } catch (error) {
    const { message, details } = error as BatonError;
    throw new BatonError("SERIALIZATION_ERROR", message, {
      ...details,
      argument,
      cause: "INVALID_ARGUMENT",
    });
  }
}

function checkName(
  name: unknown,
  code: "SERIALIZATION_ERROR" | "CHECKPOINT_NOT_FOUND",
): asserts name is string {
  try {
    checkId(name, "Checkpoint name", 200);
  } catch (error) {
    const { message, details } = error as BatonError;
    throw new BatonError(code, message, {
      ...details,
      argument: "name",
      cause: "INVALID_ARGUMENT",
    });
  }
}

/** Shallow merge, except Maps (and plain objects under them), merged entry by entry. */
function merge<S>(state: S, updates: Partial<S>): S {
  if (typeof state !== "object" || state === null) return updates as S;
  const out = { ...(state as Record<string, unknown>) };
  for (const [key, value] of Object.entries(updates as Record<string, unknown>)) {
    const before = out[key];
    out[key] =
      before instanceof Map && value instanceof Map ? new Map([...before, ...value]) : value;
  }
  return out as S;
}
