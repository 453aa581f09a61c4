import { Actor, BatonError, type Migration, parseDuration } from "../../src/index.ts";

/** Timer kinds of the Reminders actor and their payloads. */
type Timers = { remind: { id: number } };

/** One reminder as the API returns it. */
export interface Reminder {
  id: number;
  text: string;
  dueAt: number;
  sentAt: number | null;
}

/**
 * A user's reminders: one actor per user. Each reminder is a durable timer; when it fires the
 * reminder is marked sent (a real app would send an email or a push message here).
 */
export class Reminders extends Actor<unknown, Timers> {
  constructor(ctx: DurableObjectState, env: unknown) {
    super(ctx, env);
    this.timers.on("remind", ({ id }) => {
      this.sql.run("UPDATE reminders SET sent_at = ? WHERE id = ?", this.now(), id);
    });
  }

  protected override migrations(): Migration[] {
    return [
      {
        version: 1,
        name: "reminders",
        up: (sql) =>
          sql.run(`CREATE TABLE reminders (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            text TEXT NOT NULL,
            due_at INTEGER NOT NULL,
            sent_at INTEGER
          ) STRICT`),
      },
    ];
  }

  /** Adds a reminder due after `after` ("10s", "5 minutes", ...); returns it. */
  async add(text: string, after: string): Promise<Reminder> {
    if (typeof text !== "string" || text.length === 0 || text.length > 500) {
      throw new BatonError("INVALID_ARGUMENT", "text must be a string of 1 to 500 characters.");
    }
    const dueAt = this.now() + parseDuration(after); // INVALID_DURATION before anything is stored
    const row = this.sql.one<{ id: number }>(
      "INSERT INTO reminders (text, due_at) VALUES (?, ?) RETURNING id",
      text,
      dueAt,
    );
    const id = row?.id ?? 0;
    // No await between the INSERT and the timer's row: both commit together.
    await this.timers.schedule("remind", { id }, { at: dueAt }, { key: `remind:${id}` });
    return { id, text, dueAt, sentAt: null };
  }

  /** All reminders, soonest first. */
  list(): Reminder[] {
    return this.sql
      .all<{ id: number; text: string; due_at: number; sent_at: number | null }>(
        "SELECT * FROM reminders ORDER BY due_at, id",
      )
      .map((r) => ({ id: r.id, text: r.text, dueAt: r.due_at, sentAt: r.sent_at }));
  }
}
