/**
 * The soak's random workflow programs: their shape, a generator (fast-check arbitraries, so a
 * seed gives the same programs every time) and the reference interpreter that says what each
 * program must end with — its result or error, and which compensations run in which order.
 *
 * A program is data; one registered workflow (`soak`, test/soak/workflow.ts) interprets it, in
 * the parent and in its children. Nothing in a program's outcome may depend on timing: a step
 * that should succeed has retries to spare for the attempts chaos takes from it, a step that
 * should fail fails on every attempt, and an event that must arrive late is sent only after its
 * wait has timed out (the workflow says so through a gate).
 */
import fc from "fast-check";

/** A `step.do`: fails its first `fail` attempts (throwing, hanging past its timeout, or at once for good). */
export interface DoOp {
  t: "do";
  name: string;
  /** Attempts that fail before one succeeds; `ALWAYS` = every attempt. */
  fail: number;
  mode: "throw" | "hang" | "nonretryable";
  /** Retries (`retries.limit`): attempts are `limit + 1`. */
  limit: number;
  /** Registers a compensation (saga). */
  comp: boolean;
  /** The test hooks crash the actor in its first attempt, before or after its body. */
  crash?: "before" | "after";
}

export type Op =
  | DoOp
  /** Parallel `step.do`s (all settle; then the first failure by position is thrown). */
  | { t: "par"; name: string; items: DoOp[] }
  | { t: "sleep"; name: string; ms: number }
  /**
   * `waitForEvent`, fed by the driver: `before` (sent at start, maybe before the wait), `during`
   * (once the wait is reached), `duplicate` (sent three times, twice with one dedupe key), `late`
   * (the wait times out; its event is sent after, then a gate lets the program go on).
   */
  | { t: "wait"; name: string; mode: "before" | "during" | "duplicate" | "late" }
  /** A child execution running `ops`; `catch`: the parent catches its failure. */
  | { t: "child"; name: string; ops: Op[]; catch: boolean }
  /** Runs `ops`, catching a failure (its value is then `caught:<code>`). */
  | { t: "try"; name: string; ops: Op[] }
  /** A wait for the driver: it cancels the execution here if the program says so, else opens it. */
  | { t: "gate"; name: string };

/** A chaos action of the driver, done when the program's `signal`-th signal is seen. */
export interface Chaos {
  signal: number;
  action: "evict" | "abort" | "alarm" | "late-alarm" | "jump";
}

export interface Program {
  /** Index in the run (with the seed, it names the program). */
  index: number;
  ops: Op[];
  /** `cancel`: cancelled at the gate named `cancelAt`; `restart`: run again once it has ended. */
  control: "none" | "cancel" | "restart";
  cancelAt?: string;
  chaos: Chaos[];
}

export const ALWAYS = 99;
/** Attempts chaos may take from one step: two aborts of its actor and one injected crash. */
export const CHAOS_ATTEMPTS = 3;
/** Aborts per program (each takes at most one attempt from every step then in flight). */
export const MAX_ABORTS = 2;

/** The error a failing program (or caught block) ends with. */
export interface ExpectedError {
  code: string;
  step: string;
}

export type Expected =
  | { ok: true; value: unknown[]; compensations: string[] }
  | { ok: false; status: "failed" | "cancelled"; error: ExpectedError; compensations: string[] };

/** What a program's steps must leave behind, for the checks (per execution: parent or child). */
export interface ExpectedSteps {
  /** `do` steps that complete (their effect must be recorded under their idempotency key). */
  completed: string[];
  /** `do` steps that fail for good (no effect may be recorded for them). */
  failed: string[];
  /** Compensations (step names), in the order they must run. */
  compensations: string[];
  /** Children, in call order, with what each must do. */
  children: Array<{ name: string; ops: Op[]; expected: Expected; steps: ExpectedSteps }>;
}

class Failure {
  constructor(readonly error: ExpectedError) {}
}

/** The error code a `do` step that fails for good ends with. */
export function failureCode(op: DoOp): string {
  if (op.mode === "hang") return "STEP_TIMEOUT";
  if (op.mode === "nonretryable") return "SOAK_NON_RETRYABLE";
  return "SOAK_FAILED";
}

