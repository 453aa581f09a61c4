/**
 * Workflows the tests run. Step bodies report to the Probe actor (a test-owned counter outside
 * the execution), so tests can count how often each body really ran.
 */
import { z } from "zod";
import { fulfil } from "../examples/cross-worker/platform/worker.ts";
import { locks, loop, NonRetryableError, pipeline, sequence, workflow } from "../src/index.ts";
import type { Env } from "./worker.ts";

/** Execution id → its actor state, so a step body can abort its own actor (a crash). */
export const liveActors = new Map<string, DurableObjectState>();
/** A "code deploy" switch read by the `shape` workflow. */
export const codeVariant = { current: "original" };

const probe = (env: unknown, name: string) => (env as Env).Probe.getByName(name);

export const greet = workflow("greet", async (input: { name: string }, step) => {
  const hello = await step.do("hello", async () => `Hello, ${input.name}`);
  await step.sleep("pause", "1 second");
  const approval = await step.waitForEvent<{ ok: boolean }>("approval", {
    type: "approve",
    timeout: "1 hour",
  });
  return { hello, approved: approval.payload.ok };
});

/** `n` steps, each counted; a sleep after every `sleepEvery` steps (abort points for tests). */
export const counted = workflow(
  "counted",
  async (input: { n: number; probe: string; sleepEvery?: number }, step, ctx) => {
    let sum = 0;
    for (let i = 0; i < input.n; i++) {
      sum += await step.do(`s${i}`, async () => {
        await probe(ctx.env, input.probe).hit(`s${i}`);
        return i;
      });
      if (input.sleepEvery && (i + 1) % input.sleepEvery === 0 && i + 1 < input.n) {
        await step.sleep(`nap${i}`, "1 minute");
      }
    }
    return sum;
  },
);

/** A step that fails `failures` times, then succeeds; records what each attempt saw. */
export const flaky = workflow(
  "flaky",
  async (
    input: {
      probe: string;
      failures: number;
      limit: number;
      delay: string;
      backoff: "constant" | "linear" | "exponential";
      /** Failure messages of 2,000 characters (to see them cut). */
      long?: boolean;
    },
    step,
    ctx,
  ) =>
    step.do(
      "unstable",
      { retries: { limit: input.limit, delay: input.delay as "1s", backoff: input.backoff } },
      async ({ attempt, idempotencyKey, previousError }) => {
        await probe(ctx.env, input.probe).record("attempts", {
          attempt,
          idempotencyKey,
          previous: previousError?.message ?? null,
        });
        if (attempt <= input.failures) {
          throw new Error(
            input.long ? `failure ${attempt} `.padEnd(2000, "x") : `failure ${attempt}`,
          );
        }
        return `ok after ${attempt}`;
      },
    ),
);

export const fatal = workflow(
  "fatal",
  async (input: { probe: string; flag?: boolean }, step, ctx) => {
    await step.do("fine", () => 1);
    return step.do("doomed", { retries: { limit: 5, delay: "1s" } }, async () => {
      await probe(ctx.env, input.probe).hit("doomed");
      if (input.flag)
        throw Object.assign(new Error("flagged: do not retry"), {
          retryable: false,
          code: "E_FLAG",
        });
      throw new NonRetryableError("card declined");
    });
  },
);

export const slow = workflow("slow", async (input: { probe: string }, step, ctx) =>
  step.do(
    "hangs",
    { timeout: "50ms", retries: { limit: 1, delay: "1s" } },
    async ({ signal, attempt }) => {
      await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve()));
      await probe(ctx.env, input.probe).record("aborted", {
        attempt,
        reason: String((signal.reason as Error)?.message),
      });
      return "never";
    },
  ),
);

export const parallel = workflow("parallel", async (input: { probe: string }, step, ctx) => {
  const all = await Promise.all(
    [1, 2, 3, 4, 5].map((n) =>
      step.do(`p${n}`, async () => {
        await probe(ctx.env, input.probe).hit(`p${n}`);
        return n * 10;
      }),
    ),
  );
  const settled = await Promise.allSettled([
    step.do("ok", () => "fine"),
    step.do("bad", { retries: { limit: 0 } }, () => {
      throw new Error("bad branch");
    }),
  ]);
  return { all, settled: settled.map((s) => s.status) };
});

