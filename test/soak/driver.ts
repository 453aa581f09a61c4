/**
 * The soak driver: runs one program against the real actors, feeds its waits and gates, injects
 * its chaos, and checks everything the run left behind against the reference interpreter.
 */
import {
  env,
  evictDurableObject,
  runDurableObjectAlarm,
  runInDurableObject,
} from "cloudflare:test";
import { installTestHooks, removeTestHooks } from "../../src/foundation/test-hooks.ts";
import { executions, type JournalEntry } from "../../src/index.ts";
import {
  type Expected,
  type ExpectedSteps,
  type Op,
  type Program,
  expect as reference,
} from "./program.ts";
import { bus, type Output, type SoakEnv, signal, soak } from "./workflow.ts";

const soakEnv = env as unknown as SoakEnv;
const client = () => executions(soakEnv.SoakExecutions);
const TERMINAL = new Set(["completed", "failed", "cancelled", "timed_out"]);
const HEARTBEAT_MS = 30_000;

export interface ProgramReport {
  id: string;
  lost: number;
  duplicated: number;
  mismatched: number;
  stuck: number;
  /** What went wrong, one line each. */
  problems: string[];
  /** Chaos actions that took effect, by kind (and `crash`: crashes injected in step attempts). */
  chaos: Record<string, number>;
  ms: number;
}

const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Every op of a program by name (children included). */
function index(ops: Op[], into = new Map<string, Op>()): Map<string, Op> {
  for (const op of ops) {
    into.set(op.name, op);
    if (op.t === "par") for (const item of op.items) into.set(item.name, item);
    if (op.t === "child" || op.t === "try") index(op.ops, into);
  }
  return into;
}

/** The execution an idempotency key (`<execution>/<step>/<occurrence>`) belongs to. */
function keyExecution(key: string): string {
  return key.split("/").slice(0, -2).join("/");
}

