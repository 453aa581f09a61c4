import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import type { ExecutionActor } from "../../actors/execution-actor.ts";
import { type ExecutionHandle, executions } from "../clients/executions.ts";
import type { ForkSnapshot } from "../execution/fork.ts";
import type {
  EventReceipt,
  ExecutionInfo,
  ExecutionResult,
  JournalEntry,
  Value,
} from "../execution/types.ts";
import { type Duration, parseDuration } from "../foundation/duration.ts";
import { BatonError, invalidArgument, isBatonError } from "../foundation/errors.ts";
import {
  installTestHooks,
  removeTestHooks,
  type TestAccess,
  type TestHooks,
  testAccess,
} from "../foundation/test-hooks.ts";
import {
  type AnyWorkflow,
  type InputOf,
  NonRetryableError,
  type OutputOf,
} from "../workflow/workflow.ts";
import { type RecordedJournal, toRecorded } from "./journal.ts";

type Actor = ExecutionActor<never>;
type Stub = DurableObjectStub<Actor>;
/** The actor's inside view, for the kit only (a symbol-keyed method, through runInDurableObject). */
const inside = (instance: unknown): TestAccess =>
  (instance as { [testAccess](): TestAccess })[testAccess]();

/** How long `settle()` waits for step bodies that keep running before it gives up. */
const SETTLE_MS = 10_000;
/** How long a replay must stay still (no call, nothing in flight) to count as parked for good. */
const REPLAY_QUIET_MS = 50;
/** The heartbeat that revives a crashed execution (the Execution actor's, 30 s). */
const HEARTBEAT_MS = 30_000;
const TERMINAL = new Set(["completed", "failed", "cancelled", "timed_out"]);

/** An execution of the family `settle()` drives, as it stands. */
interface Member {
  id: string;
  info: ExecutionInfo;
  journal: JournalEntry[];
  /** Its steps whose body is running. */
  running: string[];
  /** It has a step parked on a timer, an event or a child. */
  parked: boolean;
  /** A run is live in its actor. */
  live: boolean;
  /** Work in flight in its run: bodies running, journaled outputs being read back. */
  busy: number;
  /** A timer of it is due on the clock. */
  due: boolean;
  /** Its children that have not finished (as its journal says). */
  children: string[];
}

/** What a journal shows its execution waiting for: one entry per unfinished step. */
function waitsOf(journal: JournalEntry[]): Waiting[] {
  const waits: Waiting[] = [];
  for (const e of journal) {
    if (e.status === "waiting" && e.kind === "wait") {
      waits.push({ kind: "event", step: e.name, type: e.eventType ?? "", timeoutAt: e.wakeAt });
    } else if (e.status === "waiting" && e.kind === "child") {
      waits.push({ kind: "child", step: e.name, childId: e.childId ?? "" });
    } else if (e.status === "sleeping") {
      waits.push({ kind: "sleep", step: e.name, until: e.wakeAt ?? 0 });
    } else if (e.status === "backoff") {
      waits.push({
        kind: "retry",
        step: e.name,
        at: e.wakeAt ?? 0,
        lastError: e.error?.message ?? null,
      });
    } else if (e.status === "running") {
      waits.push({ kind: "running", step: e.name, attempt: e.attempts });
    }
  }
  return waits;
}

/**
 * Where a lifecycle change goes among the journal's changes of the same (frozen) clock time: a
 * start or a resume before the steps it runs (0), a pause, a cancel or an end after them (2).
 */
function lifecycleRank(to: string, event: string): number {
  return TERMINAL.has(to) || event === "pause" || event === "cancel" ? 2 : 0;
}