export const validated = workflow(
  "validated",
  { input: z.object({ email: z.string().email(), count: z.number().int().positive() }) },
  async (input, step) => step.do("echo", () => `${input.email}×${input.count}`),
);

/** Changes shape with `codeVariant` to test the determinism guard. */
export const shape = workflow("shape", async (_input: { tag: string }, step) => {
  if (codeVariant.current === "renamed") await step.do("first-renamed", () => "A");
  else if (codeVariant.current === "removed") {
    /* first step removed */
  } else if (codeVariant.current === "reordered") {
    await step.sleep("wait", "1 minute");
    await step.do("first", () => "A");
    return step.do("second", () => "B");
  } else await step.do("first", () => "A");
  await step.sleep("wait", "1 minute");
  return step.do("second", () => "B");
});

/** Code versions of the `patchy` workflow per execution id ("deploys" in tests of patches). */
export const patchVariants = new Map<string, string>();

/**
 * A workflow whose code changes by phases of a patch: `v1` before it, `v2` branching on
 * `step.patched`, `v3` with `step.deprecatePatch`, `v4` with the patch gone.
 */
export const patchy = workflow("patchy", async (input: { phase: string }, step, ctx) => {
  const phase = () => patchVariants.get(ctx.executionId) ?? input.phase;
  let first: string;
  if (phase() === "bad-id") await step.patched("");
  if (phase() === "v1") first = await step.do("old", () => "old");
  else if (phase() === "v2") {
    first = (await step.patched("new-path"))
      ? await step.do("new", () => "new")
      : await step.do("old", () => "old");
  } else {
    if (phase() === "v3") await step.deprecatePatch("new-path");
    first = await step.do("new", () => "new");
  }
  await step.sleep("nap", "1 minute");
  // A patch placed after the point where older executions stopped: they reach it on new code.
  const later = phase() === "v2" ? await step.patched("later") : null;
  return { first, later, again: phase() === "v2" ? await step.patched("new-path") : null };
});

/**
 * Books (compensable), then is caught by its deadline where `at` says: in a step body that waits
 * for its abort signal, in a sleep, in a wait, or in a child execution's step.
 */
export const deadlined = workflow(
  "deadlined",
  { executionTimeout: "1 hour" },
  async (
    input: {
      probe: string;
      at: "step" | "sleep" | "wait" | "child" | "none";
      /** Its compensation waits for the probe's gate "unbook". */
      slowUndo?: boolean;
    },
    step,
    ctx,
  ) => {
    const p = probe(ctx.env, input.probe);
    await step.do(
      "book",
      {
        compensate: async () => {
          if (input.slowUndo) await p.waitGate("unbook");
          await p.hit("unbook");
        },
      },
      async () => (await p.hit("book")) > 0,
    );
    if (input.at === "step") {
      await step.do("slow", async ({ signal }) => {
        await p.hit("slow");
        await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve()));
        await p.record("aborted", { reason: String((signal.reason as Error)?.message) });
      });
    }
    if (input.at === "sleep") await step.sleep("nap", "2 hours");
    if (input.at === "wait") await step.waitForEvent("approval", { type: "approve" });
    if (input.at === "child") {
      await step.child("kid", childWork, { probe: input.probe, n: 1, gate: true });
    }
    await step.do("after", () => p.hit("after"));
    return "done";
  },
);

/** What schedules start in tests: ends at once, or holds until it gets a "release" event. */
export const scheduled = workflow("scheduled", async (input: { hold?: boolean }, step) => {
  if (input?.hold) await step.waitForEvent("held", { type: "release" });
  return "ran";
});

