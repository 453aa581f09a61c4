import type { ScheduleActor } from "../../actors/schedule-actor.ts";
import type { Value } from "../execution/types.ts";
import { checkId } from "../foundation/errors.ts";
import { checkNotReserved } from "../foundation/reserved.ts";
import {
  SCHEDULE_REGISTRY,
  type ScheduleInfo,
  type ScheduleList,
  type ScheduleRun,
  type ScheduleSpec,
  type ScheduleUpdate,
} from "../protocol/schedules.ts";
import type { AnyWorkflow, InputOf } from "../workflow/workflow.ts";

type Stub = DurableObjectStub<ScheduleActor>;

/** `create`'s spec, typed by the workflow when a definition is given. */
export type ScheduleOf<W extends AnyWorkflow | string> = Omit<ScheduleSpec, "workflow" | "input"> &
  (W extends AnyWorkflow ? { workflow: W; input: InputOf<W> } : { workflow: W; input?: Value });

/**
 * The typed client of a Schedule actor namespace: one Schedule actor per schedule id, and one
 * (`baton:schedules`) that lists them.
 *
 * @example
 * ```ts
 * const nightly = await schedules(env.Schedules).create({
 *   id: "nightly-report",
 *   workflow: report,          // or its name
 *   input: { kind: "daily" },
 *   cron: "30 2 * * *",
 *   timezone: "Europe/Berlin",
 * });
 * await schedules(env.Schedules).trigger("nightly-report"); // run it now as well
 * ```
 */
export class SchedulesClient {
  readonly #ns: DurableObjectNamespace<ScheduleActor>;

  constructor(ns: DurableObjectNamespace<ScheduleActor>) {
    this.#ns = ns;
  }

  /**
   * Creates a schedule (idempotent for the same spec; another spec under the id fails with
   * `SCHEDULE_CONFLICT`). Each fire starts `workflow` with `input` as execution
   * `<id>/<fire time, ISO>`.
   *
   * @throws BatonError `INVALID_ARGUMENT` / `INVALID_DURATION` naming a bad value (cron
   *   expression, time zone, an interval under 1 second …), `SCHEDULE_CONFLICT`, `FORBIDDEN`
   *   (a reserved id), `CONFIGURATION_ERROR`.
   */
  async create<W extends AnyWorkflow | string>(spec: ScheduleOf<W>): Promise<ScheduleInfo> {
    const workflow = typeof spec?.workflow === "string" ? spec.workflow : spec?.workflow?.name;
    return this.#stub(spec?.id).create({ ...spec, workflow } as ScheduleSpec);
  }

  /**
   * The schedule's settings, state and recent runs (newest first).
   *
   * @throws BatonError `SCHEDULE_NOT_FOUND`.
   */
  async get(id: string): Promise<ScheduleInfo> {
    return this.#stub(id).describe();
  }

  /** A page of every schedule, in id order; pass `cursor` back for the next page. */
  async list(query: { limit?: number; cursor?: string | null } = {}): Promise<ScheduleList> {
    return this.#ns.getByName(SCHEDULE_REGISTRY).listSchedules(query);
  }

  /** Stops firing (fires while paused never happen). */
  async pause(id: string): Promise<ScheduleInfo> {
    return this.#stub(id).pause();
  }

  /** Fires again from now on. */
  async resume(id: string): Promise<ScheduleInfo> {
    return this.#stub(id).resume();
  }

  /**
   * Changes settings (not the id); giving `cron` replaces `every` and the other way round.
   *
   * @example
   * ```ts
   * await schedules(env.Schedules).update("nightly-report", { cron: "0 3 * * *", overlap: "buffer-one" });
   * ```
   */
  async update<W extends AnyWorkflow | string>(
    id: string,
    patch: ScheduleUpdate | Partial<ScheduleOf<W>>,
  ): Promise<ScheduleInfo> {
    const workflow = patch?.workflow;
    const named =
      workflow === undefined || typeof workflow === "string"
        ? (patch as ScheduleUpdate)
        : ({ ...patch, workflow: workflow.name } as ScheduleUpdate);
    return this.#stub(id).update(named);
  }

  /** Deletes the schedule (the executions it started stay). Nothing happens for an unknown id. */
  async delete(id: string): Promise<void> {
    return this.#stub(id).delete();
  }

  /** Starts a run now, whatever the overlap policy; returns it. */
  async trigger(id: string): Promise<ScheduleRun> {
    return this.#stub(id).trigger();
  }

  /**
   * Starts a run for every fire time in `[from, to)` that has none yet (at most 1,000, none in
   * the future), whatever the overlap policy.
   */
  async backfill(id: string, from: Date | number, to: Date | number): Promise<ScheduleRun[]> {
    return this.#stub(id).backfill(from, to);
  }

  #stub(id: unknown): Stub {
    const checked = checkNotReserved(checkId(id, "Schedule id", 200), "Schedule id");
    return this.#ns.getByName(checked);
  }
}

/**
 * The typed client of a Schedule actor namespace.
 *
 * @example
 * ```ts
 * await schedules(env.Schedules).create({ id: "hourly-sync", workflow: "sync", every: "1 hour" });
 * const { schedules: all } = await schedules(env.Schedules).list();
 * ```
 */
export function schedules(ns: DurableObjectNamespace<ScheduleActor>): SchedulesClient {
  return new SchedulesClient(ns);
}
