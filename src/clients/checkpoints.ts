import type {
  CheckpointActor,
  CheckpointVersion,
  LoadedCheckpoint,
  RedeemedToken,
  SaveOptions,
} from "../../actors/checkpoint-actor.ts";
import type { Value } from "../execution/types.ts";
import { base64url, sha256Hex } from "../foundation/bindings.ts";
import { type Duration, parseDuration } from "../foundation/duration.ts";
import { BatonError, checkId, invalidArgument } from "../foundation/errors.ts";
import { checkNotReserved } from "../foundation/reserved.ts";
import { connector, tooLarge } from "./executions.ts";

type Stub = DurableObjectStub<CheckpointActor>;

/**
 * The typed client of a Checkpoint actor namespace: one Checkpoint actor per scope (an
 * execution, a user, a document ...), named versioned snapshots inside it.
 */
export class CheckpointsClient {
  readonly #connect: (scope: string) => Stub;
  readonly #access: symbol | undefined;

  /**
   * `target`: a Checkpoint actor namespace, or a {@link BatonService} reached by a service
   * binding. Scopes Baton keeps for itself (`state:`, `resume-tokens:`, `baton:` ...) are refused
   * with `FORBIDDEN`.
   */
  constructor(
    target: DurableObjectNamespace<CheckpointActor> | { checkpointScope(scope: string): unknown },
    /** Baton's own code passes its private access token here; users pass nothing. */
    access?: symbol,
  ) {
    this.#connect = connector<Stub>(target, "checkpointScope");
    this.#access = access;
  }

