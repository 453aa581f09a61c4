import type { RestartOptions } from "../../actors/execution/control.ts";
import type { ExecutionActor } from "../../actors/execution-actor.ts";
import { connector } from "../clients/executions.ts";
import type { HistoryEvent, HistoryPage } from "../execution/history.ts";
import type { InstanceStatusInfo, InstanceStatusName } from "../execution/instance-status.ts";
import type { ExecutionInfo, Value } from "../execution/types.ts";
import { type Duration, parseDuration } from "../foundation/duration.ts";
import { BatonError, invalidArgument, isBatonError } from "../foundation/errors.ts";
import type { WorkflowRetentionDuration } from "./step.ts";

type Stub = DurableObjectStub<ExecutionActor<never>>;

/** An instance's status, as Workflows' `instance.status()` returns it. */
export type InstanceStatus = InstanceStatusInfo;
export type { InstanceStatusName };

/** Options of `create()` (Workflows' `WorkflowInstanceCreateOptions`). */
export interface WorkflowInstanceCreateOptions<Params = unknown> {
  /** Unique within the workflow: 1-100 of letters, digits, `-` and `_`, not starting with `-`. Default: a random UUID. */
  id?: string;
  /** The run's `event.payload`. Default `{}`. */
  params?: Params;
  /** How long the finished instance is kept (Baton keeps one retention for both outcomes: the longer). */
  retention?: {
    successRetention?: WorkflowRetentionDuration;
    errorRetention?: WorkflowRetentionDuration;
  };
  /** Accepted for compatibility; an Execution actor is placed where it is first used. */
  locationHint?: string;
}

/** An event of an instance's history, as `subscribe()` yields it (Workflows' `WorkflowInstanceEvent`). */
export type WorkflowInstanceEvent = Omit<HistoryEvent, "key"> & {
  instanceId: string;
  eventId: number;
};

/** Options of `subscribe()`. */
export interface WorkflowInstanceSubscribeOptions {
  /** Start after this `eventId` (the last one already seen). Default: from the first event. */
  cursor?: number;
  /** Only these event types. */
  filter?: Array<WorkflowInstanceEvent["type"]>;
}

/** A subscription to an instance's events: its history, then live events, until it ends. */
export interface WorkflowInstanceSubscription {
  /** The next event; `{ done: true }` after the terminal event (or once disposed). */
  next(): Promise<IteratorResult<WorkflowInstanceEvent, void>>;
  /** Stops it (also under `Symbol.dispose`, so `using` works where your lib declares it). */
  close(): void;
  [Symbol.asyncIterator](): AsyncIterator<WorkflowInstanceEvent, void>;
}

/** A handle on one instance (Workflows' `WorkflowInstance`). */
export interface WorkflowInstance {
  readonly id: string;
  pause(): Promise<void>;
  /** Resumes a paused instance (a running one is left as it is). */
  resume(): Promise<void>;
  /**
   * Ends the instance as `terminated`. With `rollback: true` the rollbacks (compensations) of its
   * completed steps run first.
   *
   * @throws BatonError `EXECUTION_FINISHED` when it has already ended.
   */
  terminate(options?: { rollback?: boolean }): Promise<void>;
  /**
   * Runs it again: from the start, or `from` a step (the steps before it keep their results).
   *
   * @throws BatonError `STEP_NOT_FOUND` when `from` names no step of its history.
   */
  restart(options?: {
    from?: { name: string; count?: number; type?: "do" | "sleep" | "waitForEvent" };
  }): Promise<void>;
  /** Deletes the instance and its stored state (a running one is terminated first). */
  delete(): Promise<void>;
  status(): Promise<InstanceStatus>;
  sendEvent(event: { type: string; payload: unknown }): Promise<void>;
  /** Its events so far, then live ones until it ends. */
  subscribe(options?: WorkflowInstanceSubscribeOptions): WorkflowInstanceSubscription;
}

/** `createBatch`'s object form result (Workflows' `WorkflowBatchCreateResult`). */
export interface WorkflowBatchCreateResult {
  created: WorkflowInstance[];
  errors: Array<{ index: number; id?: string; code: number; message: string }>;
}

