// Workers' own RpcTarget, which capnweb uses on Workers too: the declarations need no capnweb.
import { RpcTarget } from "cloudflare:workers";
import type { CheckpointActor, SaveOptions } from "../../../actors/checkpoint-actor.ts";
import type { AcquireOptions, Lease, LockActor } from "../../../actors/lock-actor.ts";
import type { ScheduleActor } from "../../../actors/schedule-actor.ts";
import type { Value } from "../../execution/types.ts";
import type { Duration } from "../../foundation/duration.ts";
import { checkId } from "../../foundation/errors.ts";
import {
  SCHEDULE_REGISTRY,
  type ScheduleInfo,
  type ScheduleList,
  type ScheduleRun,
} from "../../protocol/schedules.ts";
import type { GatewayOperation } from "./policy.ts";
import type { GatewaySession } from "./session.ts";

/** Lock operations through the gateway (Baton's own locks are never reachable). */
export class LocksApi extends RpcTarget {
  readonly #session: GatewaySession;

  /** Made by the gateway, one per session. @internal */
  constructor(session: GatewaySession) {
    super();
    this.#session = session;
  }

  async #lock(operation: GatewayOperation, name: string) {
    this.#session.count();
    checkId(name, "Lock name");
    await this.#session.policy.check(operation, { kind: "lock", name });
    return this.#session.ns<LockActor>("locks").getByName(name);
  }

  async acquire(name: string, options: AcquireOptions) {
    return await (await this.#lock("lock.acquire", name)).acquire(options);
  }
  async renew(name: string, lease: Lease, ttl: Duration) {
    return await (await this.#lock("lock.renew", name)).renew(lease, ttl);
  }
  async release(name: string, lease: Lease) {
    return await (await this.#lock("lock.release", name)).release(lease);
  }
  async status(name: string) {
    return await (await this.#lock("lock.status", name)).status();
  }
  async isLocked(name: string) {
    return await (await this.#lock("lock.status", name)).isLocked();
  }
  /** For a caller that gave up waiting (see LockActor.abandon): by its waiter secret. */
  async abandon(name: string, waiterId: string, options: { release?: boolean } = {}) {
    return await (await this.#lock("lock.abandon", name)).abandon(waiterId, options ?? {});
  }
}

/** Checkpoint operations through the gateway (Baton's own scopes are never reachable). */
export class CheckpointsApi extends RpcTarget {
  readonly #session: GatewaySession;

  /** Made by the gateway, one per session. @internal */
  constructor(session: GatewaySession) {
    super();
    this.#session = session;
  }

  async #scope(operation: GatewayOperation, scope: string, name?: string) {
    this.#session.count();
    checkId(scope, "Checkpoint scope");
    if (name !== undefined) checkId(name, "Checkpoint name");
    await this.#session.policy.check(operation, {
      kind: "checkpoint",
      scope,
      ...(name === undefined ? {} : { name }),
    });
    return this.#session.ns<CheckpointActor>("checkpoints").getByName(scope);
  }

  async save(scope: string, name: string, value: Value, options: SaveOptions = {}) {
    return await (await this.#scope("checkpoint.save", scope, name)).save(
      name,
      value,
      options ?? {},
    );
  }
  async load(scope: string, name: string, options: { version?: number } = {}) {
    const stub = await this.#scope("checkpoint.load", scope, name);
    return this.#session.bounded(await stub.load(name, options ?? {}), "The checkpoint");
  }
  async list(scope: string) {
    return await (await this.#scope("checkpoint.list", scope)).list();
  }
  async history(
    scope: string,
    name: string,
    options: { fromVersion?: number; limit?: number } = {},
  ) {
    return await (await this.#scope("checkpoint.history", scope, name)).history(
      name,
      options ?? {},
    );
  }
  async delete(scope: string, name: string) {
    return await (await this.#scope("checkpoint.delete", scope, name)).delete(name);
  }
}

/**
 * Schedules through the gateway: list them, read one, pause, resume, trigger. Only schedules of
 * workflows the gateway serves (creating, changing and deleting them stays in your Worker).
 */
export class SchedulesApi extends RpcTarget {
  readonly #session: GatewaySession;

  /** Made by the gateway, one per session. @internal */
  constructor(session: GatewaySession) {
    super();
    this.#session = session;
  }

  #ns() {
    return this.#session.ns<ScheduleActor>("schedules");
  }

  /** The schedule, after the policy allowed `operation` on it and its workflow is served. */
  async #read(operation: GatewayOperation, id: string): Promise<ScheduleInfo> {
    this.#session.count();
    checkId(id, "Schedule id", 200);
    await this.#session.policy.check(operation, { kind: "schedule", id });
    const info = await this.#ns().getByName(id).describe();
    await this.#session.policy.check(operation, { kind: "schedule", id, workflow: info.workflow });
    return info;
  }

  /** A page of the schedules of the workflows this gateway serves. */
  async list(query: { limit?: number; cursor?: string | null } = {}): Promise<ScheduleList> {
    this.#session.count();
    await this.#session.policy.check("schedules.list", { kind: "schedules" });
    const page = await this.#ns()
      .getByName(SCHEDULE_REGISTRY)
      .listSchedules(query ?? {});
    const served = new Set(this.#session.policy.served);
    return { ...page, schedules: page.schedules.filter((s) => served.has(s.workflow)) };
  }
  async get(id: string): Promise<ScheduleInfo> {
    const info = await this.#read("schedule.get", id);
    return this.#session.bounded(info, "The schedule");
  }
  async pause(id: string): Promise<ScheduleInfo> {
    await this.#read("schedule.pause", id);
    return await this.#ns().getByName(id).pause();
  }
  async resume(id: string): Promise<ScheduleInfo> {
    await this.#read("schedule.resume", id);
    return await this.#ns().getByName(id).resume();
  }
  async trigger(id: string): Promise<ScheduleRun> {
    await this.#read("schedule.trigger", id);
    return await this.#ns().getByName(id).trigger();
  }
}