/** The error of a call the kit's own mocked crash broke. */
function crashed(error: unknown): boolean {
  return /baton\/testing: (a )?crash/.test(String((error as Error)?.message ?? error));
}
const PARKED = new Set(["backoff", "sleeping", "waiting"]);
/** A child execution whose start is on its way: not idle (settle waits for it, or times out). */
const STARTING: Omit<Member, "id"> = {
  info: { status: "pending" } as ExecutionInfo,
  journal: [],
  running: ["(its start)"],
  parked: false,
  live: true,
  busy: 0,
  due: false,
  children: [],
};

/**
 * What a mocked step does instead of its body, by attempt. Mocks apply to every occurrence of
 * the step's name (or to `occurrence` only), in the execution and in its children.
 *
 * @example
 * ```ts
 * t.mockStep("charge", { throws: "card service down", times: 2 }); // then the real body runs
 * t.mockStep("charge", { throws: "declined", times: 2, returns: { id: "ch_1" } }); // then returns
 * t.mockStep("lookup", { returns: { plan: "pro" } }); // never runs the body
 * t.mockStep("charge", { throws: "card declined", nonRetryable: true }); // fails for good
 * t.mockStep("charge", { crash: true, times: 1 }); // the body runs, the actor dies before its
 * // result is journaled, then the step runs again under the same idempotency key
 * t.mockStep("charge", { crash: "before", times: 1 }); // the actor dies before the body runs
 * ```
 */
export interface StepMock {
  /** What the step returns (after the `times` failing attempts, if any): its body never runs. */
  returns?: Value;
  /** Attempts throw this (an Error, or a message for one). */
  throws?: string | Error;
  /** How many attempts throw or crash (default: every one). Then `returns`, or the real body. */
  times?: number;
  /** The thrown error is non-retryable: the step fails at its first throw. */
  nonRetryable?: boolean;
  /**
   * The attempt crashes the actor mid-step (as a deploy or a machine failure would), `times`
   * times: `true` (or `"after"`) runs the body first — its effects happen, its result is never
   * journaled, as when the actor dies between a charge and its journal write; `"before"` dies
   * before the body runs. The execution then replays and the step runs again under the same
   * idempotency key.
   */
  crash?: boolean | "before" | "after";
  /** Only this occurrence of a repeated step name (0 for the first call); default all. */
  occurrence?: number;
}

/** What an execution waits for, as {@link TestExecution.waitingFor} tells. */
export type Waiting =
  | { kind: "event"; step: string; type: string; timeoutAt: number | null }
  | { kind: "sleep"; step: string; until: number }
  | { kind: "retry"; step: string; at: number; lastError: string | null }
  | { kind: "child"; step: string; childId: string }
  | { kind: "running"; step: string; attempt: number };

/** One status change of an execution (`statusHistory()`), as `status()` would have shown it. */
export interface StatusChange {
  from: string;
  to: string;
  /**
   * What changed it: a lifecycle event (`start`, `complete`, `fail`, `pause`, `resume`,
   * `cancel` ...), or `sleep`, `wait`, `child` (a step parked it) and `wake`, `event`,
   * `timeout` (that step ended).
   */
  event: string;
  /** On the execution's (test) clock. */
  at: number;
  /** The step that parked or woke it (for `sleep`, `wait`, `child`, `wake`, `event`, `timeout`). */
  step?: string;
}

/**
 * One execution under test, inside workerd, on the real Execution actor: its clock is the
 * test's (it moves only when you advance it), its steps can be mocked, its actor evicted or
 * crashed mid-step, and everything it did can be read back. Get one from
 * {@link TestKit.execution}.
 */
export class TestExecution<W extends AnyWorkflow = AnyWorkflow> {
  /** The execution id (a fresh one unless given). */
  readonly id: string;
  readonly workflow: W;
  /** The ordinary client handle of the execution (status, result, journal, sendEvent ...). */
  readonly handle: ExecutionHandle<OutputOf<W>>;
  readonly #ns: DurableObjectNamespace<Actor>;
  readonly #hooks: TestHooks;
  readonly #mocks: Array<{ name: string; mock: StepMock }> = [];