/** The Workflow binding's API (Workflows' `Workflow<PARAMS>`), over Baton's Execution actors. */
export interface WorkflowBinding<Params = unknown> {
  /**
   * Starts a new instance.
   *
   * @throws BatonError `INVALID_ARGUMENT` for a malformed id, `EXECUTION_CONFLICT` when the id exists.
   */
  create(options?: WorkflowInstanceCreateOptions<Params>): Promise<WorkflowInstance>;
  /** Starts up to 100 instances; ids that exist (or repeat) are skipped. */
  createBatch(batch: WorkflowInstanceCreateOptions<Params>[]): Promise<WorkflowInstance[]>;
  /** Starts up to 100 instances, reporting each one that could not be. */
  createBatch(
    options:
      | { instances: WorkflowInstanceCreateOptions<Params>[] }
      | { count: number; params?: Params; retention?: WorkflowInstanceCreateOptions["retention"] },
  ): Promise<WorkflowBatchCreateResult>;
  /**
   * A handle on an existing instance.
   *
   * @throws BatonError `EXECUTION_NOT_FOUND` for an unknown id.
   */
  get(id: string): Promise<WorkflowInstance>;
}

/** Workflows' instance id rule. */
const INSTANCE_ID = /^[a-zA-Z0-9_][a-zA-Z0-9-_]*$/;
const MAX_INSTANCE_ID = 100;
const MAX_BATCH = 100;

/** Checks an instance id as Workflows does. */
export function checkInstanceId(id: unknown): string {
  if (typeof id !== "string" || id.length > MAX_INSTANCE_ID || !INSTANCE_ID.test(id)) {
    invalidArgument(
      "Workflow instance id",
      "must be 1 to 100 letters, digits, - and _, not starting with - (Workflow instance has invalid id)",
      id,
    );
  }
  return id;
}

/**
 * The Execution actor id of instance `id` of workflow `name`: instances of different workflows
 * on one Execution actor namespace never collide, as ids are per workflow in Workflows.
 */
export function executionIdOf(workflowName: string, id: string): string {
  return `${workflowName}:${id}`;
}

/**
 * A Workflow binding over an Execution actor namespace, for the workflow `workflow` (a class
 * that extends Baton's `WorkflowEntrypoint`, or its name). Code written against Cloudflare
 * Workflows' binding runs on it unchanged. Through a service binding to the workflow class
 * itself, `env.MY_WORKFLOW` is one of these without any code (see docs/workflows-compat.md).
 *
 * @example
 * ```ts
 * const flows = workflowBinding(env.Executions, MyWorkflow);
 * const instance = await flows.create({ params: { email: "ada@example.com" } });
 * console.log(instance.id, await instance.status()); // { status: "running", output: null }
 * ```
 */
