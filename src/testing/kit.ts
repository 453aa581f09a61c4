import type { ExecutionActor } from "../../actors/execution-actor.ts";
import type { WorkflowsOf } from "../clients/executions.ts";
import { nondeterminism } from "../execution/errors.ts";
import type { ForkSnapshot } from "../execution/fork.ts";
import type { ExecutionResult, ExecutionStatus, JournalEntry, Value } from "../execution/types.ts";
import { BatonError, checkId, invalidArgument } from "../foundation/errors.ts";
import {
  type AnyWorkflow,
  asWorkflow,
  type InputOf,
  type OutputOf,
  type WorkflowSource,
} from "../workflow/workflow.ts";
import { type StepMock, TestExecution } from "./execution.ts";
import { fromRecorded, type RecordedJournal } from "./journal.ts";

type Actor = ExecutionActor<never>;

/** Options of {@link TestKit.run}. */
export interface RunOptions {
  /** The execution id (default: a fresh one). */
  id?: string;
  /** Step mocks by step name (see {@link StepMock}). */
  mocks?: Record<string, StepMock>;
  /** Events to deliver, by type, when the execution waits for them. */
  events?: Record<string, Value>;
  /**
   * Sleeps end at once, without moving the clock (default false: `run` moves the clock through
   * them, so the journal shows each sleep taking its time).
   */
  instantSleeps?: boolean;
}

/** What {@link TestKit.replay} found. */
export interface ReplayReport {
  /** Steps of the recording. */
  steps: number;
  /**
   * `journal`: the code replayed every recorded step, then wanted more (the recording was of an
   * execution that had not finished, or the code now has steps after the recorded ones);
   * otherwise the status the replay ended in: `completed`, or `failed` (see `error`).
   */
  ended: "journal" | "completed" | "failed";
  /** The status the execution had when it was recorded, if the recording says. */
  recorded?: ExecutionStatus;
  /**
   * Why the replay failed, when it did: a failure the recording holds (a step that failed for
   * good, replayed), or one the code now raises on the recorded outputs.
   */
  error?: { code: string; message: string; step: string | null };
}

/**
 * The test kit of an Execution actor namespace (your own `ExecutionActor` subclass, bound in
 * your test Worker): executions whose clock your test moves, whose steps it mocks, whose actor
 * it crashes — inside workerd, against the real actor. See {@link testExecutions}.
 */
export class TestKit<W extends AnyWorkflow> {
  readonly #ns: DurableObjectNamespace<Actor>;
  readonly #made = new Set<TestExecution<AnyWorkflow>>();

  /** @internal Made by {@link testExecutions}. */
  constructor(ns: DurableObjectNamespace<Actor>) {
    this.#ns = ns;
  }

