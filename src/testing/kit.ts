import type { ExecutionActor } from "../../actors/execution-actor.ts";
import type { WorkflowsOf } from "../clients/executions.ts";
import type { ExecutionResult, ExecutionStatus, JournalEntry, Value } from "../execution/types.ts";
import { BatonError, checkId, invalidArgument } from "../foundation/errors.ts";
import type { AnyWorkflow, InputOf, OutputOf } from "../workflow/workflow.ts";
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
   * execution that had not finished); otherwise the status the replay ended in (`completed`,
   * `failed` — a recorded failure replayed —, `cancelled`).
   */
  ended: "journal" | ExecutionStatus;
}

/**
 * The test kit of an Execution actor namespace (your own `ExecutionActor` subclass, bound in
 * your test Worker): executions whose clock your test moves, whose steps it mocks, whose actor
 * it crashes — inside workerd, against the real actor. See {@link testExecutions}.
 */
export class TestKit<W extends AnyWorkflow> {
  readonly #ns: DurableObjectNamespace<Actor>;

  /** @internal Made by {@link testExecutions}. */
  constructor(ns: DurableObjectNamespace<Actor>) {
    this.#ns = ns;
  }

  /** A new execution of `workflow` under test, not started yet (mock its steps first). */
  execution<F extends W>(workflow: F, options: { id?: string } = {}): TestExecution<F> {
    if (typeof workflow?.name !== "string")
      invalidArgument("workflow", "must be a workflow", workflow);
    const id = checkId(options.id ?? `test-${workflow.name}-${crypto.randomUUID()}`, "id");
    return new TestExecution(this.#ns, workflow, id);
  }

  /**
   * Runs `workflow` with `input` to its end in test time: mocks applied, events delivered when it
   * waits for them, the clock moved through every sleep, backoff and timeout. Returns its outcome and
   * journal (and the execution, to look further).
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
   * code of `workflow` — the one your actor registers, or an edited copy under the same name,
   * to try a change before you make it: the code must call the recorded steps in the same order
   * with the same names and kinds; no step body runs. Its name must be registered on the actor.
   *
   * @example
   * ```ts
   * import recorded from "./journals/signup.json";
   * await kit.replay(signup, recorded as RecordedJournal); // throws NONDETERMINISM if it changed unsafely
   * ```
   * @throws BatonError `NONDETERMINISM` (with the position and the step the code now calls)
   *   when the code no longer matches the recording; `INVALID_ARGUMENT` for a recording of
   *   another workflow, or not a recording.
   */
  async replay(
    workflow: AnyWorkflow & { readonly name: W["name"] },
    recorded: RecordedJournal,
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
    try {
      await this.#ns.getByName(id).importFork(snapshot, { id, from: "baton/testing replay" });
      const info = await execution.settle();
      if (info.status === "failed") {
        const result = await execution.result();
        if (!result.ok && result.error.code === "NONDETERMINISM") {
          throw new BatonError("NONDETERMINISM", result.error.message, {
            workflow: workflow.name,
            step: result.error.step,
          });
        }
      }
      return {
        steps: snapshot.steps.length,
        ended:
          execution.replayEnded !== undefined && info.status !== "failed" ? "journal" : info.status,
      };
    } finally {
      execution.dispose();
    }
  }
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
  A extends Rpc.DurableObjectBranded & { readonly workflows: readonly AnyWorkflow[] },
>(ns: DurableObjectNamespace<A>): TestKit<WorkflowsOf<A>> {
  if (typeof (ns as { getByName?: unknown })?.getByName !== "function") {
    invalidArgument("ns", "must be an Execution actor namespace (env.<binding>)", ns);
  }
  return new TestKit(ns as unknown as DurableObjectNamespace<Actor>);
}