/** A step body that aborts its own actor on the first `crashes` attempts. */
export const crashy = workflow(
  "crashy",
  async (input: { probe: string; crashes: number; limit: number }, step, ctx) =>
    step.do("explodes", { retries: { limit: input.limit, delay: "1s" } }, async ({ attempt }) => {
      await probe(ctx.env, input.probe).hit("explodes");
      if (attempt <= input.crashes) {
        liveActors.get(ctx.executionId)?.abort("crash in step");
        await new Promise(() => {});
      }
      return attempt;
    }),
);

/** Waits on a Probe gate inside a step (a step still in flight when the test acts). */
export const gated = workflow("gated", async (input: { probe: string }, step, ctx) => {
  const a = await step.do("a", () => "a");
  const b = await step.do("b", async ({ signal }) => {
    signal.addEventListener("abort", () => {
      void probe(ctx.env, input.probe).record("abort", {
        step: "b",
        reason: String((signal.reason as Error)?.message),
      });
    });
    await probe(ctx.env, input.probe).hit("b");
    await probe(ctx.env, input.probe).waitGate("b");
    return signal.aborted ? "aborted" : "b";
  });
  const c = await step.do("c", async () => {
    await probe(ctx.env, input.probe).hit("c");
    return "c";
  });
  return [a, b, c].join("");
});

/** Like `gated`, but the gated step is the last one. */
export const gatedLast = workflow("gatedLast", async (input: { probe: string }, step, ctx) => {
  await step.do("a", () => "a");
  return step.do("b", async () => {
    await probe(ctx.env, input.probe).hit("b");
    await probe(ctx.env, input.probe).waitGate("b");
    return "done";
  });
});

export const sleeper = workflow("sleeper", async (input: { until: number }, step) => {
  await step.sleepUntil("until", input.until);
  await step.sleep("short", "250ms");
  return "rested";
});

export const eventful = workflow("eventful", async (_input: { n: number }, step) => {
  const first = await step.waitForEvent<string>("first", { type: "go" });
  const second = await step.waitForEvent<string>("second", { type: "go" });
  const maybe = await step
    .waitForEvent<string>("third", { type: "late", timeout: "10 minutes" })
    .then((e) => e.payload)
    .catch((e: { code?: string }) => `caught ${e.code}`);
  return [first.payload, second.payload, maybe];
});

/** Retries come from the workflow's defaults (limit 1: two attempts), not the step's. */
export const defaults = workflow(
  "defaults",
  { retries: { limit: 1, delay: "2 seconds", backoff: "constant" }, version: 3 },
  async (input: { probe: string }, step, ctx) =>
    step.do("uses-defaults", async ({ attempt }) => {
      await probe(ctx.env, input.probe).hit("attempt");
      throw new Error(`attempt ${attempt}`);
    }),
);

/** Works under a lock: acquisition and release are journaled steps. */
export const lockedWork = workflow(
  "lockedWork",
  async (input: { probe: string; resource: string; tag: string }, step, ctx) => {
    const lock = locks((ctx.env as Env).Locks);
    return lock.inWorkflow(
      step,
      input.resource,
      { ttl: "10 minutes", wait: "10 minutes" },
      async (lease) =>
        step.do("critical", async () => {
          await probe(ctx.env, input.probe).record("critical", {
            tag: input.tag,
            fence: lease.fence,
          });
          await probe(ctx.env, input.probe).waitGate(input.tag);
          return lease.fence;
        }),
    );
  },
);

/** Step secrets: `s1` fails its first attempt, so its two attempts show the secret twice. */
export const secrets = workflow("secrets", async (_input: Record<string, never>, step) => {
  const seen: string[] = [];
  await step.do(
    "s1",
    { retries: { limit: 1, delay: "1 second", backoff: "constant" } },
    async (attempt) => {
      seen.push(await attempt.secret());
      if (attempt.attempt === 1) throw new Error("retry once");
      return true;
    },
  );
  const other = await step.do("s2", async (attempt) => attempt.secret());
  return { first: seen[0] ?? "", again: seen[1] ?? "", other };
});

/**
 * Fails with an error message far over SQLite's row limit: quoting the event it waited for, from
 * a step (`where: "step"`) or from the workflow's own code (`"body"`).
 */
