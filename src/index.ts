/**
 * Baton — durable execution on Cloudflare Workers, built as RPC-native Durable Object actors.
 *
 * This barrel is the whole public API. Internals live beside it and are tested directly.
 *
 * @example
 * ```ts
 * import { Actor, parseDuration, isBatonError } from "baton";
 * ```
 * @module
 */

export {
  CheckpointActor,
  type CheckpointVersion,
  DEFAULT_KEEP,
  type LoadedCheckpoint,
  MAX_CHECKPOINT_TTL,
  type RedeemedToken,
  type SaveOptions,
} from "../actors/checkpoint-actor.ts";
export type { CancelOptions, RestartOptions } from "../actors/execution/control.ts";
export { ExecutionActor } from "../actors/execution-actor.ts";
export { ExecutionIndex } from "../actors/execution-index.ts";
export {
  type AcquireOptions,
  type AcquireResult,
  type Holder,
  type Lease,
  LockActor,
  type LockStatus,
  MAX_LEASE_TTL,
  MAX_LOCK_WAIT,
  MAX_PERMITS,
} from "../actors/lock-actor.ts";
export { ScheduleActor } from "../actors/schedule-actor.ts";
export {
  CheckpointsClient,
  checkpoints,
  type IssueOptions,
  ResumeTokens,
  resumeTokens,
} from "./clients/checkpoints.ts";
export {
  type AnyExecutionActor,
  ExecutionHandle,
  type ExecutionService,
  ExecutionsClient,
  executions,
  TrackedExecution,
  type WorkflowNamed,
  type WorkflowsOf,
} from "./clients/executions.ts";
export { BatonApi, type WorkflowApi, type WorkflowApis } from "./clients/gateway/api.ts";
export type { GatewayAuth, Refusal } from "./clients/gateway/auth.ts";
export { type Gateway, type GatewayOptions, gateway } from "./clients/gateway/gateway.ts";
export type { GatewayLimits } from "./clients/gateway/limits.ts";
export type {
  GatewayOperation,
  GatewayPolicy,
  GatewayTarget,
} from "./clients/gateway/policy.ts";
export type { GatewayBindings, GatewayInfo } from "./clients/gateway/session.ts";
export type { GatewaySubscription } from "./clients/gateway/subscription.ts";
export type { CheckpointsApi, LocksApi, SchedulesApi } from "./clients/gateway/targets.ts";
export { ExecutionIndexClient, executionIndex } from "./clients/listing.ts";
export { liveProgress } from "./clients/live.ts";
export { LocksClient, locks, type WorkflowLease } from "./clients/locks.ts";
export { type ScheduleOf, SchedulesClient, schedules } from "./clients/schedules.ts";
export {
  BatonService,
  CheckpointRef,
  ExecutionRef,
  IndexRef,
  LockRef,
  type ServiceBindings,
} from "./clients/service.ts";
export {
  type ExecutionState,
  type PauseOptions,
  type StateCheckpoint,
  StateManager,
  type StateManagerOptions,
} from "./clients/state-manager.ts";
// Cloudflare Workflows' class and binding (all of Workflows' names: `baton/workflows`).
export { type WorkflowBinding, type WorkflowInstance, workflowBinding } from "./compat/binding.ts";
export { WorkflowEntrypoint } from "./compat/entrypoint.ts";
export { type Dashboard, type DashboardOptions, dashboard } from "./dashboard/dashboard.ts";
export type { ForkSnapshot } from "./execution/fork.ts";
export type { HistoryEvent, HistoryPage } from "./execution/history.ts";
export type { InstanceStatusInfo, InstanceStatusName } from "./execution/instance-status.ts";
export {
  type CancelledEvent,
  type CompletedEvent,
  type DisconnectedEvent,
  type FailedEvent,
  type InitialStateEvent,
  isTerminalEvent,
  type LiveEvent,
  MAX_LIVE_OUTPUT_BYTES,
  MAX_LIVE_RESULT_BYTES,
  type ProgressEvent,
} from "./execution/live-events.ts";
export type { StepRef } from "./execution/restart.ts";
export type {
  AttemptRecord,
  EventReceipt,
  ExecutionDetails,
  ExecutionError,
  ExecutionInfo,
  ExecutionResult,
  ExecutionStatus,
  JournalEntry,
  StartOptions,
  StepKind,
  StepStatus,
  Value,
} from "./execution/types.ts";
export { Actor, APP_SCHEMA } from "./foundation/actor.ts";
export {
  COMPRESS_THRESHOLD,
  decode,
  decodeSync,
  decodeText,
  encode,
  encodeSync,
  encodeText,
  isCompressed,
  MAX_DECODED_BYTES,
} from "./foundation/codec.ts";
export { type Duration, MAX_DURATION_MS, parseDuration } from "./foundation/duration.ts";
export {
  BatonError,
  type BatonErrorLike,
  checkId,
  ERROR_CODES,
  type ErrorCode,
  type ErrorDetails,
  isBatonError,
} from "./foundation/errors.ts";
export {
  type MachineDefinition,
  type MachineEvent,
  StateMachine,
  type Transition,
  type Transitions,
} from "./foundation/fsm.ts";
export { type Migration, runMigrations, schemaVersion } from "./foundation/migrations.ts";
export { isReserved, RESERVED_PREFIXES } from "./foundation/reserved.ts";
export { Scheduler } from "./foundation/scheduler/scheduler.ts";
export {
  type ListTimersOptions,
  MAX_TIMER_PAYLOAD_BYTES,
  type RunReport,
  type ScheduleOptions,
  type SchedulerOptions,
  type TimerHandler,
  type TimerInfo,
  type TimerMap,
  type TimerState,
  type When,
} from "./foundation/scheduler/timer-table.ts";
export {
  chunkParams,
  MAX_SQL_PARAMS,
  placeholders,
  Sql,
  type SqlParam,
  type SqlRow,
  type SqlValue,
} from "./foundation/sql.ts";
export type { SqlStatements } from "./foundation/sql-types.ts";
export type { StandardSchemaV1 } from "./foundation/standard-schema.ts";
export { CHUNK_BYTES, MAX_VALUE_BYTES, type PutResult, ValueStore } from "./foundation/values.ts";
export type {
  IndexCounts,
  IndexedExecution,
  IndexedStatus,
  IndexUpdate,
  ListPage,
  ListQuery,
} from "./protocol/listing.ts";
export {
  type CatchupPolicy,
  MAX_BACKFILL,
  MAX_CATCHUP,
  type OverlapPolicy,
  type RunReason,
  SCHEDULE_REGISTRY,
  type ScheduleInfo,
  type ScheduleList,
  type ScheduleRun,
  type ScheduleSpec,
  type ScheduleSummary,
  type ScheduleUpdate,
} from "./protocol/schedules.ts";
export { loop, Pipeline, type PipelineFailure, pipeline, sequence } from "./workflow/pipeline.ts";
export {
  type AnyWorkflow,
  asWorkflow,
  type ChildResult,
  type CompensationCause,
  type InputOf,
  isNonRetryable,
  NonRetryableError,
  type OutputOf,
  type RetryDelayFunction,
  type RetryPolicy,
  type Step,
  type StepAttempt,
  type StepConfig,
  type StepError,
  type StepOptions,
  type TransactionSql,
  type WaitOptions,
  type Workflow,
  type WorkflowContext,
  type WorkflowEvent,
  type WorkflowFunction,
  type WorkflowOptions,
  type WorkflowSource,
  workflow,
} from "./workflow/workflow.ts";
