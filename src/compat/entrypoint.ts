import { WorkerEntrypoint } from "cloudflare:workers";
import type { ExecutionActor } from "../../actors/execution-actor.ts";
import { invalidArgument } from "../foundation/errors.ts";
import {
  type AnyWorkflow,
  asWorkflow,
  type WorkflowContext,
  type WorkflowOptions,
  workflow,
} from "../workflow/workflow.ts";
import {
  type WorkflowBatchCreateResult,
  type WorkflowBinding,
  type WorkflowInstance,
  type WorkflowInstanceCreateOptions,
  workflowBinding,
} from "./binding.ts";
import { type WorkflowStep, workflowsStep } from "./step.ts";

/** What `run` receives first (Workflows' `WorkflowEvent`). */
export type WorkflowEvent<T> = {
  /** The instance's params (`create({ params })`; `{}` when none were given). */
  payload: Readonly<T>;
  /** When the instance was created: stored once, the same on every replay and restart. */
  timestamp: Date;
  instanceId: string;
  workflowName: string;
};

/** The static side of a {@link WorkflowEntrypoint} subclass. */
type EntrypointClass = (abstract new (
  ctx: ExecutionContext,
  env: never,
) => WorkflowEntrypoint<unknown, unknown>) & {
  workflowName?: string;
  workflowOptions?: WorkflowOptions;
  executionsBinding?: string;
  readonly name: string;
};

const definitions = new WeakMap<object, AnyWorkflow>();

/**
 * Cloudflare Workflows' `WorkflowEntrypoint`, run by Baton: code written for Workflows runs with
 * its imports changed to `baton/workflows`. List the class in your Execution actor's
 * `workflows`; its workflow name is the class name (or `static workflowName`). Inside `run`,
 * `this.env` and `this.ctx` are there as in Workflows, and Workflows' defaults apply (steps time
 * out after 10 minutes, `waitForEvent` after 24 hours).
 *
 * The class is also a `WorkerEntrypoint` with the Workflow binding's methods (`create`,
 * `createBatch`, `get`): bind it to itself in wrangler.toml (`[[services]]` with `entrypoint =
 * "<class name>"`) and `env.MY_WORKFLOW` works as a Workflow binding does. It reaches the
 * Execution actors through the binding named `Executions` (or `static executionsBinding`, or the
 * service binding's `props.executions`).
 *
 * @example
 * ```ts
 * import { WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep } from "baton/workflows";
 *
 * export class MyWorkflow extends WorkflowEntrypoint<Env, { email: string }> {
 *   async run(event: WorkflowEvent<{ email: string }>, step: WorkflowStep) {
 *     const user = await step.do("look up", async () => ({ email: event.payload.email }));
 *     await step.sleep("wait", "1 day");
 *     return user;
 *   }
 * }
 *
 * export class Executions extends ExecutionActor<Env> {
 *   readonly workflows = [MyWorkflow];
 * }
 * ```
 */
export abstract class WorkflowEntrypoint<Env = unknown, T = unknown> extends WorkerEntrypoint<Env> {
  /** The workflow's name. Default: the class's name. */
  static workflowName?: string;
  /** Baton's workflow options (version, retention, concurrency, default retries ...). */
  static workflowOptions?: WorkflowOptions;
  /** The Execution actor namespace binding the binding methods use. Default `"Executions"`. */
  static executionsBinding?: string;

  /** The workflow's body, as in Workflows. */
  abstract run(event: Readonly<WorkflowEvent<T>>, step: WorkflowStep): Promise<unknown>;

  /** The class as a Baton workflow definition (what an Execution actor's registry calls). */
  static [asWorkflow](): AnyWorkflow {
    // biome-ignore lint/complexity/noThisInStatic: the subclass this is called on, not this class.
    const self = this as unknown as EntrypointClass;
    const known = definitions.get(self);
    if (known) return known;
    const Class = self as unknown as new (
      ctx: ExecutionContext,
      env: unknown,
    ) => WorkflowEntrypoint;
    const name = nameOf(self);
    const definition = workflow(name, { ...self.workflowOptions }, async (input, step, ctx) => {
      const instance = new Class(executionContext(ctx), ctx.env);
      return instance.run(
        Object.freeze({
          payload: input as never,
          timestamp: new Date(ctx.createdAt),
          instanceId: instanceIdOf(name, ctx.executionId),
          workflowName: name,
        }),
        workflowsStep(step),
      );
    });
    definitions.set(self, definition);
    return definition;
  }

  /** Workflows' `create()`, for a service binding to this class. */
  async create(options?: WorkflowInstanceCreateOptions<T>): Promise<WorkflowInstance> {
    return this.#binding().create(options);
  }

  /** Workflows' `createBatch()`, for a service binding to this class. */
  async createBatch(
    batch: Parameters<WorkflowBinding<T>["createBatch"]>[0],
  ): Promise<WorkflowInstance[] | WorkflowBatchCreateResult> {
    return this.#binding().createBatch(batch as never);
  }

  /** Workflows' `get()`, for a service binding to this class. */
  async get(id: string): Promise<WorkflowInstance> {
    return this.#binding().get(id);
  }

  #binding(): WorkflowBinding<T> {
    const Class = this.constructor as EntrypointClass;
    const props = (this.ctx as { props?: { executions?: unknown } } | undefined)?.props;
    const bindingName =
      (typeof props?.executions === "string" ? props.executions : undefined) ??
      Class.executionsBinding ??
      "Executions";
    const namespace = (this.env as Record<string, unknown> | undefined)?.[bindingName];
    if (typeof (namespace as { getByName?: unknown })?.getByName !== "function") {
      invalidArgument(
        `The ${nameOf(Class)} binding`,
        `needs the Execution actor namespace bound as "${bindingName}" in this Worker (set static executionsBinding, or props.executions on the service binding)`,
        bindingName,
      );
    }
    return workflowBinding<T>(
      namespace as DurableObjectNamespace<ExecutionActor<never>>,
      nameOf(Class),
    );
  }
}

function nameOf(Class: EntrypointClass): string {
  return Object.hasOwn(Class, "workflowName") && Class.workflowName
    ? Class.workflowName
    : Class.name;
}

/** The instance id of an execution: its id without the `<workflow>:` a binding put before it. */
function instanceIdOf(name: string, executionId: string): string {
  const prefix = `${name}:`;
  return executionId.startsWith(prefix) ? executionId.slice(prefix.length) : executionId;
}

/** `this.ctx` of a run: the Execution actor's `waitUntil`; no `props` (a run has no caller). */
function executionContext(ctx: WorkflowContext<unknown>): ExecutionContext {
  return {
    waitUntil: (promise: Promise<unknown>) => ctx.waitUntil(promise),
    passThroughOnException: () => {},
    props: {},
  } as unknown as ExecutionContext;
}