export function workflowBinding<Params = unknown>(
  namespace: DurableObjectNamespace<ExecutionActor<never>>,
  workflow: { workflowName?: string; name: string } | string,
): WorkflowBinding<Params> {
  const name = typeof workflow === "string" ? workflow : (workflow?.workflowName ?? workflow?.name);
  if (typeof name !== "string" || name.length === 0) {
    invalidArgument("workflow", "must be a WorkflowEntrypoint class or a workflow name", workflow);
  }
  const connect = connector<Stub>(namespace, "execution");
  const stub = (id: string) => connect(executionIdOf(name, id));
  const start = async (options: WorkflowInstanceCreateOptions<Params> | undefined) => {
    if (options !== undefined && (typeof options !== "object" || options === null)) {
      invalidArgument("create options", "must be { id?, params? }", options);
    }
    const id = checkInstanceId(options?.id ?? crypto.randomUUID());
    const retention = longest(options?.retention);
    try {
      await stub(id).start(name, (options?.params ?? {}) as Value, {
        id: executionIdOf(name, id),
        exclusive: true,
        ...(retention === undefined ? {} : { retention }),
      });
    } catch (error) {
      if (isBatonError(error, "EXECUTION_CONFLICT")) {
        throw new BatonError(
          "EXECUTION_CONFLICT",
          `(instance.already_exists) Workflow instance with id "${id}" already exists`,
          { id },
        );
      }
      throw error;
    }
    return instanceHandle(() => stub(id), id);
  };
  const batch = async (entries: WorkflowInstanceCreateOptions<Params>[]) => {
    if (!Array.isArray(entries) || entries.length === 0 || entries.length > MAX_BATCH) {
      invalidArgument("createBatch", `needs 1 to ${MAX_BATCH} instances`, entries);
    }
    const seen = new Set<string>();
    const outcomes = entries.map((entry, index) => {
      const id = entry?.id ?? crypto.randomUUID();
      if (seen.has(id)) return Promise.resolve({ index, id, error: "duplicate_in_batch" as const });
      seen.add(id);
      return start({ ...entry, id }).then(
        (instance) => ({ index, id, instance }),
        (error: unknown) => ({ index, id, error }),
      );
    });
    return Promise.all(outcomes);
  };
  return {
    create: start,
    async createBatch(options: unknown): Promise<never> {
      if (Array.isArray(options)) {
        const results = await batch(options);
        // Array form: ids that exist (or repeat) are left out; anything else is thrown.
        const failed = results.find(
          (r) =>
            "error" in r &&
            r.error !== "duplicate_in_batch" &&
            !isBatonError(r.error, "EXECUTION_CONFLICT"),
        );
        if (failed && "error" in failed) throw failed.error;
        return results.flatMap((r) => ("instance" in r ? [r.instance] : [])) as never;
      }
      const o = options as { instances?: unknown; count?: unknown; params?: Params } | null;
      let entries: WorkflowInstanceCreateOptions<Params>[];
      if (Array.isArray(o?.instances))
        entries = o.instances as WorkflowInstanceCreateOptions<Params>[];
      else if (
        Number.isSafeInteger(o?.count) &&
        (o?.count as number) > 0 &&
        (o?.count as number) <= MAX_BATCH
      ) {
        entries = Array.from({ length: o?.count as number }, () => ({
          ...(o?.params === undefined ? {} : { params: o.params }),
        }));
      } else {
        return invalidArgument(
          "createBatch",
          "needs an array, { instances }, or { count, params? }",
          options,
        );
      }
      const results = await batch(entries);
      const created: WorkflowInstance[] = [];
      const errors: WorkflowBatchCreateResult["errors"] = [];
      for (const r of results) {
        if ("instance" in r) created.push(r.instance);
        else if (r.error === "duplicate_in_batch") {
          errors.push({
            index: r.index,
            id: r.id,
            code: 10415,
            message: "workflows.api.error.instance.duplicate_in_batch",
          });
        } else if (isBatonError(r.error, "EXECUTION_CONFLICT")) {
          errors.push({
            index: r.index,
            id: r.id,
            code: 10405,
            message: "workflows.api.error.instance.already_exists",
          });
        } else {
          errors.push({
            index: r.index,
            id: r.id,
            code: 10001,
            message: String((r.error as Error)?.message ?? r.error),
          });
        }
      }
      return { created, errors } as never;
    },
    async get(id: string) {
      checkInstanceId(id);
      try {
        await stub(id).status();
      } catch (error) {
        if (isBatonError(error, "EXECUTION_NOT_FOUND")) {
          throw new BatonError(
            "EXECUTION_NOT_FOUND",
            `instance.not_found: no instance "${id}" of workflow "${name}".`,
            { id },
          );
        }
        throw error;
      }
      return instanceHandle(() => stub(id), id);
    },
  };
}

/** Baton keeps one retention: the longer of the two Workflows names (in ms). */
function longest(retention: WorkflowInstanceCreateOptions["retention"]): number | undefined {
  if (retention === undefined) return undefined;
  if (typeof retention !== "object" || retention === null) {
    return invalidArgument(
      "retention",
      "must be { successRetention?, errorRetention? }",
      retention,
    );
  }
  const values = [retention.successRetention, retention.errorRetention]
    .filter((v) => v !== undefined)
    .map((v) => parseDuration(v as Duration));
  return values.length === 0 ? undefined : Math.max(...values);
}

