import { RpcTarget, WorkerEntrypoint } from "cloudflare:workers";
import type { CheckpointActor, SaveOptions } from "../../actors/checkpoint-actor.ts";
import type { ExecutionActor } from "../../actors/execution-actor.ts";
import type { ExecutionIndex } from "../../actors/execution-index.ts";
import type { AcquireOptions, Lease, LockActor } from "../../actors/lock-actor.ts";
import type { StartOptions, Value } from "../execution/types.ts";
import { requireNamespace } from "../foundation/bindings.ts";
import type { Duration } from "../foundation/duration.ts";
import { checkId } from "../foundation/errors.ts";
import { checkNotReserved } from "../foundation/reserved.ts";
import type { ListQuery } from "../protocol/listing.ts";

type ExecutionStub = DurableObjectStub<ExecutionActor<never>>;

/**
 * One execution, handed across a service binding (an `RpcTarget`): the same methods as the
 * Execution actor's stub.
 */
export class ExecutionRef extends RpcTarget {
  readonly #stub: ExecutionStub;
  /** Made by {@link BatonService}. @internal */
  constructor(stub: ExecutionStub) {
    super();
    this.#stub = stub;
  }
  async start(workflow: string, input: Value, options: StartOptions) {
    return await this.#stub.start(workflow, input, options);
  }
  async execute(workflow: string, input: Value, options: StartOptions & { timeout?: Duration }) {
    return await this.#stub.execute(workflow, input, options);
  }
  async status() {
    return await this.#stub.status();
  }
  async result(options: { timeout?: Duration } = {}) {
    return await this.#stub.result(options);
  }
  async journal(options: { from?: number; limit?: number } = {}) {
    return await this.#stub.journal(options);
  }
  async sendEvent(type: string, payload?: Value, options: { dedupeKey?: string } = {}) {
    return await this.#stub.sendEvent(type, payload, options);
  }
  async pause() {
    return await this.#stub.pause();
  }
  async resume() {
    return await this.#stub.resume();
  }
  async cancel() {
    return await this.#stub.cancel();
  }
  async restart() {
    return await this.#stub.restart();
  }
  async exportCheckpoint(name: string) {
    return await this.#stub.exportCheckpoint(name);
  }
  async importFork(
    snapshot: Parameters<ExecutionStub["importFork"]>[0],
    options: StartOptions & { from: string },
  ) {
    return await this.#stub.importFork(snapshot, options);
  }
  async track(name: string, options: { id: string; totalSteps?: number; retention?: Duration }) {
    return await this.#stub.track(name, options);
  }
  async progress(step: string, options: { index?: number; output?: Value } = {}) {
    return await this.#stub.progress(step, options);
  }
  async complete(result?: Value) {
    return await this.#stub.complete(result);
  }
  async fail(error: string | { message: string; code?: string }) {
    return await this.#stub.fail(error);
  }
}

/** One lock, handed across a service binding. */
export class LockRef extends RpcTarget {
  readonly #stub: DurableObjectStub<LockActor>;
  /** Made by {@link BatonService}. @internal */
  constructor(stub: DurableObjectStub<LockActor>) {
    super();
    this.#stub = stub;
  }
  async acquire(options: AcquireOptions) {
    return await this.#stub.acquire(options);
  }
  async renew(lease: Lease, ttl: Duration) {
    return await this.#stub.renew(lease, ttl);
  }
  async release(lease: Lease) {
    return await this.#stub.release(lease);
  }
  async status() {
    return await this.#stub.status();
  }
  async isLocked() {
    return await this.#stub.isLocked();
  }
  async abandon(waiterId: string, options: { release?: boolean } = {}) {
    return await this.#stub.abandon(waiterId, options);
  }
}