  /** Saves a new version (see {@link CheckpointActor.save}); `CONFLICT` on a stale `expectedVersion`. */
  async save(
    scope: string,
    name: string,
    value: Value,
    options: SaveOptions = {},
  ): Promise<CheckpointVersion> {
    return (await this.#stub(scope).save(name, value, options)) as CheckpointVersion;
  }

  /** Loads the latest version, or `options.version`; `CHECKPOINT_NOT_FOUND` when absent. */
  async load<T extends Value = Value>(
    scope: string,
    name: string,
    options: { version?: number } = {},
  ): Promise<LoadedCheckpoint<T>> {
    return (await this.#stub(scope).load(name, options)) as unknown as LoadedCheckpoint<T>;
  }

  /** The latest version of each checkpoint in `scope`, oldest save first. */
  async list(scope: string): Promise<CheckpointVersion[]> {
    return (await this.#stub(scope).list()) as CheckpointVersion[];
  }

  /**
   * The stored versions of `name`, oldest first, a page at a time (from `fromVersion`, up to
   * `limit`: default 100, at most 1000).
   */
  async history(
    scope: string,
    name: string,
    options: { fromVersion?: number; limit?: number } = {},
  ): Promise<CheckpointVersion[]> {
    return (await this.#stub(scope).history(name, options)) as CheckpointVersion[];
  }

  /** Deletes every version of `name`; returns how many. */
  async delete(scope: string, name: string): Promise<number> {
    return this.#stub(scope).delete(name);
  }

  #stub(scope: string): Stub {
    const checked = checkId(scope, "Checkpoint scope");
    return this.#connect(checkNotReserved(checked, "Checkpoint scope", this.#access));
  }
}

/**
 * The typed client for a Checkpoint actor namespace.
 *
 * @example
 * ```ts
 * const cp = checkpoints(env.Checkpoints);
 * await cp.save("doc-9", "draft", { title: "Hello", edited: new Date() }, { keep: 10, ttl: "30 days" });
 * const { value, version } = await cp.load("doc-9", "draft");
 * ```
 */
export function checkpoints<A extends CheckpointActor<never>>(
  target: DurableObjectNamespace<A> | { checkpointScope(scope: string): unknown },
): CheckpointsClient {
  return new CheckpointsClient(target as unknown as DurableObjectNamespace<CheckpointActor>);
}

/** Options of {@link ResumeTokens.issue}. */
export interface IssueOptions {
  /** The execution to resume. */
  executionId: string;
  /** The event type the execution waits for (`step.waitForEvent(..., { type })`). */
  event: string;
  /** How long the token is valid (at most 1 year). Default "7 days". */
  ttl?: Duration;
  /** Anything to return to the redeemer with the token (shown before they act, for example). */
  data?: Value;
  /**
   * Name of the Execution actor binding in the Checkpoint actor's env. Default "Executions".
   * `null`: no execution takes the event; redeeming the token only uses it up (what
   * `StateManager` does without a Baton execution).
   */
  binding?: string | null;
}

/**
 * Resume tokens for human-in-the-loop steps: unguessable (256 random bits), single-use and
 * expiring; only a SHA-256 hash is stored. Redeeming one delivers its payload as the event its
 * execution waits for, without the redeemer knowing the execution id. Tokens are spread over
 * 256 Checkpoint actors by the first byte of their hash.
 */
export class ResumeTokens {
  readonly #ns: DurableObjectNamespace<CheckpointActor>;

  constructor(ns: DurableObjectNamespace<CheckpointActor>) {
    this.#ns = ns;
  }

  /**
   * Issues a token. Hand it to a person (a link, an email); keep no copy.
   *
   * @example
   * ```ts
   * // inside a workflow, before waiting:
   * const token = await step.do("issue-token", () =>
   *   resumeTokens(ctx.env.Checkpoints).issue({ executionId: ctx.executionId, event: "approve", ttl: "2 days" }));
   * await step.do("email", () => sendApprovalMail(`https://app.example/approve?t=${token}`));
   * const approval = await step.waitForEvent("approval", { type: "approve", timeout: "2 days" });
   * ```
   */
  async issue(options: IssueOptions): Promise<string> {
    checkId(options?.executionId, "executionId");
    if (typeof options.event !== "string" || !/^[\w.:/-]{1,128}$/.test(options.event)) {
      invalidArgument(
        "event",
        "must be 1-128 characters of letters, digits and _ . : / -",
        options.event,
      );
    }
    const ttl = parseDuration(options.ttl ?? "7 days");
    if (ttl <= 0 || ttl > 365 * 24 * 60 * 60 * 1000)
      invalidArgument("ttl", "must be more than 0 and at most 1 year", options.ttl);
    const random = crypto.getRandomValues(new Uint8Array(32));
    const token = `bt_${base64url(random)}`;
    const hash = await sha256Hex(token);
    await this.#stub(hash)
      .storeToken(hash, {
        executionId: options.executionId,
        event: options.event,
        binding: options.binding === undefined ? "Executions" : options.binding,
        ...(options.data === undefined ? {} : { data: options.data }),
        ttlMs: ttl,
      })
      .catch((error: unknown) => {
        throw tooLarge(error, "issue") ?? error;
      });
    return token;
  }

  /**
   * Redeems `token` once with `payload`: its execution receives `payload` as the event it waits
   * for (delivered by a retried timer, so it is never lost). Returns what the token was for.
   *
   * With `options.executionId`, a token for another execution is refused (`INVALID_TOKEN`)
   * and stays unused. A token whose execution has finished or is gone is used up by the
   * attempt (a later restart of that execution never receives it).
   *
   * @throws BatonError `INVALID_TOKEN` for a malformed, unknown, used or expired token (or one
   *   for another execution); `EXECUTION_FINISHED` / `EXECUTION_NOT_FOUND` when its execution
   *   can no longer take it.
   */
  async redeem(
    token: string,
    payload?: Value,
    options: { executionId?: string } = {},
  ): Promise<RedeemedToken> {
    if (typeof token !== "string" || !/^bt_[A-Za-z0-9_-]{43}$/.test(token)) {
      throw new BatonError("INVALID_TOKEN", "This resume token is not valid: it is malformed.");
    }
    const hash = await sha256Hex(token);
    return (await this.#stub(hash)
      .redeemToken(
        hash,
        payload,
        options?.executionId === undefined ? {} : { executionId: options.executionId },
      )
      .catch((error: unknown) => {
        // A payload over the RPC limit: refused before it reached the actor (the token is unused).
        throw tooLarge(error, "redeem") ?? error;
      })) as RedeemedToken;
  }

  #stub(hash: string): Stub {
    return this.#ns.getByName(`resume-tokens:${hash.slice(0, 2)}`);
  }
}

/**
 * Resume tokens kept in a Checkpoint actor namespace (see {@link ResumeTokens}).
 *
 * @example
 * ```ts
 * const result = await resumeTokens(env.Checkpoints).redeem(tokenFromLink, { approved: true });
 * ```
 */
export function resumeTokens<A extends CheckpointActor<never>>(
  ns: DurableObjectNamespace<A>,
): ResumeTokens {
  return new ResumeTokens(ns as unknown as DurableObjectNamespace<CheckpointActor>);
}
