import { base64url } from "../foundation/bindings.ts";
import { isBatonError } from "../foundation/errors.ts";
import type { TestHooks } from "../foundation/test-hooks.ts";
import type { StepError } from "../workflow/workflow.ts";
import type { Blobs } from "./blobs.ts";
import { nondeterminism, toExecutionError } from "./errors.ts";
import type { EngineHost } from "./host.ts";
import { never, type Run } from "./run.ts";
import {
  APPEND_ATTEMPT_SQL,
  attemptRecord,
  COMPENSATE_PREFIX,
  type ExecutionRow,
  PATCH_PREFIX,
  ROW_COLUMNS,
  type StepKind,
  type StepRow,
} from "./schema.ts";
import type { ExecutionError } from "./types.ts";

/** A step call's claim on its journal position: the position, the occurrence, the journal row. */
export interface Begun {
  seq: number;
  occurrence: number;
  /** The journal's row at this position, if the step ran before (a replay). */
  row: StepRow | undefined;
}

/**
 * Replay: how step calls line up with the journal, and how a run waits. Every `step.*` call
 * claims the next position in call order ({@link Replay.begin}), which checks the journal's
 * step there against the call (the determinism check); then the step kind's own code
 * returns the journaled outcome or runs the step. Runs wait on timers and events through
 * {@link Replay.until} and {@link Replay.sleepOn}, and at the pause gate.
 */
export class Replay {
  readonly host: EngineHost;
  readonly blobs: Blobs;
  /** Who waits on a step (several may: a child step is awaited by its call and by the run's end). */
  readonly #waiters = new Map<number, Set<() => void>>();
  #gate: { promise: Promise<void>; open: () => void } | null = null;
  readonly #fail: (run: Run, error: ExecutionError) => unknown;

  /** `fail` ends the execution (with NONDETERMINISM, on a mismatch). */
  constructor(host: EngineHost, blobs: Blobs, fail: (run: Run, error: ExecutionError) => unknown) {
    this.host = host;
    this.blobs = blobs;
    this.#fail = fail;
  }

  /** The execution's row, without its input and output (read them from {@link Blobs}). */
  row(): ExecutionRow | undefined {
    if (!this.host.schemaReady()) return undefined;
    return this.host.sql.one<ExecutionRow>(
      `SELECT ${ROW_COLUMNS} FROM _baton_execution WHERE id = 1`,
    );
  }

  stepRow(seq: number): StepRow | undefined {
    return this.host.sql.one<StepRow>("SELECT * FROM _baton_steps WHERE seq = ?", seq);
  }

  /**
   * Claims the next position in call order and checks it against the journal. On a mismatch the
   * execution fails with NONDETERMINISM at once (the workflow cannot catch it) and the run ends.
   */
  begin(run: Run, name: string, kind: StepKind, compensating = false): Begun | null {
    const row = run.seq <= run.journaled ? this.stepRow(run.seq) : undefined;
    // A replay test (baton/testing) runs no step body: see replayTest().
    const test = this.host.testHooks(); // undefined at once in production (no hooks)
    if (test?.replayOnly && !this.#replayTest(test, run, name, kind, row, compensating)) {
      return null;
    }
    // A step the workflow calls after it started failing or cancelling does not start; nor does
    // one whose place the journal gives to a compensation (the original run stopped it there).
    // Parked calls claim no position, so the compensations keep theirs.
    if (!compensating && (row?.name.startsWith(COMPENSATE_PREFIX) || (run.stopping && !row))) {
      return null;
    }
    const seq = run.seq++;
    const occurrence = run.occurrences.get(name) ?? 0;
    run.occurrences.set(name, occurrence + 1);
    run.current = name;
    if (row && (row.name !== name || row.kind !== kind)) {
      const error = nondeterminism(
        `step ${seq} is "${row.name}" (${row.kind}) in the journal but the code now calls "${name}" (${kind}): steps were renamed, reordered or removed${
          row.name.startsWith(PATCH_PREFIX)
            ? ` (a patch marker: keep step.patched() or step.deprecatePatch() with id "${row.name.slice(PATCH_PREFIX.length)}" until the executions that recorded it have ended)`
            : ""
        }`,
      );
      void this.#fail(run, toExecutionError(error, name));
      return null;
    }
    // The original run never saw a cancelled step end: nor does its replay test.
    if (test?.replayOnly && row?.status === "cancelled") return null;
    return { seq, occurrence, row };
  }