/** One checkpoint scope, handed across a service binding. */
export class CheckpointRef extends RpcTarget {
  readonly #stub: DurableObjectStub<CheckpointActor>;
  /** Made by {@link BatonService}. @internal */
  constructor(stub: DurableObjectStub<CheckpointActor>) {
    super();
    this.#stub = stub;
  }
  async save(name: string, value: Value, options: SaveOptions = {}) {
    return await this.#stub.save(name, value, options);
  }
  async load(name: string, options: { version?: number } = {}) {
    return await this.#stub.load(name, options);
  }
  async list() {
    return await this.#stub.list();
  }
  async history(name: string, options: { fromVersion?: number; limit?: number } = {}) {
    return await this.#stub.history(name, options);
  }
  async delete(name: string) {
    return await this.#stub.delete(name);
  }
}

/** The execution index, handed across a service binding. */
export class IndexRef extends RpcTarget {
  readonly #stub: DurableObjectStub<ExecutionIndex>;
  /** Made by {@link BatonService}. @internal */
  constructor(stub: DurableObjectStub<ExecutionIndex>) {
    super();
    this.#stub = stub;
  }
  async list(query: ListQuery = {}) {
    return await this.#stub.list(query);
  }
  async get(id: string) {
    return await this.#stub.get(id);
  }
}

/** Binding names a {@link BatonService} serves from. */
export interface ServiceBindings {
  executions?: string;
  locks?: string;
  checkpoints?: string;
  index?: string;
}

/**
 * Exposes Baton to other Workers through a service binding. Subclass it in the Worker that
 * binds the actors, export the subclass, and bind it from the other Worker; there, the same
 * typed clients work on the service binding (`executions<Platform>(env.PLATFORM)`,
 * `locks(env.PLATFORM)`, `checkpoints(env.PLATFORM)`) with only `import type` of the subclass.
 * `A` is the Execution actor class, for typing the workflows.
 *
 * @example
 * ```ts
 * // platform Worker
 * export class Platform extends BatonService<Env, Executions> {
 *   protected override readonly bindings = { executions: "Executions", locks: "Locks", checkpoints: "Checkpoints" };
 * }
 * // orders Worker (wrangler.toml: services = [{ binding = "PLATFORM", service = "platform", entrypoint = "Platform" }])
 * import type { Platform } from "../platform/worker";
 * const run = await executions<Platform>(env.PLATFORM).start("fulfil", { orderId }, { id: orderId });
 * ```
 */
export class BatonService<Env = unknown, A = unknown> extends WorkerEntrypoint<Env> {
  /** Type-level only: the Execution actor class whose workflows this service runs. */
  declare readonly __executionActor?: A;
  /** Where the actors are bound in this Worker's env. */
  protected readonly bindings: ServiceBindings = {
    executions: "Executions",
    locks: "Locks",
    checkpoints: "Checkpoints",
    index: "ExecutionIndex",
  };

  /** The execution `id`. */
  execution(id: string): ExecutionRef {
    return new ExecutionRef(
      this.#ns<ExecutionActor<never>>("executions").getByName(checkId(id, "Execution id")),
    );
  }

  /** The lock `name`. */
  lock(name: string): LockRef {
    const checked = checkNotReserved(checkId(name, "Lock name"), "Lock name");
    return new LockRef(this.#ns<LockActor>("locks").getByName(checked));
  }

  /** The checkpoint scope `scope`. */
  checkpointScope(scope: string): CheckpointRef {
    return new CheckpointRef(
      this.#ns<CheckpointActor>("checkpoints").getByName(
        checkNotReserved(checkId(scope, "Checkpoint scope"), "Checkpoint scope"),
      ),
    );
  }

  /** The execution index (its one shard, `name`). */
  indexShard(name: string): IndexRef {
    return new IndexRef(this.#ns<ExecutionIndex>("index").getByName(checkId(name, "Index shard")));
  }

  #ns<T extends Rpc.DurableObjectBranded>(kind: keyof ServiceBindings): DurableObjectNamespace<T> {
    const binding = this.bindings[kind];
    return requireNamespace<T>(
      this.env,
      binding,
      `This Baton service has no ${kind} binding${binding ? ` (looked for "${binding}")` : ""}.`,
      { kind, binding: binding ?? null },
    );
  }
}
