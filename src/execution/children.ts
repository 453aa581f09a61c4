import { findNamespace, requireNamespace, sha256Hex } from "../foundation/bindings.ts";
import { encode } from "../foundation/codec.ts";
import { invalidArgument, isBatonError } from "../foundation/errors.ts";
import type { ChildResult } from "../workflow/workflow.ts";
import { toStepError } from "./errors.ts";
import type { ExecutionTimers } from "./host.ts";
import type { Replay } from "./replay.ts";
import { never, type Run } from "./run.ts";
import { type ExecutionRow, type StoredStatus, TERMINAL } from "./schema.ts";
import type { ExecutionError, Value } from "./types.ts";

/** First and longest interval of a parent's check on its unfinished children. */
const CHILD_CHECK_MS = 60_000;
const MAX_CHILD_CHECK_MS = 3_600_000;

/** What the children need from the engine's run loop. */
export interface ChildDriver {
  /** Whether a run is live now. */
  running(): boolean;
  /** Starts a run (a replay) if the execution should be running and none is. */
  kick(): void;
  /** A step's outcome is in: wake its waiter, or replay. */
  wake(seq: number): void;
  ensureHeartbeat(): Promise<void>;
}

/** The RPC surface of an Execution actor that children and parents call. */
interface ExecutionActorLike extends Rpc.DurableObjectBranded {
  startChild(
    workflow: string,
    input: Value,
    options: { id: string; parent: { id: string; seq: number; binding: string } },
  ): Promise<{ status: string }>;
  result(): Promise<{ ok: boolean; value?: unknown; error?: ExecutionError; status: string }>;
  childDone(seq: number, childId: string, result: ChildResult<Value>): Promise<boolean>;
  cancel(options?: { compensate?: boolean }): Promise<object>;
  status(): Promise<{ status: string }>;
}

/**
 * Child executions, from both ends. As a parent: `step.child` journals a child step (`waiting`,
 * with the child's deterministic id), starts the child in its own Execution actor and waits for
 * its report; `check-children` asks unfinished children now and then, as a safety net; a parent
 * that ends cancels its unfinished children (`cancel-child`). As a child: once ended, it reports
 * to its parent (`report`, retried until the parent has it). A report is applied once.
 */
export class Children {
  readonly #replay: Replay;
  readonly #driver: ChildDriver;
  /** startChild calls on their way (a cancel of that child waits for them). */
  readonly #starting = new Set<Promise<unknown>>();

  constructor(replay: Replay, driver: ChildDriver) {
    this.#replay = replay;
    this.#driver = driver;
  }

  /** A child step call, tracked on the run (which completes only after it). */
  step(
    run: Run,
    exec: ExecutionRow,
    name: string,
    workflow: string,
    input: unknown,
  ): Promise<ChildResult<unknown>> {
    const call = this.#call(run, exec, name, workflow, input);
    run.children.add(call);
    return call;
  }

