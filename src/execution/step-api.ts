import { parseDuration } from "../foundation/duration.ts";
import { invalidArgument } from "../foundation/errors.ts";
import {
  type AnyWorkflow,
  type Step,
  type StepAttempt,
  StepFailedError,
  type StepOptions,
  type WaitOptions,
  type WorkflowEvent,
} from "../workflow/workflow.ts";
import { type Children, workflowName } from "./children.ts";
import { checkEventType, checkStepName } from "./errors.ts";
import type { Replay } from "./replay.ts";
import { DEFAULT_RETRIES, resolvePolicy } from "./retry.ts";
import type { CompensationFn, Run } from "./run.ts";
import { CHECKPOINT_PREFIX, type ExecutionRow, PATCH_PREFIX } from "./schema.ts";
import { runDo } from "./step-do.ts";
import { runTransaction } from "./transaction.ts";
import { runSleep, runWait } from "./waits.ts";

/**
 * The `step` object a workflow function receives for one run: it checks each call's arguments
 * (a bad call throws `INVALID_ARGUMENT` into the workflow) and hands it to the step kind's code.
 */
export function stepApi(
  replay: Replay,
  children: Children,
  run: Run,
  wf: AnyWorkflow,
  row: ExecutionRow,
): Step {
  const defaults = wf.options;
  /** Each patch's answer in this run: the first `patched(id)` call decides it for the rest. */
  const patches = new Map<string, boolean>();
  return {
    async do<T>(
      name: string,
      optionsOrFn: StepOptions | ((a: StepAttempt) => T | Promise<T>),
      maybeFn?: (a: StepAttempt) => T | Promise<T>,
    ): Promise<T> {
      const fn = typeof optionsOrFn === "function" ? optionsOrFn : maybeFn;
      const options = typeof optionsOrFn === "function" ? {} : (optionsOrFn ?? {});
      checkStepName(name);
      if (typeof fn !== "function") invalidArgument(`step.do("${name}")`, "needs a function", fn);
      if (typeof options !== "object")
        invalidArgument(`step.do("${name}") options`, "must be an object", options);
      const policy = resolvePolicy({
        ...DEFAULT_RETRIES,
        ...defaults.retries,
        ...options.retries,
      });
      const timeout = options.timeout ?? defaults.stepTimeout;
      const timeoutMs = timeout === undefined ? undefined : parseDuration(timeout);
      if (options.compensate !== undefined && typeof options.compensate !== "function") {
        invalidArgument(`step.do("${name}") compensate`, "must be a function", options.compensate);
      }
      const compensate = options.compensate
        ? {
            fn: options.compensate as CompensationFn,
            policy: resolvePolicy({
              limit: 3,
              delay: "1 second",
              backoff: "constant",
              ...options.compensationRetries,
            }),
            timeoutMs:
              options.compensationTimeout === undefined
                ? undefined
                : parseDuration(options.compensationTimeout),
          }
        : undefined;
      return runDo(replay, run, row, name, policy, timeoutMs, fn, { compensate });
    },
    async sleep(name: string, duration) {
      checkStepName(name);
      const ms = parseDuration(duration);
      return runSleep(replay, run, name, (now) => now + ms);
    },
    async sleepUntil(name: string, until) {
      checkStepName(name);
      const at = until instanceof Date ? until.getTime() : until;
      if (typeof at !== "number" || !Number.isFinite(at)) {
        invalidArgument(`step.sleepUntil("${name}")`, "needs a valid Date or epoch ms", until);
      }
      return runSleep(replay, run, name, () => at);
    },
    async waitForEvent<T>(name: string, options: WaitOptions): Promise<WorkflowEvent<T>> {
      checkStepName(name);
      if (typeof options !== "object" || options === null) {
        invalidArgument(
          `step.waitForEvent("${name}") options`,
          "must be { type, timeout? }",
          options,
        );
      }
      checkEventType(options.type);
      const timeoutMs = options.timeout === undefined ? undefined : parseDuration(options.timeout);
      return runWait<T>(replay, run, name, options.type, timeoutMs);
    },
    async child(name, workflow, input) {
      checkStepName(name);
      const result = await children.step(run, row, name, workflowName(workflow), input);
      if (result.ok) return result.value as never;
      throw new StepFailedError(name, 1, {
        name: result.error.name,
        message: result.error.message,
        code: result.error.code,
      });
    },
    async children(name, runs) {
      checkStepName(name);
      if (!Array.isArray(runs))
        invalidArgument(`step.children("${name}")`, "needs an array of { workflow, input }", runs);
      // Check every entry before starting any, so a bad entry starts nothing.
      const names = runs.map((r) => workflowName(r?.workflow));
      return Promise.all(
        runs.map((r, i) => children.step(run, row, `${name}#${i}`, names[i] as string, r?.input)),
      ) as never;
    },
    async transaction(name, body) {
      checkStepName(name);
      if (typeof body !== "function") {
        invalidArgument(
          `step.transaction("${name}")`,
          "needs a synchronous function (sql) => result",
          body,
        );
      }
      return runTransaction(replay, run, name, body);
    },
    async patched(id: string): Promise<boolean> {
      checkPatchId(id, "patched");
      const known = patches.get(id);
      if (known !== undefined) return known;
      const name = `${PATCH_PREFIX}${id}`;
      // A place the journal holds for another step: the execution ran there before the patch.
      const answer = recordedHere(replay, run, name);
      patches.set(id, answer);
      if (!answer) return false;
      // New ground (or this marker's own place on replay): the marker is journaled here, once.
      return runTransaction(replay, run, name, () => true);
    },
    async deprecatePatch(id: string): Promise<void> {
      checkPatchId(id, "deprecatePatch");
      const name = `${PATCH_PREFIX}${id}`;
      // Only a replay of an execution that recorded the marker takes its place; nothing is new.
      if (run.seq <= run.journaled && replay.stepRow(run.seq)?.name === name) {
        await runTransaction(replay, run, name, () => true);
      }
    },
    async checkpoint(this: Step, name: string) {
      checkStepName(name);
      await this.do(`${CHECKPOINT_PREFIX}${name}`, { retries: { limit: 0 } }, () => ({
        checkpoint: name,
      }));
    },
  };
}

/** Whether `step.patched` may journal its marker at the run's next place: new ground, or its own. */
function recordedHere(replay: Replay, run: Run, name: string): boolean {
  if (run.seq > run.journaled) return true;
  return replay.stepRow(run.seq)?.name === name;
}

/** Patch ids: as step names (they are journaled as `$patch:<id>`). */
function checkPatchId(id: unknown, method: string): asserts id is string {
  if (typeof id !== "string" || id.length === 0 || id.length > 200) {
    invalidArgument(`step.${method}() id`, "must be a string of 1 to 200 characters", id);
  }
}
