import { requireNamespace } from "../foundation/bindings.ts";
import type { Duration } from "../foundation/duration.ts";
import { checkId, isBatonError } from "../foundation/errors.ts";
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
  // The waiter id is a secret (whoever presents it collects the permit), the same on every
  // retry and replay of this run, and new for a restarted run.
  const waiterId = await permitWaiter(replay, row.run);
  const legacy = legacyWaiter(replay, row);
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
      const lock = ns.getByName(target.name);
      if (legacy) await lock.abandon(legacy, { release: true }).catch(() => undefined);
      const got = await lock.acquire({
        owner: row.execution_id,
        ttl: limit.ttl ?? PERMIT_TTL_MS,
        wait: limit.wait ?? "1 hour",
        permits: limit.limit,
        waiterId,
      });
      if (!got.acquired) throw new Error("no permit yet");
      // Journaled without its token: the permit goes back by the waiter secret.
      return { fence: got.lease.fence, expiresAt: got.lease.expiresAt };
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
  // A permit journaled by a Baton version before waiter secrets holds the whole lease.
  const permit = host.sql.one<StepRow>(
    "SELECT * FROM _baton_steps WHERE name = '$concurrency' AND status = 'completed' ORDER BY seq LIMIT 1",
  );
  const output = permit ? ((await blobs.readStepOutput(permit)) as Partial<PermitLease>) : null;
  const lease = typeof output?.token === "string" ? (output as PermitLease) : null;
  await host.timers.schedule(
    "permit",
    {
      binding: target.binding,
      lock: target.name,
      waiter: await permitWaiter(replay, row.run),
      lease,
      ...(legacyWaiter(replay, row) ? { legacy: legacyWaiter(replay, row) } : {}),
    },
    { after: 0 },
  );
}

/**
 * The `permit` timer: by the waiter secret, release the permit granted to it or withdraw its
 * place in the queue (the secret proves whose it is; no token is kept).
 */
export async function returnPermit(
  env: unknown,
  payload: ExecutionTimers["permit"],
): Promise<void> {
  const lock = lockNamespace(env, payload.binding).getByName(payload.lock);
  if (payload.lease) {
    await lock.release(payload.lease).catch((error: unknown) => {
      if (!isBatonError(error, "LEASE_EXPIRED") && !isBatonError(error, "NOT_HOLDER")) throw error;
    });
  }
  await lock.abandon(payload.waiter, { release: true });
  // A predictable id of an older version can be refused (too long, say): never blocks the return.
  if (payload.legacy) await lock.abandon(payload.legacy, { release: true }).catch(() => undefined);
}

/** The workflow's concurrency semaphore for this execution: binding and lock name. */
function permitLock(
  wf: AnyWorkflow,
  input: unknown,
): { binding: string; name: string } | undefined {
  const limit = wf.options.concurrency;
  if (!limit) return undefined;
  const key = limit.key ? (limit.key as (i: unknown) => string)(input) : "*";
  // Well-formed (a lone surrogate would become U+FFFD in the name, merging two keys).
  checkId(key, `Concurrency key of workflow "${wf.name}"`, 128);
  // The limit is part of the name: a deploy that changes it starts a new semaphore instead of
  // clashing with the old one's permits (PERMITS_MISMATCH).
  return { binding: limit.binding, name: `concurrency:${wf.name}:${limit.limit}:${key}` };
}

/**
 * The permit's waiter id: a secret of this execution and run `run` (see Replay.secret), so a
 * restart never picks up the previous run's permit, and a permit is returned for the run that
 * ended even when a restart has come in meanwhile.
 */
function permitWaiter(replay: Replay, run: number): Promise<string> {
  return replay.secret(`$concurrency/run-${run}`);
}

/**
 * The waiter id an execution started before waiter secrets used (`<id>/$concurrency/run-N`,
 * which anyone could guess): withdrawn too, so a queue entry left from before the deploy is
 * never granted to nobody. Undefined for executions started since.
 */
function legacyWaiter(replay: Replay, row: ExecutionRow): string | undefined {
  const legacy = replay.host.sql.value<number>(
    "SELECT legacy_waiters FROM _baton_execution WHERE id = 1",
  );
  return legacy ? `${row.execution_id}/$concurrency/run-${row.run}` : undefined;
}

/** The Lock actor namespace of a concurrency limit (a Durable Object binding, not a service). */
function lockNamespace(env: unknown, binding: string): DurableObjectNamespace<PermitLock> {
  return requireNamespace<PermitLock>(
    env,
    binding,
    `Concurrency limits use binding "${binding}", but the Execution actor's env has no Durable Object namespace of that name. Bind a Lock actor under it.`,
  );
}
