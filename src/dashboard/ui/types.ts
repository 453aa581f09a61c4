/** What the dashboard's API answers (the page imports types only, nothing of the Worker). */
import type { ExecutionDetails, JournalEntry } from "../../execution/types.ts";

export type {
  AttemptRecord,
  ExecutionDetails,
  ExecutionInfo,
  JournalEntry,
} from "../../execution/types.ts";
export type {
  IndexCounts,
  IndexedExecution,
  IndexedStatus,
  ListPage,
} from "../../protocol/listing.ts";
export type {
  ScheduleInfo,
  ScheduleList,
  ScheduleRun,
  ScheduleSummary,
} from "../../protocol/schedules.ts";

export interface Session {
  title: string;
  readOnly: boolean;
  namespaces: { binding: string; workflows: "*" | string[]; bound: boolean }[];
  features: { list: boolean; locks: boolean; checkpoints: boolean; schedules: boolean };
}

export interface Described {
  binding: string;
  details: ExecutionDetails;
  /** The policy hides its input and outcome (`execution.result` refused). */
  hidden: boolean;
}

export interface Journal {
  entries: JournalEntry[];
  truncated: boolean;
}

export interface LockView {
  permits: number;
  holders: { owner: string; fence: number; acquiredAt: number; expiresAt: number }[];
  queue: number;
  locked: boolean;
  fence: number;
}

export interface CheckpointVersionView {
  name: string;
  version: number;
  savedAt: number;
  expiresAt: number | null;
  bytes: number;
}

export const STATUSES = [
  "pending",
  "running",
  "paused",
  "completed",
  "failed",
  "cancelled",
  "timed_out",
] as const;

export const TERMINAL = new Set(["completed", "failed", "cancelled", "timed_out"]);
