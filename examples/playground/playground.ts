import { z } from "zod";
import { ExecutionActor, NonRetryableError, type Value, workflow } from "../../src/index.ts";

/**
 * A workflow whose steps its input spells out — to try the dashboard (and its tests) with every
 * kind of step: retried ones, failing ones with compensations, sleeps, waits, children.
 *
 * ```json
 * { "steps": [
 *   { "do": "fetch", "fail": 2 },
 *   { "sleep": "cool down", "for": "2 seconds" },
 *   { "wait": "approval", "event": "approve", "timeout": "1 hour" },
 *   { "child": "sub-task", "steps": [{ "do": "inner" }] },
 *   { "do": "book", "compensate": true },
 *   { "do": "explode", "nonRetryable": true }
 * ] }
 * ```
 */
type PlayStep =
  | {
      do: string;
      /** Attempts that fail before one succeeds. */
      fail?: number;
      /** Every attempt fails at once, without retries. */
      nonRetryable?: boolean;
      /** How long each attempt takes, in ms (at most 10 s). */
      ms?: number;
      /** Its output (default: the step's name and attempt). */
      output?: unknown;
      /** Undone (a journaled compensation step) if the execution fails later. */
      compensate?: boolean;
    }
  | { sleep: string; for: string }
  | { wait: string; event: string; timeout?: string }
  | { child: string; steps: PlayStep[] };

const name = z.string().min(1).max(200);
const PlayStep: z.ZodType<PlayStep> = z.lazy(() =>
  z.union([
    z.strictObject({
      do: name,
      fail: z.number().int().min(0).max(20).optional(),
      nonRetryable: z.boolean().optional(),
      ms: z.number().int().min(0).max(10_000).optional(),
      output: z.unknown().optional(),
      compensate: z.boolean().optional(),
    }),
    z.strictObject({ sleep: name, for: z.string().min(1).max(50) }),
    z.strictObject({ wait: name, event: name, timeout: z.string().min(1).max(50).optional() }),
    z.strictObject({ child: name, steps: z.array(PlayStep).max(50) }),
  ]),
);

export const Playground = z.object({
  steps: z.array(PlayStep).min(1).max(100),
  /** The delay between retries (default "1 second"). */
  retryDelay: z.string().min(1).max(50).optional(),
});
export type Playground = z.infer<typeof Playground>;

export const playground = workflow(
  "playground",
  { input: Playground },
  async (input, step): Promise<Value[]> => {
    const outputs: Value[] = [];
    for (const s of input.steps) {
      if ("do" in s) {
        const retries = {
          limit: s.fail ?? 0,
          delay: (input.retryDelay ?? "1 second") as "1 second",
          backoff: "constant" as const,
        };
        const run = async ({ attempt }: { attempt: number }): Promise<Value> => {
          if (s.ms) await new Promise((resolve) => setTimeout(resolve, s.ms));
          if (s.nonRetryable) throw new NonRetryableError(`"${s.do}" fails for good, on purpose`);
          if (attempt <= (s.fail ?? 0))
            throw new Error(`attempt ${attempt} of "${s.do}" fails on purpose`);
          return (s.output ?? { step: s.do, attempt }) as Value;
        };
        outputs.push(
          await (s.compensate
            ? step.do(s.do, { retries, compensate: async () => undefined }, run)
            : step.do(s.do, { retries }, run)),
        );
      } else if ("sleep" in s) {
        await step.sleep(s.sleep, s.for as "1 second");
      } else if ("wait" in s) {
        const event = await step.waitForEvent(s.wait, {
          type: s.event,
          ...(s.timeout ? { timeout: s.timeout as "1 hour" } : {}),
        });
        outputs.push(event.payload as Value);
      } else {
        outputs.push((await step.child(s.child, playground, { steps: s.steps })) as Value);
      }
    }
    return outputs;
  },
);

/** The Execution actor of the playground (its children run on it too). */
export class PlaygroundExecutions extends ExecutionActor<unknown> {
  readonly workflows = [playground];
  protected override readonly childBinding = "Playground";
}