export const hugeError = workflow("hugeError", async (input: { where: "step" | "body" }, step) => {
  const event = await step.waitForEvent<{ size: number }>("data", { type: "data" });
  const message = `bad input: ${"x".repeat(event.payload.size)}`;
  if (input.where === "body") throw new Error(message);
  return step.do("parse", async () => {
    throw new NonRetryableError(message);
  });
});

/** `n` steps that each return `bytes` random bytes (big journal outputs). */
export const bigOutputs = workflow(
  "bigOutputs",
  async (input: { n: number; bytes: number }, step) => {
    for (let i = 0; i < input.n; i++) {
      await step.do(`big${i}`, async () => {
        const out = new Uint8Array(input.bytes);
        for (let j = 0; j < out.length; j += 65_536) {
          crypto.getRandomValues(out.subarray(j, j + 65_536));
        }
        return out;
      });
    }
    return input.n;
  },
);

/** A checkpoint inside a locked function (a fork from it would need the lock). */
export const lockedCheckpoint = workflow(
  "lockedCheckpoint",
  async (input: { resource: string }, step, ctx) =>
    locks((ctx.env as Env).Locks).inWorkflow(
      step,
      input.resource,
      { ttl: "1 minute" },
      async () => {
        await step.checkpoint("inside");
        return step.do("work", () => 1);
      },
    ),
);

/** At most two running executions per customer. */
export const limited = workflow(
  "limited",
  {
    concurrency: {
      limit: 2,
      key: (input: { customer: string }) => input.customer,
      binding: "Locks",
    },
  },
  async (input: { probe: string; customer: string; tag: string }, step, ctx) =>
    step.do("work", async () => {
      await probe(ctx.env, input.probe).record("in", { tag: input.tag });
      await probe(ctx.env, input.probe).waitGate(input.tag);
      return input.tag;
    }),
);

/** One running execution per key, with a checkpoint mid-way (forks take their own permit). */
export const limitedFork = workflow(
  "limitedFork",
  { concurrency: { limit: 1, key: (input: { key: string }) => input.key, binding: "Locks" } },
  async (input: { probe: string; key: string }, step, ctx) => {
    await step.do("a", () => 1);
    await step.checkpoint("mid");
    return step.do("b", async () => {
      await probe(ctx.env, input.probe).record("b", { id: ctx.executionId });
      await probe(ctx.env, input.probe).waitGate(ctx.executionId);
      return ctx.executionId;
    });
  },
);

/** Ten counted steps with a checkpoint after the fifth. */
export const forkable = workflow("forkable", async (input: { probe: string }, step, ctx) => {
  const outputs: number[] = [];
  for (let i = 0; i < 10; i++) {
    outputs.push(
      await step.do(`f${i}`, async () => {
        await probe(ctx.env, input.probe).hit(`f${i}`);
        return i * i;
      }),
    );
    if (i === 4) await step.checkpoint("half");
  }
  return outputs;
});

/** A caught wait timeout and a URL output before its checkpoint. */
export const forkEdges = workflow("forkEdges", async (input: { probe: string }, step, ctx) => {
  const missed = await step
    .waitForEvent("maybe", { type: "never", timeout: "1 second" })
    .then(() => "got it")
    .catch((e: { code?: string }) => e.code ?? "error");
  const link = await step.do("link", () => new URL("https://example.com/a?b=1"));
  await step.checkpoint("edges");
  const after = await step.do("after", async () => {
    await probe(ctx.env, input.probe).hit("after");
    return link.searchParams.get("b");
  });
  return [missed, link.href, after];
});

/** A child: counts its body, doubles `n`, or fails when asked. */
export const childWork = workflow(
  "childWork",
  async (input: { probe: string; n: number; fail?: boolean; gate?: boolean }, step, ctx) =>
    step.do("work", async ({ signal }) => {
      await probe(ctx.env, input.probe).hit(`child-${input.n}`);
      if (input.gate) {
        signal.addEventListener("abort", () => {
          void probe(ctx.env, input.probe).record("child-abort", { n: input.n });
        });
        await probe(ctx.env, input.probe).waitGate(`child-${input.n}`);
      }
      if (input.fail) throw new NonRetryableError(`child ${input.n} failed`);
      return input.n * 2;
    }),
);

