/**
 * The object's one alarm, kept at or before the earliest live timer. Every alarm write is a
 * committed write, so the alarm is moved only when it must be: earlier for a new timer; never
 * later for a cancel or a renewal (that early alarm finds nothing due and re-arms), unless the
 * owner asks with {@link AlarmClock.sync}. Baton owns the alarm: the time it last read or set
 * is cached, and re-read on every wake (which also repairs an alarm lost behind its back).
 */
export class AlarmClock {
  readonly #storage: DurableObjectStorage;
  readonly #now: () => number;
  /** The earliest due time of a live timer (actor clock), or null. */
  readonly #nextDue: () => number | null;
  /** True while a run is in flight: it re-arms when it ends, so nothing is armed meanwhile. */
  readonly #running: () => boolean;
  /** The alarm time as this instance last read or set it (real clock); undefined until read. */
  #armedAt: number | null | undefined;

  constructor(
    storage: DurableObjectStorage,
    now: () => number,
    nextDue: () => number | null,
    running: () => boolean,
  ) {
    this.#storage = storage;
    this.#now = now;
    this.#nextDue = nextDue;
    this.#running = running;
  }

  /**
   * The object woke: with live timers, re-read the alarm and make sure it is armed for them;
   * without, whatever alarm may be set is harmless (it finds nothing due), and the next timer
   * overwrites it, so it need not be read now.
   */
  async wake(): Promise<void> {
    if (this.#nextDue() === null) {
      this.#armedAt ??= null;
      return;
    }
    this.#armedAt = await this.#storage.getAlarm();
    await this.rearm();
  }

  /** The alarm that invoked a run is consumed (inside alarm() workerd reports none set). */
  consumed(): void {
    this.#armedAt = null;
  }

  /** Arms the alarm for a new timer due at `due` if that is earlier than what is armed. */
  async armFor(due: number): Promise<void> {
    if (this.#running()) return; // the run re-arms when it ends
    const real = this.#toReal(due);
    const armed = await this.#armed();
    if (armed !== null && armed <= real) return;
    // Earliest of all live timers, not just this one: the alarm may have been lost meanwhile.
    await this.#set(this.#toReal(this.#nextDue() ?? due));
  }

  /**
   * Makes sure an alarm is armed at or before the earliest live timer. An alarm that is earlier
   * (left by a cancel, or by a timer moved later) stays: it finds nothing due and re-arms then,
   * which is cheaper than writing the alarm on every cancel. With no live timer, an armed alarm
   * stays too (its wake does nothing).
   */
  async rearm(): Promise<void> {
    if (this.#running()) return;
    const next = this.#nextDue();
    if (next === null) return;
    const armed = await this.#armed();
    if (armed !== null && armed <= this.#toReal(next)) return;
    await this.#set(this.#toReal(next));
  }

  /** Moves the alarm to the earliest live timer now, or deletes it when there is none. */
  async sync(): Promise<void> {
    if (this.#running()) return;
    const next = this.#nextDue();
    const armed = await this.#armed();
    if (next === null) {
      if (armed !== null) {
        await this.#storage.deleteAlarm();
        this.#armedAt = null;
      }
      return;
    }
    const real = this.#toReal(next);
    const now = Date.now();
    // Already right: armed for that time, or both overdue (the alarm fires as soon as it can).
    if (armed !== null && (armed === real || (real <= now && armed <= now))) return;
    await this.#set(real);
  }

  async #armed(): Promise<number | null> {
    if (this.#armedAt === undefined) this.#armedAt = await this.#storage.getAlarm();
    return this.#armedAt;
  }

  async #set(real: number): Promise<void> {
    // Never at or before "now": a re-arm to "now" from inside alarm() is lost by workerd
    // (cloudflare/workerd#6866), and a past time means "as soon as possible" anyway.
    const at = Math.max(real, Date.now() + 1);
    this.#armedAt = at;
    await this.#storage.setAlarm(at);
  }

  /** Converts the actor clock (which tests may control) to the real clock the alarm uses. */
  #toReal(actorTime: number): number {
    return actorTime - (this.#now() - Date.now());
  }
}
