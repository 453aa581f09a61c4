import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { expect } from "vitest";
import { type ErrorCode, executions, isBatonError } from "../src/index.ts";
import type {
  Probe,
  TestCheckpoints,
  TestExecutions,
  TestLocks,
  TestSchedules,
  TimerActor,
} from "./worker.ts";
import { greet } from "./workflows.ts";

let counter = 0;

/** A fresh, unique object name for one test. */
export function uniqueName(prefix: string): string {
  counter += 1;
  return `${prefix}-${counter}-${crypto.randomUUID().slice(0, 8)}`;
}

/** A stub of a new TimerActor with its own name. */
export function timerActor(prefix = "timers"): DurableObjectStub<TimerActor> {
  return env.TimerActor.getByName(uniqueName(prefix));
}

/**
 * Delivers the object's alarm until nothing is due on its (test-controlled) clock. Returns how
 * many alarm runs it took.
 */
export async function drainAlarms(
  stub: DurableObjectStub<TimerActor>,
  maxRuns = 50,
): Promise<number> {
  let runs = 0;
  for (; runs < maxRuns; runs++) {
    const next = await stub.nextDue();
    if (next === null || next > (await stub.clock())) break;
    if (!(await runDurableObjectAlarm(stub))) {
      // Nothing armed, yet something is due: the scheduler lost track of its alarm.
      throw new Error(`timer due at ${next} but no alarm is set`);
    }
  }
  if (runs === maxRuns) throw new Error(`alarms still due after ${maxRuns} runs`);
  return runs;
}

/** Asserts that `promise` rejects with a Baton error of `code`; returns the error. */
export async function expectBatonError(
  promise: Promise<unknown>,
  code: ErrorCode,
  message?: RegExp,
): Promise<Error & { code: string; details?: Record<string, unknown> }> {
  let caught: unknown;
  try {
    await promise;
  } catch (error) {
    caught = error;
  }
  expect(caught, `expected a ${code} error`).toBeDefined();
  if (!isBatonError(caught, code)) {
    throw new Error(
      `expected BatonError ${code}, got ${String((caught as Error)?.name)}: ${String((caught as Error)?.message)} (code ${String((caught as { code?: string })?.code)})`,
    );
  }
  if (message) expect(caught.message).toMatch(message);
  return caught as Error & { code: string; details?: Record<string, unknown> };
}

/**
 * Asserts the object's alarm is armed for its earliest timer: the alarm (real clock) is as far
 * from now as the earliest due time is from the actor's (frozen) clock, within `slackMs`.
 */
export async function expectAlarmForNextTimer(
  stub: DurableObjectStub<TimerActor>,
  slackMs = 1_500,
): Promise<void> {
  const [alarm, next, clock] = await Promise.all([stub.alarmAt(), stub.nextDue(), stub.clock()]);
  expect(next, "a timer is pending").not.toBeNull();
  expect(alarm, "the alarm is armed").not.toBeNull();
  const expected = Date.now() + (next! - clock);
  expect(
    Math.abs(alarm! - Math.max(expected, Date.now())),
    `alarm ${alarm} vs expected ${expected}`,
  ).toBeLessThanOrEqual(slackMs);
}

/** A stub of a new TestExecutions actor (one execution) with its own name. */
export function executionStub(prefix = "exec"): {
  id: string;
  stub: DurableObjectStub<TestExecutions>;
} {
  const id = uniqueName(prefix);
  return { id, stub: env.TestExecutions.getByName(id) };
}

/** A new Probe (test-owned counters) with its own name. */
export function probe(prefix = "probe"): { name: string; stub: DurableObjectStub<Probe> } {
  const name = uniqueName(prefix);
  return { name, stub: env.Probe.getByName(name) };
}

/**
 * Polls `read` until `done` holds (bounded: fails after `timeoutMs`). For states reached by work
 * running in the background inside the actor; it never waits longer than needed.
 */
export async function eventually<T>(
  read: () => Promise<T>,
  done: (value: T) => boolean,
  timeoutMs = 5_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T = await read();
  while (!done(last)) {
    if (Date.now() > deadline)
      throw new Error(
        `condition not reached in ${timeoutMs} ms; last value: ${JSON.stringify(last)}`,
      );
    await new Promise((resolve) => setTimeout(resolve, 2));
    last = await read();
  }
  return last;
}

/** Moves an actor's test clock forward and delivers its alarm until nothing more is due. */
export async function advance(
  stub: DurableObjectStub<TestExecutions | TestLocks | TestCheckpoints | TestSchedules>,
  ms: number,
): Promise<void> {
  await stub.advanceClock(ms);
  for (let i = 0; i < 20; i++) {
    const next = await stub.nextDue();
    if (next === null || next > (await stub.clock())) return;
    await runDurableObjectAlarm(stub);
  }
}

/** `n` random (incompressible) bytes. */
export function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65_536) crypto.getRandomValues(out.subarray(i, i + 65_536));
  return out;
}

/**
 * Resets an execution's actor as a crash or a deploy would (`evictDurableObject` would wait for
 * its outgoing calls instead).
 */
export async function resetExecution(id: string): Promise<void> {
  await resetActor(env.TestExecutions.getByName(id));
}

/** Resets any actor's instance: pending calls fail, storage stays. */
export async function resetActor(stub: DurableObjectStub): Promise<void> {
  await runInDurableObject(stub, (_i, state) => state.abort("reset: test")).catch(() => undefined);
}

/** Brings a reset execution back as production does: by its heartbeat alarm, 30 s later. */
export async function reviveByHeartbeat(id: string): Promise<void> {
  const revived = env.TestExecutions.getByName(id);
  await revived.advanceClock(30_000);
  await runDurableObjectAlarm(revived);
}

/** Starts `greet` as a new execution and brings it past its sleep: it then waits for "approve". */
export async function waitingGreet(prefix: string, name = "T") {
  const { id, stub } = executionStub(prefix);
  const run = await executions(env.TestExecutions).start(greet, { name }, { id });
  await eventually(
    () => run.status(),
    (s) => s.status === "sleeping",
  );
  await stub.advanceClock(1_000);
  await runDurableObjectAlarm(stub);
  await eventually(
    () => run.status(),
    (s) => s.status === "waiting",
  );
  return { id, stub, run };
}