  /** @internal Made by the test kit. */
  constructor(
    ns: DurableObjectNamespace<Actor>,
    workflow: W,
    id: string,
    options: { replayOnly?: boolean } = {},
  ) {
    this.#ns = ns;
    this.workflow = workflow;
    this.id = id;
    this.handle = executions(ns as never).get(workflow as never, id) as never;
    this.#hooks = installTestHooks(id, {
      clock: Date.now(),
      transitions: [],
      step: (name, occurrence, attempt) => this.#override(name, occurrence, attempt),
      ...(options.replayOnly ? { replayOnly: true, workflow } : {}),
    });
  }

  /**
   * @internal A replay test's state: the position where the code went past the recording (if it
   * did), and the steps it called there.
   */
  get replayState(): {
    ended?: number;
    calls: Array<{ name: string; kind: string }>;
    compensated?: NonNullable<TestHooks["replayCompensated"]>;
  } {
    const { replayEnded, replayCalls, replayCompensated } = this.#hooks;
    return {
      ...(replayEnded !== undefined ? { ended: replayEnded } : {}),
      calls: replayCalls ?? [],
      ...(replayCompensated ? { compensated: replayCompensated } : {}),
    };
  }

  /** @internal Creates this execution from a recording (a replay test) and settles it. */
  async importRecording(snapshot: ForkSnapshot): Promise<ExecutionInfo> {
    await runInDurableObject(this.#stub(this.id), (instance) =>
      inside(instance).importRecording(snapshot as never),
    );
    return this.settle();
  }

  // ---- set up -------------------------------------------------------------------------------

  /**
   * Replaces what step `name` does (see {@link StepMock}); the last mock given for a name wins.
   *
   * @throws BatonError `INVALID_ARGUMENT` for a mock that says nothing, or two things at once.
   */
  mockStep(name: string, mock: StepMock): this {
    const m = mock as StepMock | null;
    if (typeof name !== "string" || !name || typeof m !== "object" || m === null) {
      invalidArgument("mockStep", "takes a step name and a mock object", mock);
    }
    if (!("returns" in m) && m.throws === undefined && !m.crash) {
      invalidArgument("mock", "needs returns, throws or crash", mock);
    }
    if (
      m.crash !== undefined &&
      m.crash !== true &&
      m.crash !== false &&
      m.crash !== "before" &&
      m.crash !== "after"
    ) {
      invalidArgument("mock.crash", 'must be true, "before" or "after"', m.crash);
    }
    if (m.throws !== undefined && m.crash)
      invalidArgument("mock", "throws or crashes, not both", mock);
    if ((m.throws !== undefined || m.crash) && "returns" in m && m.times === undefined) {
      invalidArgument(
        "mock",
        "returns after failing attempts needs times (how many fail first)",
        mock,
      );
    }
    if (m.times !== undefined && (!Number.isSafeInteger(m.times) || m.times < 0)) {
      invalidArgument("mock.times", "must be an integer >= 0", m.times);
    }
    if (m.occurrence !== undefined && (!Number.isSafeInteger(m.occurrence) || m.occurrence < 0)) {
      invalidArgument("mock.occurrence", "must be an integer >= 0", m.occurrence);
    }
    if (m.nonRetryable && m.throws === undefined) {
      invalidArgument("mock.nonRetryable", "goes with throws", mock);
    }
    this.#mocks.unshift({ name, mock: m });
    return this;
  }

  /** Makes every `step.sleep` and `step.sleepUntil` end at once (default: they take test time). */
  instantSleeps(on = true): this {
    this.#hooks.instantSleeps = on;
    return this;
  }

  // ---- drive --------------------------------------------------------------------------------

  /** Starts the execution with `input` and lets it run until it waits or ends. */
  async start(input: InputOf<W>, options: { retention?: Duration } = {}): Promise<ExecutionInfo> {
    await this.#tolerate(
      executions(this.#ns as never).start(this.workflow as never, input as never, {
        id: this.id,
        ...(options.retention !== undefined ? { retention: options.retention as never } : {}),
      }),
    );
    return this.settle();
  }

  /**
   * Lets the execution run on its current clock until it ends or waits — for an event, a sleep, a
   * retry's backoff, a child — running the timers that are due. A run the actor crashed in is
   * revived as in production: by the next call to the execution (the kit's own reads), or by its
   * heartbeat (the clock moves 30 s) when that did not.
   *
   * @throws Error when step bodies are still running after `timeoutMs` (default 10 s) of real time.
   */
  async settle(options: { timeoutMs?: number } = {}): Promise<ExecutionInfo> {
    const deadline = Date.now() + (options.timeoutMs ?? SETTLE_MS);
    let quiet = 0;
    let replayed = -1;
    let stillSince = Date.now();
    for (;;) {
      const family = await this.#family();
      const root = family[0] as Member;
      const due = family.filter((m) => m.due);
      if (Date.now() > deadline) {
        const busy = family.flatMap((m) => [
          ...m.running.map((step) => `step "${step}" of ${m.id} is running`),
          ...(m.due ? [`${m.id} keeps having timers due`] : []),
        ]);
        throw new Error(
          `baton/testing: execution "${this.id}" is still busy after ${options.timeoutMs ?? SETTLE_MS} ms: ${busy.join(", ") || "it has not settled"}.`,
        );
      }
      if (due.length > 0) {
        for (const m of due) await this.#tolerate(this.#runDueIn(m.id));
        quiet = 0;
        continue;
      }
      if (TERMINAL.has(root.info.status)) return root.info;
      if (this.#hooks.replayOnly) {
        // A replay parks for good where the recording ends: settled once its calls stop coming,
        // nothing is in flight, and that holds for a while (it may be between two steps).
        const activity = this.#hooks.replayActivity ?? 0;
        const still = root.busy === 0 && root.running.length === 0 && activity === replayed;
        replayed = activity;
        if (!still) stillSince = Date.now();
        else if (++quiet >= 3 && Date.now() - stillSince >= REPLAY_QUIET_MS) return root.info;
        if (!still) quiet = 0;
        await new Promise((resolve) => setTimeout(resolve, 1));
        continue;
      }
      const dead = (m: Member) =>
        !m.live &&
        (m.running.length > 0 ||
          // Died between steps: nothing of the step it was in was written (a transaction).
          (m.info.status === "running" && !m.parked));
      if (family.some(dead)) {
        // A step body died with its actor and nothing revived it: the heartbeat does.
        this.#hooks.clock = this.now() + HEARTBEAT_MS;
        continue;
      }
      const idle = family.every(
        (m) =>
          // Ended, and its parent has heard (a report still on its way keeps the parent busy).
          (TERMINAL.has(m.info.status) && !family.some((p) => p.children.includes(m.id))) ||
          (m.running.length === 0 && (m.parked || m.info.status === "paused")),
      );
      // Twice in a row: it is waiting, not between two steps.
      if (idle && ++quiet >= 2) return root.info;
      if (!idle) quiet = 0;
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }

  /**
   * Moves the execution's clock forward by `duration`, running every timer that falls due on the
   * way at its own time (a sleep, then the backoffs of the step after it ...), then settles. A
   * 7-day sleep passes in milliseconds.
   */
  async advance(duration: Duration): Promise<ExecutionInfo> {
    const target = this.now() + parseDuration(duration);
    for (;;) {
      await this.settle();
      const next = await this.#nextDue();
      if (next === null || next > target) break;
      this.#hooks.clock = Math.max(this.now(), next);
    }
    this.#hooks.clock = target;
    return this.settle();
  }

  /**
   * Moves the clock to the execution's next wake-up — a sleep's end, a retry after its backoff,
   * a wait's timeout, in it or in its children — running what falls due on the way, and settles.
   * Returns the new time, or null when nothing is timed (it waits for an event only, or ended).
   */
  async advanceToNextTimer(): Promise<number | null> {
    await this.settle();
    let next: number | null = null;
    for (const m of await this.#family()) {
      for (const e of m.journal) {
        if (PARKED.has(e.status) && e.wakeAt !== null && (next === null || e.wakeAt < next)) {
          next = e.wakeAt;
        }
      }
    }
    if (next === null) return null;
    await this.advance(Math.max(0, next - this.now()));
    return this.now();
  }

  /**
   * Runs the execution to its end, skipping time (through every sleep, backoff and wait timeout),
   * and delivering `events` (by type, each once) when it — or one of its children — waits for
   * them. Stops early if it waits for an event that is not in `events` and has no timeout.
   */
  async finish(events: Record<string, Value> = {}): Promise<ExecutionInfo> {
    const pending = new Map(Object.entries(events));
    let last = "";
    for (let rounds = 0; rounds < 10_000; rounds++) {
      const info = await this.settle();
      if (TERMINAL.has(info.status)) return info;
      const family = await this.#family();
      // The clock and every wait as they were a round ago: the last timer moved nothing, and
      // nothing more will happen.
      const state = JSON.stringify([this.now(), family.map((m) => waitsOf(m.journal))]);
      if (state === last) return info;
      last = state;
      let sent = false;
      for (const m of family) {
        for (const w of waitsOf(m.journal)) {
          if (w.kind === "event" && pending.has(w.type)) {
            await this.#tolerate(this.#stub(m.id).sendEvent(w.type, pending.get(w.type) as Value));
            pending.delete(w.type);
            sent = true;
          }
        }
      }
      if (sent) continue;
      if ((await this.advanceToNextTimer()) === null) return this.settle();
    }
    throw new Error(`baton/testing: execution "${this.id}" did not finish in 10000 rounds.`);
  }

  /** Sends an event (as `sendEvent`) and settles. */
  async sendEvent(
    type: string,
    payload?: Value,
    options: { dedupeKey?: string } = {},
  ): Promise<EventReceipt> {
    const receipt = await this.#tolerate(this.handle.sendEvent(type, payload, options));
    await this.settle();
    return receipt;
  }

  /** Evicts the actor (its memory goes, its storage stays); the next call replays. */
  async evict(): Promise<void> {
    await evictDurableObject(this.#stub(this.id)).catch(() => {
      // Not running: evicted already.
    });
  }

  /** Crashes the actor now (as a deploy or a machine failure would); `settle()` recovers it. */
  async crash(): Promise<void> {
    await runInDurableObject(this.#stub(this.id), (_instance, state) => {
      state.abort("baton/testing: crash");
    }).catch(() => {
      // The call that crashed it fails: expected.
    });
  }

  // ---- read ---------------------------------------------------------------------------------

  /** The execution's clock (ms since the epoch). */
  now(): number {
    return this.#hooks.clock ?? Date.now();
  }

  status(): Promise<ExecutionInfo> {
    return this.handle.status();
  }

  /**
   * Its outcome.
   *
   * @throws BatonError `RESULT_TIMEOUT` if it has not ended (settle or advance first).
   */
  async result(): Promise<ExecutionResult<OutputOf<W>>> {
    const described = await this.#stub(this.id).describe();
    if (!described.result) {
      throw new BatonError(
        "RESULT_TIMEOUT",
        `Execution "${this.id}" is ${described.info.status}, not finished: advance its clock, send its event, or finish() it.`,
      );
    }
    return described.result as ExecutionResult<OutputOf<W>>;
  }

  /** The whole journal (every page). */
  journal(): Promise<JournalEntry[]> {
    return this.#journalOf(this.id);
  }

  /**
   * The attempts of step `name` (its `occurrence`, default the first): how many ran, and each
   * failed one with its error.
   *
   * @throws BatonError `INVALID_ARGUMENT` if the journal has no such step.
   */
  async attempts(
    name: string,
    occurrence = 0,
  ): Promise<{
    attempts: number;
    status: string;
    failed: NonNullable<JournalEntry["failedAttempts"]>;
  }> {
    const entry = (await this.journal()).filter((e) => e.name === name)[occurrence];
    if (!entry) invalidArgument("step", `is not in the journal (occurrence ${occurrence})`, name);
    return { attempts: entry.attempts, status: entry.status, failed: entry.failedAttempts ?? [] };
  }

  /** What the execution waits for now: one entry per unfinished step (none once it has ended). */
  async waitingFor(): Promise<Waiting[]> {
    return waitsOf(await this.journal());
  }

  /**
   * Every status change of the execution, in order, on its clock, as `status()` would have shown
   * it: its lifecycle (`pending`, `running`, `paused`, its end) from the actor, and the stretches
   * it spent `sleeping` or `waiting` (for an event or a child) from its journal.
   *
   * @example
   * ```ts
   * expect((await t.statusHistory()).map((c) => c.to)).toEqual(
   *   ["running", "waiting", "running", "sleeping", "running", "completed"],
   * );
   * ```
   */
  async statusHistory(): Promise<StatusChange[]> {
    // Ties on the (frozen) clock: a start before the steps it ran, an end after them.
    const marks: Array<StatusChange & { rank: number }> = (this.#hooks.transitions ?? [])
      .filter((t) => t.execution === this.id)
      .map(({ from, to, event, at }) => ({ from, to, event, at, rank: lifecycleRank(to, event) }));
    for (const e of await this.journal()) {
      const parked =
        e.kind === "sleep"
          ? "sleeping"
          : e.kind === "wait" || e.kind === "child"
            ? "waiting"
            : null;
      if (!parked) continue;
      marks.push({ from: "", to: parked, event: e.kind, at: e.startedAt, step: e.name, rank: 1 });
      // A cancelled sleep or wait never ended: the execution's own end follows.
      if (e.endedAt !== null && e.status !== "cancelled") {
        const event = e.status === "timed_out" ? "timeout" : e.kind === "wait" ? "event" : "wake";
        marks.push({ from: "", to: "running", event, at: e.endedAt, step: e.name, rank: 1 });
      }
    }
    marks.sort((a, b) => a.at - b.at || a.rank - b.rank);
    const history: StatusChange[] = [];
    let current = "pending";
    for (const { rank: _rank, ...mark } of marks) {
      if (mark.to === current) continue;
      history.push({ ...mark, from: current });
      current = mark.to;
    }
    return history;
  }

  /** The journal as a JSON document to keep and replay later ({@link TestKit.replay}). */
  async exportJournal(): Promise<RecordedJournal> {
    const snapshot = await this.#stub(this.id).exportJournal();
    return toRecorded(snapshot, (await this.status()).status);
  }

  /**
   * Removes the execution's test hooks: its clock goes back to real time, its mocks go, and its
   * id can be put under test again. The execution itself stays (read it as any other).
   */
  dispose(): void {
    if (this.#hooks.replayOnly) return; // A replay stays inert: it must never run a step body.
    removeTestHooks(this.id, this.#hooks);
  }

  // ---- inside -------------------------------------------------------------------------------

  #stub(id: string): Stub {
    return this.#ns.getByName(id);
  }

  /** The whole journal of execution `id` (this one or a child), every page. */
  async #journalOf(id: string): Promise<JournalEntry[]> {
    const entries: JournalEntry[] = [];
    for (;;) {
      const from = entries.length ? (entries.at(-1)?.seq ?? 0) + 1 : 0;
      const page = await this.#stub(id).journal({ from });
      if (page.length === 0) return entries;
      entries.push(...page);
    }
  }

  #probe(id: string) {
    return runInDurableObject(this.#stub(id), (instance) => inside(instance).probe());
  }

  /** This execution and its unfinished children (theirs too), each as it stands now. */
  async #family(): Promise<Member[]> {
    const members: Member[] = [];
    const queue = [this.id];
    for (let i = 0; i < queue.length; i++) {
      const id = queue[i] as string;
      const read = await this.#read(id, i > 0);
      if (!read) {
        // A child its parent is starting (the call is on its way): busy until it exists.
        members.push({ ...STARTING, id, info: { ...STARTING.info, id } as ExecutionInfo });
        continue;
      }
      const { info, journal, probe } = read;
      // Children still running (as far as the journal knows).
      const children = journal
        .filter(
          (e) =>
            e.kind === "child" &&
            e.childId &&
            (e.status === "waiting" || e.status === "running") &&
            !queue.includes(e.childId),
        )
        .map((e) => e.childId as string);
      members.push({
        id,
        info,
        journal,
        running: journal.filter((e) => e.status === "running").map((e) => e.name),
        parked: journal.some((e) => PARKED.has(e.status)),
        live: probe.live,
        busy: probe.busy,
        due: probe.nextDue !== null && probe.nextDue <= probe.now,
        children,
      });
      queue.push(...children);
    }
    return members;
  }

  /**
   * One execution's status, journal and probe. status() also revives a run an evicted or crashed
   * actor lost, as any caller's would. A mocked crash may break the actor while these calls run,
   * and its stubs stay broken: each try takes new ones.
   */
  async #read(id: string, child: boolean) {
    for (let tries = 0; ; tries++) {
      try {
        const info = await this.#stub(id).status();
        const journal = await this.#journalOf(id);
        const probe = await this.#probe(id);
        return { info, journal, probe };
      } catch (error) {
        if (child && isBatonError(error, "EXECUTION_NOT_FOUND")) return undefined;
        if (!crashed(error) || tries >= 10) throw error;
      }
    }
  }

  #runDueIn(id: string): Promise<void> {
    return runInDurableObject(this.#stub(id), (instance) => inside(instance).runDue());
  }

  /** The earliest timer of this execution and its children. */
  async #nextDue(): Promise<number | null> {
    let next: number | null = null;
    for (const m of await this.#family()) {
      const probe = await this.#probe(m.id);
      if (probe.nextDue !== null && (next === null || probe.nextDue < next)) next = probe.nextDue;
    }
    return next;
  }

  /**
   * A call that a mocked crash may break (the actor dies while it runs): the crash is expected,
   * so it is not an error; `retry` (if given) asks again, of the actor that comes back.
   */
  async #tolerate<T>(call: Promise<T>, retry?: () => Promise<T>): Promise<T> {
    try {
      return await call;
    } catch (error) {
      if (!crashed(error)) throw error;
      if (!retry) return undefined as T;
      return retry();
    }
  }

  #override(name: string, occurrence: number, attempt: number) {
    const found = this.#mocks.find(
      (m) =>
        m.name === name && (m.mock.occurrence === undefined || m.mock.occurrence === occurrence),
    );
    if (!found) return undefined;
    const { mock } = found;
    const failing = mock.times === undefined || attempt <= mock.times;
    if (failing && mock.crash) return { kind: "crash" as const, after: mock.crash !== "before" };
    if (failing && mock.throws !== undefined) {
      const given = mock.throws instanceof Error ? mock.throws : new Error(mock.throws);
      if (!mock.nonRetryable) return { kind: "throw" as const, error: given };
      // Non-retryable, keeping the given error's name and code.
      const error = Object.assign(new NonRetryableError(given.message, { cause: given }), {
        name: given.name === "Error" ? "NonRetryableError" : given.name,
        ...(typeof (given as { code?: unknown }).code === "string"
          ? { code: (given as { code?: string }).code }
          : {}),
      });
      return { kind: "throw" as const, error };
    }
    if ("returns" in mock) return { kind: "return" as const, value: mock.returns };
    return undefined;
  }
}