  /**
   * A replay test's view of a step call: past the end of the recorded journal the run parks
   * there (false), recording the position and the call; a call where the recording has a
   * compensation while the run is not failing is noted (the recorded run was failing by then).
   */
  #replayTest(
    test: TestHooks,
    run: Run,
    name: string,
    kind: StepKind,
    row: StepRow | undefined,
    compensating: boolean,
  ): boolean {
    test.replayActivity = (test.replayActivity ?? 0) + 1;
    if (row) {
      if (!compensating && !run.stopping && row.name.startsWith(COMPENSATE_PREFIX)) {
        test.replayCompensated ??= { seq: run.seq, name, kind, recorded: row.name };
      }
      return true;
    }
    if (run.stopping && !compensating) return false; // as in any replay: it never starts
    if (run.seq <= run.journaled && !compensating) {
      // A position the recorded run held without a row (a step it had not written yet, paused
      // or stopped): this call takes it and stays unfinished, as it was.
      run.seq++;
      run.occurrences.set(name, (run.occurrences.get(name) ?? 0) + 1);
      return false;
    }
    test.replayEnded = Math.min(test.replayEnded ?? run.seq, run.seq);
    test.replayCalls ??= [];
    test.replayCalls.push({ name, kind });
    return false;
  }

  /**
   * A replay test whose run compensates past the end of the recording: the compensation is
   * skipped (no body runs), so the replay reaches the failure it would record.
   */
  skipsCompensation(run: Run): boolean {
    if (!this.host.testHooks()?.replayOnly) return false;
    return !(run.seq <= run.journaled && this.stepRow(run.seq));
  }

  /**
   * The engine's own bookkeeping (a journal row, the execution's status, a timer) could not be
   * written. That is no failure of the workflow, and no step call may see it: the actor crashes,
   * as if evicted mid-write. The run dies here (its step calls never resume) and the next wake
   * (the heartbeat, or any call) replays the journal, where a step found `running` runs again
   * as after any crash (that recovery counts as an attempt). Returns a promise that never
   * settles: `return replay.crash(run, error)` parks the caller.
   */
  crash(run: Run | null, error: unknown): Promise<never> {
    run?.kill(error);
    const reason = error instanceof Error ? error.message : String(error);
    console.error("baton: a write of the execution's own state failed; the actor restarts", error);
    try {
      this.host.abort(`baton: the execution's state could not be written (${reason}); replaying`);
    } catch {
      // abort() throws to unwind its caller: this one parks instead.
    }
    return never();
  }

  /**
   * Runs `write`, one of the engine's own writes. False when it failed: the actor crashed (see
   * {@link Replay.crash}) and the caller parks (`return never()`).
   */
  wrote(run: Run | null, write: () => unknown): boolean {
    try {
      write();
      return true;
    } catch (error) {
      // Only a storage failure is a crash; anything else (a bug, a value over a limit) is thrown.
      if (!isBatonError(error, "STORAGE_ERROR")) throw error;
      void this.crash(run, error);
      return false;
    }
  }

  /** A journaled value for a live run; a dead run never resumes. */
  replayed<T>(run: Run, value: T): Promise<T> | T {
    return run.dead ? never<T>() : value;
  }

  /** A cancel-mode replay reached a step that is not finished: stop here (never resumes). */
  frontier<T>(run: Run): Promise<T> {
    run.reachFrontier();
    return never<T>();
  }

  /** Waits while the execution is paused; never returns for a dead run. */
  async passGate(run: Run): Promise<void> {
    for (;;) {
      if (run.dead) return never();
      const status = this.host.sql.value<string>(
        "SELECT status FROM _baton_execution WHERE id = 1",
      );
      if (status !== "paused") return;
      if (!this.#gate) {
        let open!: () => void;
        const promise = new Promise<void>((resolve) => {
          open = resolve;
        });
        this.#gate = { promise, open };
      }
      await this.#gate.promise;
    }
  }

  /** Lets a paused run through its gate. */
  openGate(): void {
    this.#gate?.open();
    this.#gate = null;
  }

  /** Resolves when `seq`'s timer fires and the actor clock has reached `at`. */
  async until(run: Run, seq: number, at: number): Promise<void> {
    for (;;) {
      if (run.dead) return never();
      if (this.host.now() >= at) return;
      // Register before any await, so a timer firing meanwhile finds the waiter.
      const woken = this.sleepOn(seq);
      try {
        await this.host.timers.schedule("wake", { seq }, { at }, { key: `wake:${seq}` });
      } catch (error) {
        return this.crash(run, error);
      }
      await woken;
    }
  }

  /** Resolves when step `seq` is woken ({@link Replay.wakeWaiters}). */
  sleepOn(seq: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const waiters = this.#waiters.get(seq) ?? new Set();
      waiters.add(resolve);
      this.#waiters.set(seq, waiters);
    });
  }

  /** Wakes whoever waits on step `seq`; false when nobody does (then a replay must pick it up). */
  wakeWaiters(seq: number): boolean {
    const waiters = this.#waiters.get(seq);
    if (!waiters) return false;
    this.#waiters.delete(seq);
    for (const resolve of waiters) resolve();
    return true;
  }

  /** Forgets every waiter (the run they belong to is dead). */
  clearWaiters(): void {
    this.#waiters.clear();
  }

  /**
   * A secret derived from the execution's own (never shown) secret and `label`: unguessable,
   * and the same for the same label across retries, replays, evictions and restarts (put the
   * run in the label for a secret per run).
   */
  async secret(label: string): Promise<string> {
    const secret = this.host.sql.value<string>("SELECT secret FROM _baton_execution WHERE id = 1");
    if (!secret) throw new Error("baton: the execution has no secret (no execution row)");
    return await hmacBase64url(secret, label);
  }

  /** Journals step `seq` as failed for good. */
  stepFailed(seq: number, attempts: number, error: StepError): void {
    const now = this.host.now();
    this.host.sql.run(
      `UPDATE _baton_steps SET status = 'failed', attempts = ?, error = ?, ended_at = ?, wake_at = NULL,
         ${APPEND_ATTEMPT_SQL} WHERE seq = ?`,
      attempts,
      JSON.stringify(error),
      now,
      attemptRecord(attempts, now, error),
      seq,
    );
  }
}

/** HMAC-SHA-256 of `message` under `key`, base64url. */
async function hmacBase64url(key: string, message: string): Promise<string> {
  const encoder = new TextEncoder();
  const cryptoKey = await crypto.subtle.importKey(
    "raw",
    encoder.encode(key),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = await crypto.subtle.sign("HMAC", cryptoKey, encoder.encode(message));
  return base64url(new Uint8Array(mac));
}