/** Runs program `p` as execution `id`, with its chaos, until it ends (or `boundMs` passes). */
export async function runProgram(p: Program, id: string, boundMs: number): Promise<ProgramReport> {
  const began = Date.now();
  const report: ProgramReport = {
    id,
    lost: 0,
    duplicated: 0,
    mismatched: 0,
    stuck: 0,
    problems: [],
    chaos: {},
    ms: 0,
  };
  const ops = index(p.ops);
  const crashes = new Map<string, "before" | "after">();
  for (const op of ops.values()) if (op.t === "do" && op.crash) crashes.set(op.name, op.crash);
  const hooks = installTestHooks(id, {
    step(name, _occurrence, attempt) {
      const when = crashes.get(name);
      if (when === undefined || attempt !== 1) return undefined;
      signal(id, "crash", name);
      return { kind: "crash", after: when === "after" };
    },
  });
  const stubOf = (execution: string) => soakEnv.SoakExecutions.getByName(execution);
  // Calls of the driver may meet an actor that chaos (or a planned crash) is resetting: retried
  // (events under a dedupe key, so a retry of one that did arrive is a no-op).
  const retrying = async <T>(call: () => Promise<T>): Promise<T> => {
    for (let tries = 1; ; tries++) {
      try {
        return await call();
      } catch (error) {
        if (tries >= 20 || typeof (error as { code?: unknown }).code === "string") throw error;
        await wait(20);
      }
    }
  };
  const send = (execution: string, type: string, payload?: string, dedupeKey?: string | null) =>
    retrying(() =>
      client()
        .get(execution)
        .sendEvent(
          type,
          payload,
          dedupeKey === null ? {} : { dedupeKey: dedupeKey ?? `driver-${type}` },
        ),
    ).catch((error: unknown) => {
      // A late event to an execution that has ended is refused; anything else is a problem.
      if ((error as { code?: string }).code !== "EXECUTION_FINISHED") throw error;
    });
  const revive = async (execution: string) => {
    // As production does: the heartbeat alarm brings the run back (the clock moves to it).
    bus.clockOffset += HEARTBEAT_MS;
    await runDurableObjectAlarm(stubOf(execution)).catch(() => false);
  };
  /** Does one chaos action; counts it in the report when it took effect. */
  const chaos = async (action: string, execution: string) => {
    const stub = stubOf(execution);
    let done = true;
    switch (action) {
      case "evict":
        // Refused (after a while) while calls are in flight: then it is not evicted this time.
        done = await evictDurableObject(stub).then(
          () => true,
          () => false,
        );
        break;
      case "abort":
        // The abort breaks the call that made it: that rejection is the abort happening.
        await runInDurableObject(stub, (_instance, state) => state.abort("soak: abort")).catch(
          () => {},
        );
        await revive(execution);
        break;
      case "alarm": // a duplicate alarm: alarm() called while the real one stays armed
        done = await runInDurableObject(stub, (instance) => instance.alarm()).then(
          () => true,
          () => false,
        );
        break;
      case "late-alarm": // the armed alarm run now, whatever its time (late for some timers)
        done = await runDurableObjectAlarm(stub).catch(() => false);
        break;
      case "jump":
        bus.clockOffset += HEARTBEAT_MS;
        break;
    }
    if (done) report.chaos[action] = (report.chaos[action] ?? 0) + 1;
  };

  let cursor = 0;
  let seen = 0;
  let handled = new Set<string>();
  // Events of the root's own waits (not its children's) sent "before": right after the start.
  const own = (list: Op[]): Op[] => list.flatMap((op) => (op.t === "try" ? own(op.ops) : [op]));
  const sendBefore = async () => {
    for (const op of own(p.ops)) {
      if (op.t === "wait" && op.mode === "before")
        await send(id, `event-${op.name}`, `payload:${op.name}`);
    }
  };
  const pump = async () => {
    const list = bus.signals.get(id) ?? [];
    while (cursor < list.length) {
      const s = list[cursor++] as (typeof list)[number];
      seen++;
      for (const c of p.chaos) if (c.signal === seen) await chaos(c.action, s.execution);
      const once = `${s.execution}|${s.kind}|${s.name}`;
      if (s.kind === "crash") {
        report.chaos.crash = (report.chaos.crash ?? 0) + 1;
        await wait(5);
        await revive(s.execution);
        continue;
      }
      if (handled.has(once)) continue; // a replay passing the same point again
      handled.add(once);
      const op = ops.get(s.name);
      if (s.kind === "wait" && op?.t === "wait") {
        const type = `event-${op.name}`;
        const payload = `payload:${op.name}`;
        if (op.mode === "during" || (op.mode === "before" && s.execution !== id)) {
          await send(s.execution, type, payload);
        } else if (op.mode === "duplicate") {
          await send(s.execution, type, payload, `dup-${op.name}`);
          await send(s.execution, type, payload, `dup-${op.name}`);
          await send(s.execution, type, payload, null); // a plain duplicate, left buffered
        }
      } else if (s.kind === "late") {
        await send(s.execution, `event-${s.name}`, "too late");
        await send(s.execution, `gate-${s.name}`);
      } else if (s.kind === "gate") {
        if (p.control === "cancel" && p.cancelAt === s.name)
          await retrying(() => client().get(s.execution).cancel());
        else await send(s.execution, `gate-${s.name}`);
      }
    }
  };
  const untilEnded = async () => {
    let polls = 0;
    while (Date.now() - began < boundMs) {
      await pump();
      if (polls++ % 10 === 0) {
        const status = await retrying(() => client().get(id).status());
        if (TERMINAL.has(status.status)) {
          await pump();
          return true;
        }
      }
      await wait(25);
    }
    return false;
  };

  const { expected, steps } = reference(p);
  const effectsOf = () => soakEnv.Effects.getByName(id).dump();
  const expectedKeys = new Set<string>();
  try {
    await client().start(soak, { root: id, ops: p.ops }, { id });
    await sendBefore();
    if (!(await untilEnded())) {
      report.stuck++;
      report.problems.push(`stuck: ${JSON.stringify(await client().get(id).status())}`);
      return report;
    }
    let from = 0;
    if (p.control === "restart") {
      // The first run is checked in full; then the same program runs again under the same id
      // (every step again, under the same idempotency keys), checked against its own effects.
      await checkOutcome(id, expected, report, "run 1");
      const first = await effectsOf();
      await checkExecution(id, steps, view(first, 0), expectedKeys, report);
      from = first.effects.length;
      handled = new Set();
      for (const key of bus.observed.keys()) if (key.startsWith(id)) bus.observed.delete(key);
      await client().get(id).restart();
      await sendBefore();
      if (!(await untilEnded())) {
        report.stuck++;
        report.problems.push(
          `stuck after restart: ${JSON.stringify(await client().get(id).status())}`,
        );
        return report;
      }
    }
    await checkOutcome(id, expected, report, p.control === "restart" ? "run 2" : "");
    const all = await effectsOf();
    await checkExecution(id, steps, view(all, from), expectedKeys, report);
    // The dedupe store: one entry per key, and no key the reference does not expect.
    for (const entry of all.dedupe) {
      if (!expectedKeys.has(entry.key)) {
        report.duplicated++;
        report.problems.push(`unexpected effect under ${entry.key} (${entry.nonce})`);
      }
    }
  } catch (error) {
    report.mismatched++;
    report.problems.push(`driver error: ${(error as Error).stack ?? String(error)}`);
  } finally {
    removeTestHooks(id, hooks);
    bus.signals.delete(id);
    for (const key of bus.observed.keys()) if (key.startsWith(id)) bus.observed.delete(key);
    report.ms = Date.now() - began;
  }
  return report;
}