/** Whether a `do` step fails for good. */
export function failsForGood(op: DoOp): boolean {
  return op.mode === "nonretryable" || op.fail > op.limit;
}

/**
 * The reference interpreter: what running `ops` must give, with the steps completed (in journal
 * order) and children. The workflow (test/soak/workflow.ts) is its twin over the real engine.
 */
export function expect(program: Pick<Program, "ops" | "control" | "cancelAt">): {
  expected: Expected;
  steps: ExpectedSteps;
} {
  const steps: ExpectedSteps = { completed: [], failed: [], compensations: [], children: [] };
  const compensable: string[] = [];
  const runDo = (op: DoOp): unknown => {
    if (failsForGood(op)) {
      steps.failed.push(op.name);
      throw new Failure({ code: failureCode(op), step: op.name });
    }
    steps.completed.push(op.name);
    if (op.comp) compensable.push(op.name);
    return op.name;
  };
  const run = (ops: Op[]): unknown[] => {
    const values: unknown[] = [];
    for (const op of ops) {
      switch (op.t) {
        case "do":
          values.push(runDo(op));
          break;
        case "par": {
          const settled = op.items.map((item) => {
            try {
              return { ok: true as const, value: runDo(item) };
            } catch (error) {
              return { ok: false as const, error: error as Failure };
            }
          });
          const failed = settled.find((s) => !s.ok);
          if (failed && !failed.ok) throw failed.error;
          values.push(settled.map((s) => (s.ok ? s.value : null)));
          break;
        }
        case "sleep":
          values.push("slept");
          break;
        case "wait":
          values.push(op.mode === "late" ? "timeout" : `payload:${op.name}`);
          break;
        case "gate":
          if (program.control === "cancel" && program.cancelAt === op.name) {
            throw new Cancelled();
          }
          values.push("gate");
          break;
        case "child": {
          const child = expect({ ops: op.ops, control: "none" });
          steps.children.push({ name: op.name, ops: op.ops, ...child });
          if (child.expected.ok) values.push(child.expected.value);
          else if (op.catch) values.push(`child-failed:${child.expected.error.code}`);
          else throw new Failure({ code: child.expected.error.code, step: op.name });
          break;
        }
        case "try":
          try {
            values.push(run(op.ops));
          } catch (error) {
            if (error instanceof Cancelled) throw error;
            values.push(`caught:${(error as Failure).error.code}`);
          }
          break;
      }
    }
    return values;
  };
  try {
    const value = run(program.ops);
    return { expected: { ok: true, value, compensations: [] }, steps };
  } catch (error) {
    // Compensations run newest first, in reverse journal order.
    steps.compensations = [...compensable].reverse();
    if (error instanceof Cancelled) {
      return {
        expected: {
          ok: false,
          status: "cancelled",
          error: { code: "CANCELLED", step: "" },
          compensations: steps.compensations,
        },
        steps,
      };
    }
    return {
      expected: {
        ok: false,
        status: "failed",
        error: (error as Failure).error,
        compensations: steps.compensations,
      },
      steps,
    };
  }
}

class Cancelled {}

// ---- The generator ----

const doOp: fc.Arbitrary<DoOp> = fc
  .record({
    kind: fc.constantFrom("ok", "ok", "ok", "flaky", "flaky", "hang", "fails", "nonretryable"),
    fail: fc.integer({ min: 1, max: 2 }),
    limit: fc.integer({ min: 0, max: 2 }),
    comp: fc.boolean(),
    crash: fc.option(fc.constantFrom("before" as const, "after" as const), { freq: 6 }),
  })
  .map(({ kind, fail, limit, comp, crash }) => {
    // Steps that should succeed get CHAOS_ATTEMPTS retries beyond their planned failures.
    const op: DoOp = { t: "do", name: "", fail: 0, mode: "throw", limit: CHAOS_ATTEMPTS, comp };
    if (kind === "flaky") Object.assign(op, { fail, limit: fail + CHAOS_ATTEMPTS });
    // (A hang's timeout may also cut a slow attempt on a busy machine: one retry more.)
    else if (kind === "hang")
      Object.assign(op, { mode: "hang", fail: 1, limit: 2 + CHAOS_ATTEMPTS });
    // Failing for good: its last attempt must be its own failure, never chaos (STEP_INTERRUPTED).
    else if (kind === "fails") Object.assign(op, { fail: ALWAYS, limit: limit + CHAOS_ATTEMPTS });
    else if (kind === "nonretryable") Object.assign(op, { mode: "nonretryable", fail: ALWAYS });
    if (crash !== null) op.crash = crash;
    return op;
  });