/**
 * A handle on instance `id`: a plain object with functions, so it also crosses Workers RPC (its
 * `id` a string, its methods callable) when a service binding returns it.
 */
export function instanceHandle(connect: () => Stub, id: string): WorkflowInstance {
  return {
    id,
    async pause() {
      await connect().pause();
    },
    async resume() {
      await connect().resume(); // a running one is left as it is
    },
    async terminate(options) {
      const rollback = options?.rollback;
      if (rollback !== undefined && typeof rollback !== "boolean") {
        invalidArgument("terminate options.rollback", "must be true or false", rollback);
      }
      const info = (await connect().status()) as ExecutionInfo;
      if (["completed", "failed", "cancelled", "timed_out"].includes(info.status)) {
        throw new BatonError(
          "EXECUTION_FINISHED",
          `(instance.cannot_terminate) Cannot terminate instance "${id}": it is ${info.status}.`,
          { status: info.status },
        );
      }
      await connect().cancel({ compensate: rollback === true });
    },
    async restart(options) {
      const restart: RestartOptions = { compensate: false };
      if (options?.from !== undefined) restart.from = options.from;
      await connect().restart(restart);
    },
    async delete() {
      await connect().delete();
    },
    status: () => connect().instanceStatus() as Promise<InstanceStatus>,
    async sendEvent(event) {
      if (typeof event !== "object" || event === null) {
        invalidArgument("sendEvent", "needs { type, payload }", event);
      }
      await connect().sendEvent(event.type, event.payload as Value);
    },
    subscribe: (options) => subscription(connect, id, options),
  };
}

/** Longest wait of one read of a subscription (the actor's limit is 30 s). */
const SUBSCRIPTION_WAIT = "20 seconds";

function subscription(
  connect: () => Stub,
  instanceId: string,
  options: WorkflowInstanceSubscribeOptions = {},
): WorkflowInstanceSubscription {
  const cursor = options?.cursor ?? -1;
  if (!Number.isSafeInteger(cursor) || cursor < -1) {
    invalidArgument(
      "subscribe options.cursor",
      "must be an eventId (an integer >= -1)",
      options?.cursor,
    );
  }
  const filter = options?.filter === undefined ? undefined : new Set<string>(options.filter);
  if (options?.filter !== undefined && !Array.isArray(options.filter)) {
    invalidArgument("subscribe options.filter", "must be an array of event types", options.filter);
  }
  const buffered: WorkflowInstanceEvent[] = [];
  let nextId = 0;
  let since = 0;
  let seenAtSince: string[] = [];
  let ended = false;
  let closed = false;
  const pull = async () => {
    const page = (await connect().history({
      since,
      seen: seenAtSince,
      wait: SUBSCRIPTION_WAIT,
    })) as HistoryPage;
    for (const { key, ...event } of page.events) {
      // Events at the newest time seen are remembered, so the next read skips them.
      if (event.timestamp > since) {
        since = event.timestamp;
        seenAtSince = [];
      }
      seenAtSince.push(key);
      const eventId = nextId++;
      if (eventId <= cursor || (filter && !filter.has(event.type))) continue;
      buffered.push({
        ...(event as Omit<HistoryEvent, "key">),
        instanceId,
        eventId,
      } as WorkflowInstanceEvent);
    }
    if (page.ended) ended = true;
  };
  const next = async (): Promise<IteratorResult<WorkflowInstanceEvent, void>> => {
    while (!closed) {
      const event = buffered.shift();
      if (event) return { done: false, value: event };
      if (ended) break;
      await pull();
    }
    closed = true;
    return { done: true, value: undefined };
  };
  const close = () => {
    closed = true;
    buffered.length = 0;
  };
  return {
    next,
    close,
    // workerd has Symbol.dispose: `using sub = instance.subscribe()` closes it.
    ...(typeof Symbol.dispose === "symbol" ? { [Symbol.dispose]: close } : {}),
    [Symbol.asyncIterator]: () => ({
      next,
      return: async () => {
        close();
        return { done: true, value: undefined };
      },
    }),
  };
}
