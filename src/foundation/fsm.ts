import { BatonError, invalidArgument } from "./errors.ts";
import type { Sql } from "./sql.ts";

const TABLE = "_baton_fsm";

/** Framework migration that creates the state-machine table. */
export const FSM_TABLE_SQL = `CREATE TABLE ${TABLE} (
  name TEXT PRIMARY KEY,
  state TEXT NOT NULL,
  transitions INTEGER NOT NULL DEFAULT 0,
  updated_at INTEGER NOT NULL
) STRICT`;

/** For each state, the events it accepts and the state each leads to. */
export type Transitions<S extends string, E extends string> = {
  readonly [From in S]?: { readonly [Event in E]?: S };
};

/** One change of state, as passed to `onTransition`. */
export interface Transition<S extends string, E extends string> {
  from: S;
  to: S;
  event: E;
  /** When it happened (actor clock, ms). */
  at: number;
}

/** The definition of a persisted state machine. */
export interface MachineDefinition<S extends string, E extends string> {
  /** Name of the machine within its object (one object may hold several). */
  name: string;
  /** State of a machine that has never transitioned. */
  initial: S;
  transitions: Transitions<S, E>;
  /**
   * Called inside the transaction that stores the new state; if it throws, the transition is
   * rolled back and the error propagates. Keep it synchronous (SQL writes are).
   */
  onTransition?: (transition: Transition<S, E>) => void;
  /**
   * Where the state lives, when it belongs in a row of your own (for example a `status` column).
   * Default: Baton's `_baton_fsm` table. Both functions run inside the transition's transaction.
   */
  store?: {
    /** The stored state, or `undefined` for a machine that has none yet (the initial state). */
    read(): S | undefined;
    write(state: S, at: number): void;
  };
}

/** An event, by name or as an object with a `type` (the style of `@workkit/do`). */
export type MachineEvent<E extends string> = E | { readonly type: E };

/**
 * A finite state machine whose state lives in the object's SQLite: it is read from storage on
 * every access, so it is correct after eviction, and a transition is stored atomically with
 * whatever `onTransition` writes.
 *
 * @example
 * ```ts
 * type OrderState = "pending" | "processing" | "shipped" | "cancelled";
 * type OrderEvent = "start" | "ship" | "cancel";
 * const order = new StateMachine<OrderState, OrderEvent>(sql, {
 *   name: "order",
 *   initial: "pending",
 *   transitions: {
 *     pending: { start: "processing", cancel: "cancelled" },
 *     processing: { ship: "shipped", cancel: "cancelled" },
 *   },
 * });
 * order.send("start"); // "processing"
 * order.send({ type: "ship" }); // "shipped"
 * order.send("cancel"); // throws INVALID_TRANSITION: valid events from "shipped": (none)
 * ```
 */
export class StateMachine<S extends string, E extends string> {
  readonly #sql: Sql;
  readonly #def: MachineDefinition<S, E>;
  readonly #now: () => number;

  constructor(sql: Sql, definition: MachineDefinition<S, E>, now: () => number = Date.now) {
    if (typeof definition?.name !== "string" || definition.name.length === 0) {
      invalidArgument("Machine name", "must be a non-empty string", definition?.name);
    }
    if (typeof definition.initial !== "string" || definition.initial.length === 0) {
      invalidArgument("Machine initial state", "must be a non-empty string", definition.initial);
    }
    this.#sql = sql;
    this.#def = definition;
    this.#now = now;
  }

  /** The machine's name. */
  get name(): string {
    return this.#def.name;
  }

  /** The current state, read from storage. */
  get state(): S {
    if (this.#def.store) return this.#def.store.read() ?? this.#def.initial;
    const row = this.#sql.one<{ state: string }>(
      `SELECT state FROM ${TABLE} WHERE name = ?`,
      this.#def.name,
    );
    return (row?.state ?? this.#def.initial) as S;
  }

  /** Number of transitions made since creation or the last reset (0 with a custom `store`). */
  get transitionCount(): number {
    if (this.#def.store) return 0;
    return (
      this.#sql.value<number>(`SELECT transitions FROM ${TABLE} WHERE name = ?`, this.#def.name) ??
      0
    );
  }

  /** True if `event` is valid in the current state. */
  can(event: MachineEvent<E>): boolean {
    return this.#target(this.state, eventName(event)) !== undefined;
  }

  /** Events valid in the current state. */
  validEvents(): E[] {
    return Object.keys(this.#def.transitions[this.state] ?? {}) as E[];
  }

  /**
   * Applies `event` and stores the new state (with `onTransition`'s writes) atomically.
   *
   * @returns the new state.
   * @throws BatonError `INVALID_TRANSITION` if the current state does not accept the event; the
   *   message and `details.validEvents` list the events it does accept. Nothing changes then.
   */
  send(event: MachineEvent<E>): S {
    const name = eventName(event);
    return this.#sql.transaction(() => {
      const from = this.state;
      const to = this.#target(from, name);
      if (to === undefined) {
        const valid = Object.keys(this.#def.transitions[from] ?? {});
        throw new BatonError(
          "INVALID_TRANSITION",
          `Invalid transition: state "${from}" of machine "${this.#def.name}" does not handle event "${String(name)}". Valid events: [${valid.join(", ")}].`,
          { machine: this.#def.name, state: from, event: name, validEvents: valid },
        );
      }
      const at = this.#now();
      if (this.#def.store) this.#def.store.write(to, at);
      else {
        this.#sql.run(
          `INSERT INTO ${TABLE} (name, state, transitions, updated_at) VALUES (?, ?, 1, ?)
           ON CONFLICT (name) DO UPDATE SET state = excluded.state,
             transitions = transitions + 1, updated_at = excluded.updated_at`,
          this.#def.name,
          to,
          at,
        );
      }
      this.#def.onTransition?.({ from, to, event: name, at });
      return to;
    });
  }

  /** Forgets the stored state: the machine is back in its initial state. */
  reset(): S {
    if (this.#def.store) this.#def.store.write(this.#def.initial, this.#now());
    else this.#sql.run(`DELETE FROM ${TABLE} WHERE name = ?`, this.#def.name);
    return this.#def.initial;
  }

  #target(from: S, event: E): S | undefined {
    const edges = this.#def.transitions[from];
    return edges && Object.hasOwn(edges, event) ? edges[event] : undefined;
  }
}

function eventName<E extends string>(event: MachineEvent<E>): E {
  if (typeof event === "string") return event;
  if (typeof event === "object" && event !== null && typeof event.type === "string") {
    return event.type;
  }
  return invalidArgument("Event", 'must be an event name or an object with a string "type"', event);
}