const leaf: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: doOp, weight: 4 },
  {
    arbitrary: fc.array(doOp, { minLength: 2, maxLength: 4 }).map((items) => ({
      t: "par" as const,
      name: "",
      items,
    })),
    weight: 1,
  },
  {
    arbitrary: fc
      .integer({ min: 10, max: 400 })
      .map((ms) => ({ t: "sleep" as const, name: "", ms })),
    weight: 1,
  },
  {
    arbitrary: fc.constantFrom("before", "during", "duplicate", "late").map((mode) => ({
      t: "wait" as const,
      name: "",
      mode: mode as "before" | "during" | "duplicate" | "late",
    })),
    weight: 2,
  },
);

const inner: fc.Arbitrary<Op[]> = fc.array(leaf, { minLength: 1, maxLength: 3 });

const top: fc.Arbitrary<Op[]> = fc.array(
  fc.oneof(
    { arbitrary: leaf, weight: 6 },
    {
      arbitrary: fc
        .record({ ops: inner, catch: fc.boolean() })
        .map((r) => ({ t: "child" as const, name: "", ops: r.ops, catch: r.catch })),
      weight: 1,
    },
    { arbitrary: inner.map((body) => ({ t: "try" as const, name: "", ops: body })), weight: 1 },
  ),
  { minLength: 1, maxLength: 7 },
);

/** Names every step of a program, in call order, unique within it (children included). */
function nameAll(list: Op[], next: (prefix: string) => string): void {
  const prefixes = { do: "s", par: "p", sleep: "z", wait: "w", child: "c", try: "t", gate: "g" };
  for (const op of list) {
    op.name = next(prefixes[op.t]);
    if (op.t === "par") for (const item of op.items) item.name = next("s");
    if (op.t === "child" || op.t === "try") nameAll(op.ops, next);
  }
}

/** The programs of a run: `count` of them from `seed` (the same seed gives the same programs). */
export function programs(seed: number, count: number): Program[] {
  const seeds = fc.sample(fc.integer({ min: 0, max: 2 ** 31 - 1 }), { seed, numRuns: count });
  return seeds.map((caseSeed, index) => program(caseSeed, index));
}

/** One program from its own seed. */
export function program(caseSeed: number, index: number): Program {
  const shape = fc.record({
    ops: top,
    control: fc.constantFrom("none", "none", "none", "cancel", "restart"),
    gateAt: fc.nat(),
    chaos: fc.array(
      fc.record({
        signal: fc.integer({ min: 1, max: 30 }),
        action: fc.constantFrom("evict", "abort", "alarm", "late-alarm", "jump"),
      }),
      { maxLength: 4 },
    ),
  });
  const [drawn] = fc.sample(shape, { seed: caseSeed, numRuns: 1 });
  if (!drawn) throw new Error("fast-check drew no program");
  const result: Program = {
    index,
    ops: drawn.ops,
    control: drawn.control as Program["control"],
    chaos: [],
  };
  if (result.control === "cancel") {
    result.ops.splice(drawn.gateAt % (result.ops.length + 1), 0, { t: "gate", name: "" });
  }
  let n = 0;
  nameAll(result.ops, (prefix) => `${prefix}${++n}`);
  if (result.control === "cancel") {
    result.cancelAt = result.ops.find((op) => op.t === "gate")?.name;
  }
  let aborts = 0;
  for (const c of drawn.chaos) {
    if (c.action === "abort" && ++aborts > MAX_ABORTS) continue;
    result.chaos.push(c as Chaos);
  }
  return result;
}