  /**
   * A new execution of `workflow` under test, not started yet (mock its steps first). Its test
   * hooks (clock, mocks) stay installed until you dispose of it, or of the kit.
   *
   * @throws Error if an execution of that id is under test already (not disposed).
   */
  execution<F extends W>(workflow: F, options?: { id?: string }): TestExecution<F>;
  /** The same for a class that extends `WorkflowEntrypoint` (`baton/workflows`). */
  execution(workflow: WorkflowSource, options?: { id?: string }): TestExecution<AnyWorkflow>;
  execution<F extends W>(
    source: F | WorkflowSource,
    options: { id?: string } = {},
  ): TestExecution<F> {
    const workflow = (
      typeof (source as Partial<WorkflowSource>)?.[asWorkflow] === "function"
        ? (source as WorkflowSource)[asWorkflow]()
        : source
    ) as F;
    if (typeof workflow?.name !== "string")
      invalidArgument("workflow", "must be a workflow", workflow);
    const id = checkId(options.id ?? `test-${workflow.name}-${crypto.randomUUID()}`, "id");
    const execution = new TestExecution(this.#ns, workflow, id);
    this.#made.add(execution);
    return execution;
  }

  /**
   * Disposes of every execution this kit made (their clocks go back to real time, their mocks
   * go). Call it after each test; replays keep theirs (see {@link TestKit.replay}).
   *
   * @example
   * ```ts
   * const kit = testExecutions(env.Signups);
   * afterEach(() => kit.dispose());
   * ```
   */
  dispose(): void {
    for (const execution of this.#made) execution.dispose();
    this.#made.clear();
  }

  /**
   * Runs `workflow` with `input` to its end in test time: mocks applied, events delivered when it
   * waits for them, the clock moved through every sleep, backoff and timeout. Returns its outcome and
   * journal, and the execution to look further (under test until you dispose of it or the kit).
   *
   * @example
   * ```ts
   * const { result, journal } = await kit.run(signup, { email: "ada@example.com" }, {
   *   mocks: { "create account": { throws: "busy", times: 2 } },
   *   events: { "email-confirmed": { at: "2026-01-01" } },
   * });
   * ```
   */
  async run<F extends W>(
    workflow: F,
    input: InputOf<F>,
    options: RunOptions = {},
  ): Promise<{
    result: ExecutionResult<OutputOf<F>> | null;
    journal: JournalEntry[];
    execution: TestExecution<F>;
  }> {
    const execution = this.execution(workflow, options.id ? { id: options.id } : {});
    for (const [name, mock] of Object.entries(options.mocks ?? {})) execution.mockStep(name, mock);
    execution.instantSleeps(options.instantSleeps ?? false);
    await execution.start(input);
    const info = await execution.finish(options.events ?? {});
    const finished = ["completed", "failed", "cancelled", "timed_out"].includes(info.status);
    return {
      result: finished ? await execution.result() : null,
      journal: await execution.journal(),
      execution,
    };
  }

  /**
   * Replays a recorded journal (`TestExecution.exportJournal()`, kept as JSON) against the
   * workflow code, as Baton would replay the executions it stands for after a deploy: the code
   * must call the recorded steps in the same order, with the same names and kinds (and, for a
   * recording of an execution that was waiting, call the step it waited in next). No step body
   * runs; recorded outputs are reused.
   *
   * The code replayed is that of the recorded version: `workflow` when its version is the
   * recording's (pass an edited copy under the same name and version to try a change before you
   * make it), otherwise the version your actor registers under that number — and if it registers
   * none, the replay fails with `UNKNOWN_WORKFLOW`, as those executions would in production.
   *
   * The replay's execution stays parked in its actor with its test hooks (it can never run a
   * step body); use a fresh id for each replay (the default).
   *
   * @example
   * ```ts
   * import recorded from "./journals/signup.json";
   * await kit.replay(signup, recorded); // throws NONDETERMINISM if it changed unsafely
   * ```
   * @throws BatonError `NONDETERMINISM` (with the position and the step the code now calls)
   *   when the code no longer matches the recording; `UNKNOWN_WORKFLOW` when the recorded
   *   version is not registered; `INVALID_ARGUMENT` for a recording of another workflow, not a
   *   recording, or a damaged one.
   */
  async replay(
    workflow: AnyWorkflow & { readonly name: W["name"] },
    recorded: unknown,
    options: { id?: string } = {},
  ): Promise<ReplayReport> {
    const snapshot = fromRecorded(recorded);
    if (snapshot.workflow !== workflow?.name) {
      invalidArgument(
        "recorded",
        `is a journal of workflow "${snapshot.workflow}"`,
        workflow?.name,
      );
    }
    const id = checkId(options.id ?? `replay-${workflow.name}-${crypto.randomUUID()}`, "id");
    const execution = new TestExecution(this.#ns, workflow, id, { replayOnly: true });
    const info = await execution.importRecording(snapshot);
    const recordedStatus = (recorded as RecordedJournal).status;
    const report: ReplayReport = {
      steps: snapshot.steps.length,
      ended: "journal",
      ...(recordedStatus ? { recorded: recordedStatus } : {}),
    };
    const mismatch = (detail: string, step: string | null) =>
      nondeterminism(detail, { workflow: workflow.name, step });
    if (info.status === "failed") {
      const result = await execution.result();
      if (!result.ok) {
        const { code, message, step } = result.error;
        if (code === "NONDETERMINISM" || code === "UNKNOWN_WORKFLOW") {
          throw new BatonError(code, message, { workflow: workflow.name, step });
        }
        if (recordedStatus === "completed") {
          throw mismatch(
            `the recorded execution completed, but the code now fails on its journal (${code}: ${message})`,
            step,
          );
        }
        return { ...report, ended: "failed", error: { code, message, step } };
      }
    }
    const { ended, calls, compensated } = execution.replayState;
    // A recorded cancel cannot be replayed (nothing cancels the replay): its compensations are
    // where the code simply goes on.
    if (compensated && recordedStatus !== "cancelled") {
      throw mismatch(
        `step ${compensated.seq} is "${compensated.recorded}" in the recording (the execution was failing by then) but the code now calls "${compensated.name}" (${compensated.kind}) there: it no longer fails where the recording did`,
        compensated.name,
      );
    }
    if (recordedStatus === "failed") {
      throw mismatch(
        `the recorded execution failed, but the code no longer fails on its journal (it ${info.status === "completed" ? "completes" : "calls steps past it"})`,
        calls[0]?.name ?? null,
      );
    }
    if (info.status === "completed") {
      // The journal keeps the step the recorded execution was in: returning before it fails.
      const next = snapshot.unfinished?.[0];
      if (next) {
        throw mismatch(
          `the journal has step "${next.name}" (${next.kind}) at position ${next.seq}, but the workflow returned before it`,
          next.name,
        );
      }
      return { ...report, ended: "completed" };
    }
    if (ended !== undefined) checkPastTheEnd(snapshot, calls, mismatch);
    else if (recordedStatus !== "cancelled") {
      throw new Error(
        `baton/testing: the replay of "${workflow.name}" stopped (${info.status}) before the end of the recording, with no step past it.`,
      );
    }
    return report;
  }
}

/**
 * Where a replay went past the end of the recording (positions inside it are never past it): it
 * must call the recorded unfinished steps first.
 */
function checkPastTheEnd(
  snapshot: ForkSnapshot,
  calls: Array<{ name: string; kind: string }>,
  mismatch: (detail: string, step: string | null) => BatonError,
): void {
  (snapshot.unfinished ?? []).forEach((want, i) => {
    const got = calls[i];
    if (got && (got.name !== want.name || got.kind !== want.kind)) {
      throw mismatch(
        `step ${want.seq} is "${want.name}" (${want.kind}, unfinished) in the recording but the code now calls "${got.name}" (${got.kind}): steps were renamed, reordered or removed`,
        got.name,
      );
    }
  });
}

/**
 * The test kit of your Execution actor namespace, for vitest tests inside workerd
 * (`@cloudflare/vitest-plugin`).
 *
 * @example
 * ```ts
 * import { env } from "cloudflare:test";
 * import { testExecutions } from "baton/testing";
 *
 * const kit = testExecutions(env.Signups);
 * const t = kit.execution(signup);
 * t.mockStep("create account", { throws: "service down", times: 2 });
 * await t.start({ email: "ada@example.com" });
 * await t.advance("7 days"); // the week-long sleep passes at once
 * await t.sendEvent("email-confirmed", { at: "2026-01-01" });
 * expect(await t.result()).toMatchObject({ ok: true });
 * expect((await t.attempts("create account")).attempts).toBe(3);
 * ```
 */
export function testExecutions<
  A extends Rpc.DurableObjectBranded & {
    readonly workflows: readonly (AnyWorkflow | WorkflowSource)[];
  },
>(ns: DurableObjectNamespace<A>): TestKit<WorkflowsOf<A>> {
  if (typeof (ns as { getByName?: unknown })?.getByName !== "function") {
    invalidArgument("ns", "must be an Execution actor namespace (env.<binding>)", ns);
  }
  return new TestKit(ns as unknown as DurableObjectNamespace<Actor>);
}
