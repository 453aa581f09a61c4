import { requireNamespace } from "../foundation/bindings.ts";
import type { Duration } from "../foundation/duration.ts";
import { invalidArgument, isBatonError } from "../foundation/errors.ts";
import type { AnyWorkflow, Step } from "../workflow/workflow.ts";
import type { ExecutionTimers } from "./host.ts";
import type { Replay } from "./replay.ts";
import type { ExecutionRow, StepRow } from "./schema.ts";

/** A Lock actor lease as the engine keeps it: opaque, handed back to `release`. */
export interface PermitLease {
  token: string;
  fence: number;
  expiresAt: number;
  owner: string;
}

/**
 * The part of the Lock actor's RPC surface that concurrency permits use. The engine depends on
 * this shape, not on the Lock actor or its client.
 */
interface PermitLock extends Rpc.DurableObjectBranded {
  acquire(options: {
    owner: string;
    ttl: Duration;
    wait: Duration;
    permits: number;
    waiterId: string;
  }): Promise<{ acquired: true; lease: PermitLease } | { acquired: false }>;
  release(lease: PermitLease): Promise<void>;
  abandon(waiterId: string, options: { release?: boolean }): Promise<{ outcome: string }>;
}

/**
 * A permit's lease lasts as long as the Lock actor allows (its MAX_LEASE_TTL, 24 hours) unless
 * the workflow sets `concurrency.ttl`: the execution gives the permit back when it ends.
 */
const PERMIT_TTL_MS = 24 * 60 * 60 * 1000;

/**
 * Concurrency limits (`workflow(name, { concurrency })`): an execution takes a permit of the
 * workflow's semaphore — a Lock actor with `limit` permits — in a journaled `$concurrency`
 * step before its first step, and gives it back when it ends (the `permit` timer, retried).
 */
export async function takePermit(
  replay: Replay,
  wf: AnyWorkflow,
  row: ExecutionRow,
  input: unknown,
  step: Step,
): Promise<void> {
  const limit = wf.options.concurrency;
  const target = permitLock(wf, input);
  if (!limit || !target) return;
  // The binding is checked now (a missing one fails the execution at once); each attempt gets a
  // new stub, since a stub that failed once (the Lock actor was reset) keeps failing.
  const ns = lockNamespace(replay.host.env, target.binding);
  await step.do(
    "$concurrency",
    { retries: { limit: 1000, delay: "1 second", backoff: "constant" } },
    async () => {
      // Waits in line; an attempt cut short (a reset) is retried with the same waiter id, which
      // keeps its place in the queue or collects the permit granted meanwhile. After `wait` it
      // retries and queues again.
      const got = await ns.getByName(target.name).acquire({
        owner: row.execution_id,
        ttl: limit.ttl ?? PERMIT_TTL_MS,
        wait: limit.wait ?? "1 hour",
        permits: limit.limit,
        waiterId: permitWaiter(row),
      });
      if (!got.acquired) throw new Error("no permit yet");
      return got.lease;
    },
  );
}

/**
 * Gives back the permit of an execution that ended — held, granted meanwhile, or still queued
 * — through a durable timer, so a broken connection is retried rather than leaking the permit.
 */
export async function schedulePermitReturn(replay: Replay, row: ExecutionRow): Promise<void> {
  const { host, blobs } = replay;
  const wf = host.registry().get(row.workflow, row.version);
  if (!wf?.options.concurrency) return;
  const target = permitLock(wf, await blobs.readInput());
  if (!target) return;
  const permit = host.sql.one<StepRow>(
    "SELECT * FROM _baton_steps WHERE name = '$concurrency' AND status = 'completed' ORDER BY seq LIMIT 1",
  );
  const lease = permit ? ((await blobs.readStepOutput(permit)) as PermitLease) : null;
  await host.timers.schedule(
    "permit",
    { binding: target.binding, lock: target.name, waiter: permitWaiter(row), lease },
    { after: 0 },
  );
}

/** The `permit` timer: release the lease, or withdraw the queue entry (and a late grant). */
export async function returnPermit(
  env: unknown,
  payload: ExecutionTimers["permit"],
): Promise<void> {
  const lock = lockNamespace(env, payload.binding).getByName(payload.lock);
  if (payload.lease) {
    await lock.release(payload.lease).catch((error: unknown) => {
      if (!isBatonError(error, "LEASE_EXPIRED") && !isBatonError(error, "NOT_HOLDER")) throw error;
    });
    return;
  }
  await lock.abandon(payload.waiter, { release: true });
}

/** The workflow's concurrency semaphore for this execution: binding and lock name. */
function permitLock(
  wf: AnyWorkflow,
  input: unknown,
): { binding: string; name: string } | undefined {
  const limit = wf.options.concurrency;
  if (!limit) return undefined;
  const key = limit.key ? (limit.key as (i: unknown) => string)(input) : "*";
  if (typeof key !== "string" || key.length === 0 || key.length > 128) {
    invalidArgument(
      `Concurrency key of workflow "${wf.name}"`,
      "must be a string of 1 to 128 characters",
      key,
    );
  }
  // The limit is part of the name: a deploy that changes it starts a new semaphore instead of
  // clashing with the old one's permits (PERMITS_MISMATCH).
  return { binding: limit.binding, name: `concurrency:${wf.name}:${limit.limit}:${key}` };
}

/** The permit's waiter id: per run, so a restart never picks up the previous run's permit. */
function permitWaiter(row: ExecutionRow): string {
  return `${row.execution_id}/$concurrency/run-${row.run}`;
}

/** The Lock actor namespace of a concurrency limit (a Durable Object binding, not a service). */
function lockNamespace(env: unknown, binding: string): DurableObjectNamespace<PermitLock> {
  return requireNamespace<PermitLock>(
    env,
    binding,
    `Concurrency limits use binding "${binding}", but the Execution actor's env has no Durable Object namespace of that name. Bind a Lock actor under it.`,
  );
}