interface Dump {
  effects: Array<{ key: string; nonce: string }>;
  dedupe: Array<{ key: string; nonce: string }>;
}

/** The effects of one run (from the `from`-th on), and the first of each key among them. */
function view(dump: Dump, from: number): Dump {
  const effects = dump.effects.slice(from);
  const first = new Map<string, { key: string; nonce: string }>();
  for (const e of effects) if (!first.has(e.key)) first.set(e.key, e);
  return { effects, dedupe: [...first.values()] };
}

function effectsFor(effects: Dump, key: string): number {
  return effects.effects.filter((e) => e.key === key).length;
}

async function journalOf(id: string): Promise<JournalEntry[]> {
  const all: JournalEntry[] = [];
  for (let from = 0; ; ) {
    const page = await client().get(id).journal({ from });
    all.push(...page);
    if (page.length < 1000) return all;
    from = (page.at(-1)?.seq ?? from) + 1;
  }
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** The execution's outcome against the reference. */
async function checkOutcome(id: string, expected: Expected, report: ProgramReport, label: string) {
  const result = await client().get(id).result();
  const got = result.ok
    ? { ok: true, value: result.value }
    : { ok: false, status: result.status, code: result.error.code, step: result.error.step ?? "" };
  const want = expected.ok
    ? { ok: true, value: expected.value }
    : {
        ok: false,
        status: expected.status,
        code: expected.error.code,
        step: expected.status === "cancelled" ? got.step : expected.error.step,
      };
  if (!same(got, want)) {
    report.mismatched++;
    report.problems.push(
      `${id}${label ? ` (${label})` : ""}: result ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`,
    );
  }
}

/** One execution's journal, effects and compensations (and its children's, recursively). */
async function checkExecution(
  id: string,
  steps: ExpectedSteps,
  effects: Dump,
  expectedKeys: Set<string>,
  report: ProgramReport,
): Promise<void> {
  const journal = await journalOf(id);
  const byName = new Map(journal.map((e) => [e.name, e]));
  if (
    new Set(journal.map((e) => e.seq)).size !== journal.length ||
    journal.some((e, i) => e.seq !== i)
  ) {
    report.mismatched++;
    report.problems.push(
      `${id}: journal positions not 0..n-1 once each: ${journal.map((e) => e.seq)}`,
    );
  }
  const attemptsOf = (_key: string, entry: JournalEntry) => entry.attempts;

  for (const name of steps.completed) {
    const key = `${id}/${name}/0`;
    expectedKeys.add(key);
    const entry = byName.get(name);
    const raw = effectsFor(effects, key);
    if (entry?.status !== "completed") {
      report.lost++;
      report.problems.push(
        `${id}: step ${name} should have completed: ${JSON.stringify(entry ?? null)}`,
      );
      continue;
    }
    if (!effects.dedupe.some((d) => d.key === key)) {
      report.lost++;
      report.problems.push(`${id}: no effect recorded for ${key}`);
    }
    if (raw > attemptsOf(key, entry)) {
      report.duplicated++;
      report.problems.push(
        `${id}: ${raw} effects for ${key} in ${attemptsOf(key, entry)} attempts`,
      );
    }
    // The journaled output came from a real attempt, and every read of it saw that same value.
    const output = entry.output as Output;
    if (!effects.effects.some((e) => e.key === key && e.nonce === output.nonce)) {
      report.mismatched++;
      report.problems.push(`${id}: journaled output of ${name} matches no attempt's effect`);
    }
    const observed = [...(bus.observed.get(`${id}|${name}`) ?? [])];
    if (observed.length !== 1 || observed[0] !== JSON.stringify(output)) {
      report.mismatched++;
      report.problems.push(
        `${id}: step ${name} was read as ${observed.join(" and ") || "nothing"} (journal: ${JSON.stringify(output)})`,
      );
    }
  }
  for (const name of steps.failed) {
    const key = `${id}/${name}/0`;
    const entry = byName.get(name);
    if (entry && entry.status === "completed") {
      report.mismatched++;
      report.problems.push(`${id}: step ${name} should have failed, it completed`);
    }
    if (effectsFor(effects, key) > 0) {
      report.duplicated++;
      report.problems.push(`${id}: step ${name} failed for good but recorded an effect`);
    }
  }
  // Compensations: once each (the dedupe store), newest first.
  const compensations = effects.dedupe.filter(
    (d) => d.nonce.startsWith("comp:") && keyExecution(d.key) === id,
  );
  for (const c of compensations) expectedKeys.add(c.key);
  const order = compensations.map((c) => c.nonce.slice("comp:".length));
  if (!same(order, steps.compensations)) {
    report.mismatched++;
    report.problems.push(
      `${id}: compensations ran ${JSON.stringify(order)}, expected ${JSON.stringify(steps.compensations)}`,
    );
  }
  for (const c of compensations) {
    const raw = effectsFor(effects, c.key);
    const entry = byName.get(c.key.split("/").at(-2) ?? "");
    if (!entry) {
      report.mismatched++;
      report.problems.push(`${id}: compensation ${c.key} ran but has no journal entry`);
    } else if (raw > attemptsOf(c.key, entry)) {
      report.duplicated++;
      report.problems.push(
        `${id}: compensation ${c.key} ran ${raw} times in ${attemptsOf(c.key, entry)} attempts`,
      );
    }
  }
  // Children: each as the reference says, ended before the parent.
  const parentInfo = await client().get(id).status();
  const childEntries = journal.filter((e) => e.kind === "child");
  if (childEntries.length !== steps.children.length) {
    report.mismatched++;
    report.problems.push(
      `${id}: ${childEntries.length} children, expected ${steps.children.length}`,
    );
  }
  for (const [i, child] of steps.children.entries()) {
    const entry = childEntries[i];
    const childId = (entry as { childId?: string } | undefined)?.childId;
    if (!entry) continue; // counted above
    if (!childId) {
      report.mismatched++;
      report.problems.push(`${id}: child step ${child.name} has no child id`);
      continue;
    }
    await checkOutcome(childId, child.expected, report, `child ${child.name}`);
    const info = await client().get(childId).status();
    if (info.endedAt === null || parentInfo.endedAt === null || info.endedAt > parentInfo.endedAt) {
      report.mismatched++;
      report.problems.push(
        `${childId}: ended at ${info.endedAt}, after its parent (${parentInfo.endedAt})`,
      );
    }
    await checkExecution(childId, child.steps, effects, expectedKeys, report);
  }
}