/** Starts a child without awaiting it and returns: the parent still ends only after the child. */
export const detachedChild = workflow(
  "detachedChild",
  async (input: { probe: string; also?: boolean }, step) => {
    void step.child("bg", childWork, { probe: input.probe, n: 7, gate: true }).catch(() => {});
    if (input.also) await step.child("fg", childWork, { probe: input.probe, n: 8 });
    return "returned";
  },
);

/** Children whose step names have a slash, or make an id over the 256-character limit. */
export const oddChildren = workflow("oddChildren", async (input: { probe: string }, step) => {
  const a = await step.child("a/0/b", childWork, { probe: input.probe, n: 1 });
  const b = await step.child("a", childWork, { probe: input.probe, n: 2 });
  const c = await step.child("long-".repeat(48), childWork, { probe: input.probe, n: 3 });
  return [a, b, c];
});

/** Fans out to `count` children, then finalizes over every outcome in order. */
export const fanout = workflow(
  "fanout",
  async (input: { probe: string; count: number; failAt?: number[]; gate?: boolean }, step) => {
    const results = await step.children(
      "kids",
      Array.from({ length: input.count }, (_, n) => ({
        workflow: childWork,
        input: {
          probe: input.probe,
          n,
          fail: input.failAt?.includes(n) ?? false,
          gate: input.gate ?? false,
        },
      })),
    );
    return step.do("finalize", () => ({
      values: results.map((r) => (r.ok ? r.value : null)),
      failed: results.filter((r) => !r.ok).map((r) => (r.ok ? "" : r.error.message)),
    }));
  },
);

/** One child that itself runs a failing child (a grandchild). */
export const middle = workflow("middle", async (input: { probe: string }, step) =>
  step.child("leaf", childWork, { probe: input.probe, n: 99, fail: true }),
);

export const grandparent = workflow("grandparent", async (input: { probe: string }, step) => {
  const [only] = await step.children("mid", [{ workflow: middle, input: { probe: input.probe } }]);
  return step.do("finalize", () =>
    only && !only.ok ? `${only.error.code}: ${only.error.message}` : "ok",
  );
});

/** Three steps with compensations, then a failing (or gated) fourth. */
export const saga = workflow(
  "saga",
  async (
    input: {
      probe: string;
      fail?: boolean;
      gateFourth?: boolean;
      gateUndo?: string;
      badUndo?: string;
    },
    step,
    ctx,
  ) => {
    const p = () => probe(ctx.env, input.probe);
    for (const name of ["A", "B", "C"]) {
      await step.do(
        name,
        {
          compensate: async (output: string, { attempt }) => {
            await p().record("undo", { name, output, attempt });
            if (input.gateUndo === name) await p().waitGate(`undo-${name}`);
            if (input.badUndo === name) throw new Error(`cannot undo ${name}`);
          },
          compensationRetries: { limit: 2, delay: "1 second", backoff: "constant" },
        },
        async () => `did ${name}`,
      );
    }
    return step.do("D", async () => {
      await p().hit("D");
      if (input.gateFourth) await p().waitGate("D");
      if (input.fail) throw new NonRetryableError("D failed");
      return "all done";
    });
  },
);

/**
 * Two compensable steps in parallel: P1 is called first but (held by a gate) completes after P2;
 * then F fails. Compensations run in reverse call order (P2, then P1) on every run.
 */
export const parallelSaga = workflow(
  "parallelSaga",
  async (input: { probe: string }, step, ctx) => {
    const p = () => probe(ctx.env, input.probe);
    const undo =
      (name: string) =>
      async (output: string, { attempt }: { attempt: number }) => {
        await p().record("undo", { name, output, attempt });
        await p().waitGate(`undo-${name}`);
      };
    await Promise.all([
      step.do("P1", { compensate: undo("P1") }, async () => {
        await p().waitGate("P1");
        return "did P1";
      }),
      step.do("P2", { compensate: undo("P2") }, async () => "did P2"),
    ]);
    return step.do("F", async () => {
      throw new NonRetryableError("F failed");
    });
  },
);

