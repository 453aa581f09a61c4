/**
 * `baton/client`: Baton's gateway from browsers and Node — a typed `connect()`, a live-events
 * iterator, and the error guard. It loads nothing Worker-only (no `cloudflare:*` module), so it
 * runs in Node 20+ and bundles for browsers.
 *
 * @example
 * ```ts
 * import { connect, isBatonError, liveEvents } from "baton/client";
 * import type { Api } from "./worker"; // export type Api = BatonApi<[typeof orderFlow]>
 *
 * const api = connect<Api>("https://example.com/rpc", { token });
 * const run = await api.workflows.order.start({ orderId: "o-1" }, { id: "o-1" });
 * for await (const event of liveEvents(api, run.id)) console.log(event.type);
 * ```
 * @module
 */

export type {
  CancelledEvent,
  CompletedEvent,
  DisconnectedEvent,
  FailedEvent,
  InitialStateEvent,
  LiveEvent,
  ProgressEvent,
} from "../execution/live-events.ts";
export type {
  AttemptRecord,
  ExecutionDetails,
  ExecutionError,
  ExecutionInfo,
  ExecutionResult,
  ExecutionStatus,
  JournalEntry,
  StepKind,
  StepStatus,
  Value,
} from "../execution/types.ts";
export {
  BatonError,
  type BatonErrorLike,
  ERROR_CODES,
  type ErrorCode,
  type ErrorDetails,
  isBatonError,
} from "../foundation/errors.ts";
export type {
  IndexCounts,
  IndexedExecution,
  IndexedStatus,
  ListPage,
  ListQuery,
} from "../protocol/listing.ts";
export type { StepError } from "../workflow/workflow.ts";
export { type ConnectOptions, connect, type GatewayStub } from "./connect.ts";
export { type LiveEventsSource, liveEvents } from "./live.ts";
