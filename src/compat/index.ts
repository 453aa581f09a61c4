/**
 * `baton/workflows`: Cloudflare Workflows' API on Baton. Code written for Workflows runs with
 * `cloudflare:workers` and `cloudflare:workflows` imports of these names changed to
 * `baton/workflows` (docs/workflows-compat.md).
 *
 * @example
 * ```ts
 * import { NonRetryableError, WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep } from "baton/workflows";
 * ```
 * @module
 */

export { NonRetryableError } from "../workflow/workflow.ts";
export {
  checkInstanceId,
  type InstanceStatus,
  type InstanceStatusName,
  type WorkflowBatchCreateResult,
  type WorkflowBinding,
  type WorkflowInstance,
  type WorkflowInstanceCreateOptions,
  type WorkflowInstanceEvent,
  type WorkflowInstanceSubscribeOptions,
  type WorkflowInstanceSubscription,
  workflowBinding,
} from "./binding.ts";
export { WorkflowEntrypoint, type WorkflowEvent } from "./entrypoint.ts";
export {
  type WorkflowBackoff,
  type WorkflowDelayDuration,
  type WorkflowDelayFunction,
  type WorkflowDurationLabel,
  type WorkflowRetentionDuration,
  type WorkflowRollbackContext,
  type WorkflowSleepDuration,
  type WorkflowStep,
  type WorkflowStepConfig,
  type WorkflowStepContext,
  type WorkflowStepEvent,
  type WorkflowStepRollbackOptions,
  type WorkflowTimeoutDuration,
  WorkflowTimeoutError,
} from "./step.ts";