/**
 * Three parallel steps: X (quick), A (held by a gate, ignores its abort signal) and B (fails when
 * let through). The saga waits for A to settle, then undoes A and X.
 */
export const raceSaga = workflow(
  "raceSaga",
  async (input: { probe: string; gateUndo?: string }, step, ctx) => {
    const p = () => probe(ctx.env, input.probe);
    const undo =
      (name: string) =>
      async (output: unknown, { attempt }: { attempt: number }) => {
        await p().record("undo", { name, output: String(output), attempt });
        if (input.gateUndo === name) await p().waitGate(`undo-${name}`);
      };
    await Promise.all([
      step.do("X", { compensate: undo("X") }, async () => "did X"),
      step.do("A", { compensate: undo("A") }, async ({ signal }) => {
        await p().hit("A");
        await p().waitGate("A");
        return signal.aborted ? "did A after the abort" : "did A";
      }),
      step.do("B", async () => {
        await p().waitGate("B");
        throw new NonRetryableError("B failed");
      }),
    ]);
    return step.do("after", async () => {
      await p().hit("after");
      return 1;
    });
  },
);

/** A pipeline: each step gets the previous output; step 3 can fail. */
export const orderPipeline = pipeline<{ probe: string; amount: number; failAt?: string }>(
  "orderPipeline",
)
  .step("reserve", async (input, _prev, ctx) => {
    await probe(ctx.env, input.probe).hit("reserve");
    if (input.failAt === "reserve") throw new NonRetryableError("no stock");
    return { reservation: "rsv-1" };
  })
  .step("charge", async (input, prev, ctx) => {
    await probe(ctx.env, input.probe).hit("charge");
    if (input.failAt === "charge") throw new NonRetryableError("card declined");
    return { ...prev, charged: input.amount };
  })
  .step("ship", async (input, prev, ctx) => {
    await probe(ctx.env, input.probe).hit("ship");
    return { ...prev, tracking: "trk-1" };
  })
  .onFailure(async ({ input, env, failedStep }) => {
    await (env as Env).Probe.getByName(input.probe).hit(`undo-after-${failedStep}`);
  });

export const pipelineWithHook = pipeline<{ probe: string; badHook?: boolean }>("pipelineWithHook")
  .step("one", () => 1)
  .step("two", () => {
    throw new NonRetryableError("two broke");
  })
  .step("three", () => 3)
  .onFailure(async ({ failedStep, failedIndex, stepOutputs, error, input, env }) => {
    await (env as Env).Probe.getByName(input.probe).record("failure", {
      failedStep,
      failedIndex,
      outputs: JSON.stringify(stepOutputs),
      message: error.message,
    });
    if (input.badHook) throw new NonRetryableError("the hook broke too");
  });

export const chained = sequence("chained", [
  { name: "parse", run: (text: string) => Number.parseInt(text, 10) },
  { name: "square", run: (n: number) => n * n },
  { name: "label", run: (n: number) => `=${n}` },
]);

export const countdown = loop("countdown", {
  initial: (input: { from: number }) => ({ left: input.from, steps: 0 }),
  body: (state) => ({ left: state.left - 1, steps: state.steps + 1 }),
  until: (state) => state.left <= 0,
  every: "1 second",
  maxIterations: 5,
});

export const allWorkflows = [
  patchy,
  scheduled,
  deadlined,
  fulfil,
  orderPipeline,
  pipelineWithHook,
  chained,
  countdown,
  saga,
  parallelSaga,
  raceSaga,
  childWork,
  fanout,
  detachedChild,
  oddChildren,
  middle,
  grandparent,
  forkEdges,
  forkable,
  lockedWork,
  limited,
  secrets,
  limitedFork,
  lockedCheckpoint,
  hugeError,
  bigOutputs,
  defaults,
  gatedLast,
  greet,
  counted,
  flaky,
  fatal,
  slow,
  parallel,
  validated,
  shape,
  crashy,
  gated,
  sleeper,
  eventful,
] as const;