  async #call(
    run: Run,
    exec: ExecutionRow,
    name: string,
    workflow: string,
    input: unknown,
  ): Promise<ChildResult<unknown>> {
    const replay = this.#replay;
    const { host } = replay;
    if (run.dead) return never();
    const begun = replay.begin(run, name, "child");
    if (!begun) return never();
    const { seq, occurrence, row } = begun;
    if (row?.status === "completed") {
      return replay.replayed(
        run,
        (await run.track(replay.blobs.readStepOutput(row))) as ChildResult<unknown>,
      );
    }
    if (run.cancelling) return replay.frontier(run);
    // Deterministic, so a replay finds the same child (the journal keeps it); per run, so a
    // restart starts fresh ones.
    const childId = row?.event_type ?? (await childExecutionId(exec, name, occurrence));
    if (!row) {
      await replay.passGate(run);
      // The engine's own write: one that fails crashes the actor (Replay.crash), never the step.
      const journaled = replay.wrote(run, () =>
        host.sql.run(
          `INSERT INTO _baton_steps (seq, name, occurrence, kind, status, attempts, started_at, event_type)
           VALUES (?, ?, ?, 'child', 'waiting', 1, ?, ?)`,
          seq,
          name,
          occurrence,
          host.now(),
          childId,
        ),
      );
      if (!journaled) return never();
    }
    // Make sure the child exists (idempotent, also after a replay). If it already ended, take its
    // result now rather than wait for a report.
    for (;;) {
      if (run.dead) return never();
      // What the child's actor says (only its answers are caught as the child's: a failure of
      // this actor's own writes below is a crash, not the child's failure).
      let ended: ChildResult<unknown> | undefined;
      try {
        const stub = this.#namespace().getByName(childId);
        const starting = stub.startChild(workflow, input as Value, {
          id: childId,
          parent: { id: exec.execution_id, seq, binding: host.childBinding() },
        });
        this.#starting.add(starting);
        const info = await starting.finally(() => this.#starting.delete(starting));
        if (TERMINAL.has(info.status as StoredStatus)) {
          ended = toChildResult(childId, await stub.result());
        }
      } catch (error) {
        if (run.dead) return never();
        if (!isBatonError(error) || error.code === "STORAGE_ERROR") {
          // A broken connection, or the child's storage failing for now (its start is all or
          // nothing): try again shortly (a timer, so it survives eviction).
          await replay.until(run, seq, host.now() + 1000);
          continue;
        }
        // The child cannot be started (unknown workflow, invalid input ...): it failed.
        const info = toStepError(error);
        ended = {
          ok: false,
          id: childId,
          error: {
            code: info.code ?? "CHILD_FAILED",
            message: info.message,
            name: info.name,
            step: null,
          },
        };
      }
      try {
        if (ended) await this.applyReport(seq, childId, ended);
        else {
          await host.timers.schedule(
            "check-children",
            { interval: CHILD_CHECK_MS },
            { after: CHILD_CHECK_MS },
            { key: "check-children" },
          );
        }
      } catch (error) {
        if (run.dead) return never();
        return replay.crash(run, error);
      }
      break;
    }
    return this.outcome(run, seq);
  }

  /** Resolves with the outcome of the child step at `seq` once its report is applied. */
  async outcome(run: Run, seq: number): Promise<ChildResult<unknown>> {
    for (;;) {
      if (run.dead) return never();
      const current = this.#replay.stepRow(seq);
      if (current?.status === "completed")
        return (await this.#replay.blobs.readStepOutput(current)) as ChildResult<unknown>;
      await this.#replay.sleepOn(seq);
    }
  }

  /**
   * A child's outcome arrives (its report, or a pull after a replay): completes the child step
   * once; later copies change nothing. Returns whether it was applied.
   */
  async applyReport(seq: number, childId: string, result: ChildResult<unknown>): Promise<boolean> {
    const { host, blobs } = this.#replay;
    const bytes = await encode(result);
    let step = "";
    // Check, then write (the output may go to the value store): a late or repeated report
    // changes nothing, not even a stored blob.
    const applied = host.sql.transaction(() => {
      const open = host.sql.one<{ name: string }>(
        `SELECT name FROM _baton_steps
         WHERE seq = ? AND kind = 'child' AND status = 'waiting' AND event_type = ?`,
        seq,
        childId,
      );
      if (!open) return false;
      step = open.name;
      host.sql.run(
        "UPDATE _baton_steps SET status = 'completed', output = ?, ended_at = ? WHERE seq = ?",
        blobs.store(`step:${seq}`, bytes),
        host.now(),
        seq,
      );
      return true;
    });
    if (!applied) return false;
    host.stepDone(seq, step, () => result);
    this.#driver.wake(seq);
    await this.#driver.ensureHeartbeat();
    return true;
  }

  /** The ids of this execution's unfinished children (their steps still wait). */
  openChildIds(): string[] {
    return this.#replay.host.sql
      .all<{ event_type: string }>(
        "SELECT event_type FROM _baton_steps WHERE kind = 'child' AND status = 'waiting'",
      )
      .map((row) => row.event_type);
  }

  /** The positions of the child steps that still wait, in journal order. */
  openChildSteps(): number[] {
    return this.#replay.host.sql
      .all<{ seq: number }>(
        "SELECT seq FROM _baton_steps WHERE kind = 'child' AND status = 'waiting' ORDER BY seq",
      )
      .map((row) => row.seq);
  }

  /**
   * The `report` timer: tell the parent how this child ended (retried until it has it).
   * Returns whether the parent has it (or there is nothing to tell).
   */
  async reportToParent(): Promise<boolean> {
    const { host, blobs } = this.#replay;
    const row = this.#replay.row();
    if (
      !row?.parent_id ||
      row.parent_seq === null ||
      !row.parent_binding ||
      !TERMINAL.has(row.status)
    )
      return true;
    const ns = findNamespace<ExecutionActorLike>(host.env, row.parent_binding);
    if (!ns) return true;
    const result: ChildResult<unknown> =
      row.status === "completed"
        ? { ok: true, id: row.execution_id, value: await blobs.readOutput() }
        : { ok: false, id: row.execution_id, error: childError(row) };
    try {
      await ns
        .getByName(row.parent_id)
        .childDone(row.parent_seq, row.execution_id, result as never);
    } catch (error) {
      if (isBatonError(error, "EXECUTION_NOT_FOUND")) return true; // the parent is gone
      throw error;
    }
    return true;
  }

  /** Tells the parent now; once it has the outcome, the retry timer goes. */
  async reportNow(): Promise<void> {
    try {
      if (await this.reportToParent()) await this.#replay.host.timers.cancel("report");
    } catch {
      // The parent is unreachable for now: the "report" timer retries.
    }
  }

  /**
   * The `cancel-child` timer. A child not found may still have its start on the way: the starts
   * this instance sent are awaited first, and "not found" is retried twice before it counts.
   */
  async cancel(payload: ExecutionTimers["cancel-child"], attempt = 1): Promise<void> {
    const ns = findNamespace<ExecutionActorLike>(this.#replay.host.env, payload.binding);
    if (!ns) return;
    await Promise.allSettled([...this.#starting]);
    await ns
      .getByName(payload.childId)
      .cancel({ compensate: payload.compensate !== false })
      .catch((error: unknown) => {
        if (!isBatonError(error, "EXECUTION_NOT_FOUND")) throw error;
        if (attempt < 3) throw new Error(`child "${payload.childId}" not found yet`);
      });
  }

  /**
   * The `check-children` timer: the safety net under child reports. With no live run, a replay
   * asks every unfinished child again (and starts one whose start was lost); with one, the
   * children are asked here. Then it checks again later, less often, while any is unfinished.
   */
  async check(payload: ExecutionTimers["check-children"]): Promise<void> {
    const { host } = this.#replay;
    const row = this.#replay.row();
    if (row?.mode !== "workflow" || TERMINAL.has(row.status)) return;
    const open = host.sql.all<{ seq: number; event_type: string }>(
      "SELECT seq, event_type FROM _baton_steps WHERE kind = 'child' AND status = 'waiting' ORDER BY seq",
    );
    if (open.length === 0) return;
    if (!this.#driver.running()) this.#driver.kick();
    else {
      const ns = this.#namespace();
      for (const child of open) {
        const stub = ns.getByName(child.event_type);
        try {
          const info = await stub.status();
          if (TERMINAL.has(info.status as StoredStatus)) {
            const result = toChildResult(child.event_type, await stub.result());
            await this.applyReport(child.seq, child.event_type, result);
          }
        } catch (error) {
          // Gone (its retention ran out before the parent heard): a failed child.
          if (!isBatonError(error, "EXECUTION_NOT_FOUND")) throw error;
          await this.applyReport(child.seq, child.event_type, {
            ok: false,
            id: child.event_type,
            error: {
              code: "CHILD_LOST",
              message: `Child execution "${child.event_type}" no longer exists and its outcome never reached the parent.`,
              name: "BatonError",
              step: null,
            },
          });
        }
      }
    }
    const interval = Math.min(payload.interval * 2, MAX_CHILD_CHECK_MS);
    await host.timers.schedule(
      "check-children",
      { interval },
      { after: interval },
      { key: "check-children" },
    );
  }

  #namespace(): DurableObjectNamespace<ExecutionActorLike> {
    const { host } = this.#replay;
    const binding = host.childBinding();
    return requireNamespace<ExecutionActorLike>(
      host.env,
      binding,
      `Child executions use binding "${binding}" (the Execution actor's \`childBinding\`), but its env has no namespace of that name.`,
    );
  }
}

/**
 * The id of a child execution: `<parent id>/[r<run>/]<step name>/<occurrence>`, with `%` and `/`
 * in the step name escaped (so no two steps share an id). An id over the 256-character limit
 * keeps its first 190 characters and ends in a hash of the whole.
 */
async function childExecutionId(
  parent: { execution_id: string; run: number },
  name: string,
  occurrence: number,
): Promise<string> {
  const escaped = name.replaceAll("%", "%25").replaceAll("/", "%2F");
  const id = `${parent.execution_id}/${parent.run > 1 ? `r${parent.run}/` : ""}${escaped}/${occurrence}`;
  if (id.length <= 256) return id;
  return `${id.slice(0, 190)}~${await sha256Hex(id, 16)}`;
}

/** The name of a child's workflow: a workflow definition's, or a registered name. */
export function workflowName(workflow: unknown): string {
  const name = typeof workflow === "string" ? workflow : (workflow as { name?: unknown })?.name;
  if (typeof name !== "string" || name.length === 0) {
    invalidArgument(
      "Child workflow",
      "must be a workflow definition or a registered name",
      workflow,
    );
  }
  return name;
}

function toChildResult(
  id: string,
  result: { ok: boolean; value?: unknown; error?: ExecutionError },
): ChildResult<unknown> {
  if (result.ok) return { ok: true, id, value: result.value };
  const e = result.error;
  return {
    ok: false,
    id,
    error: {
      code: e?.code ?? "CHILD_FAILED",
      message: e?.message ?? "child failed",
      name: e?.name ?? "Error",
      step: e?.step ?? null,
    },
  };
}

function childError(row: ExecutionRow): Extract<ChildResult<unknown>, { ok: false }>["error"] {
  const error = row.error ? (JSON.parse(row.error) as ExecutionError) : undefined;
  return {
    code: error?.code ?? row.status.toUpperCase(),
    message: error?.message ?? `The child execution ${row.status}.`,
    name: error?.name ?? "Error",
    step: error?.step ?? null,
  };
}
