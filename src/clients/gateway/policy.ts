import { BatonError } from "../../foundation/errors.ts";
import { isReserved } from "../../foundation/reserved.ts";
import type { ListQuery } from "../../protocol/listing.ts";

/** What a gateway call does: the `operation` a {@link GatewayPolicy} decides on. */
export type GatewayOperation =
  | "execution.start"
  | "execution.status"
  | "execution.result"
  | "execution.journal"
  | "execution.sendEvent"
  | "execution.pause"
  | "execution.resume"
  | "execution.cancel"
  | "execution.restart"
  | "execution.subscribe"
  | "executions.list"
  | "lock.acquire"
  | "lock.renew"
  | "lock.release"
  | "lock.abandon"
  | "lock.status"
  | "checkpoint.save"
  | "checkpoint.load"
  | "checkpoint.list"
  | "checkpoint.history"
  | "checkpoint.delete"
  | "schedules.list"
  | "schedule.get"
  | "schedule.pause"
  | "schedule.resume"
  | "schedule.trigger";

/** What a gateway call acts on: the `target` a {@link GatewayPolicy} decides on. */
export type GatewayTarget =
  /**
   * An execution, by id. `workflow` is there for a start (the workflow it is started with);
   * a call by id is decided before any actor is reached, so by the id alone.
   */
  | { kind: "execution"; id: string; workflow?: string }
  /** A listing, with its query (already narrowed to the workflows the gateway serves). */
  | { kind: "list"; query: ListQuery }
  | { kind: "lock"; name: string }
  | { kind: "checkpoint"; scope: string; name?: string }
  /** A schedule, by id; `workflow` once it is known (after the schedule is read). */
  | { kind: "schedule"; id: string; workflow?: string }
  /** The list of schedules (narrowed afterwards to the workflows the gateway serves). */
  | { kind: "schedules" };

/**
 * The per-call authorization of a gateway: given who calls (what `authorize` returned), what
 * they do and on what, allow it (`true`) or refuse it (anything else: the call fails with
 * `FORBIDDEN` before any actor is reached).
 *
 * @example
 * ```ts
 * // A tenant sees and steers only its own executions (ids start with "<tenant>/").
 * const can: GatewayPolicy<{ tenant: string }> = (who, operation, target) => {
 *   if (target.kind === "execution") return target.id.startsWith(`${who.tenant}/`);
 *   if (target.kind === "list") return target.query.idPrefix === `${who.tenant}/`;
 *   return false; // no locks or checkpoints through this gateway
 * };
 * ```
 */
export type GatewayPolicy<P> = (
  principal: P,
  operation: GatewayOperation,
  target: GatewayTarget,
) => boolean | Promise<boolean>;

/**
 * A gateway's authorization: its policy, asked first, before any actor is reached, and the rules
 * every gateway applies: Baton's reserved lock names and checkpoint scopes are never reachable,
 * and executions of workflows the gateway does not serve are refused (known only once the
 * execution is read: see {@link Policy.serves}).
 */
export class Policy<P> {
  readonly #served: ReadonlySet<string>;
  readonly #can: GatewayPolicy<P> | undefined;
  readonly #principal: P;

  constructor(served: readonly string[], principal: P, can: GatewayPolicy<P> | undefined) {
    this.#served = new Set(served);
    this.#principal = principal;
    this.#can = can;
  }

  /** The workflows this gateway serves. */
  get served(): readonly string[] {
    return [...this.#served];
  }

  /**
   * @throws BatonError `FORBIDDEN` unless the rules and the policy allow the call.
   */
  async check(operation: GatewayOperation, target: GatewayTarget): Promise<void> {
    const refusal = this.#rule(target);
    if (refusal) throw forbidden(operation, refusal);
    if (!this.#can) return;
    let allowed = false;
    try {
      allowed = (await this.#can(this.#principal, operation, target)) === true;
    } catch (error) {
      // A policy that throws refuses; the reason goes to the log, not to the caller.
      console.error("baton gateway: the policy threw; the call is refused", error);
    }
    if (!allowed) throw forbidden(operation, "the gateway's policy does not allow it");
  }

  /**
   * @throws BatonError `FORBIDDEN` unless the gateway serves `workflow` (the message does not
   *   name it: a caller learns nothing about an execution it may not reach).
   */
  serves(operation: GatewayOperation, workflow: string): void {
    if (!this.#served.has(workflow)) {
      throw forbidden(operation, "this gateway does not serve that execution's workflow");
    }
  }

  #rule(target: GatewayTarget): string | null {
    switch (target.kind) {
      case "execution":
        return target.workflow === undefined || this.#served.has(target.workflow)
          ? null
          : "this gateway does not serve that workflow";
      case "lock":
        return isReserved(target.name) ? "that lock name is one of Baton's own" : null;
      case "checkpoint":
        return isReserved(target.scope) ? "that scope is one of Baton's own" : null;
      case "schedule":
        if (isReserved(target.id)) return "that schedule id is one of Baton's own";
        return target.workflow === undefined || this.#served.has(target.workflow)
          ? null
          : "this gateway does not serve that schedule's workflow";
      case "schedules":
        return null;
      case "list": {
        const workflows = target.query.workflow;
        const asked = workflows === undefined ? [] : [workflows].flat();
        return asked.every((name) => this.#served.has(name))
          ? null
          : "this gateway does not serve that workflow";
      }
    }
  }
}

function forbidden(operation: GatewayOperation, why: string): BatonError {
  return new BatonError("FORBIDDEN", `${operation} is not allowed: ${why}.`, { operation });
}
