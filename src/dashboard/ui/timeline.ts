/**
 * An execution's steps on a time axis: one row per journal entry, its attempts (each failed one
 * with its error), the backoffs between them, sleeps, waits (with the event that resumed them),
 * children (linked to their pages) and compensations.
 */
import { duration, h, time } from "./dom.ts";
import type { ExecutionInfo, JournalEntry } from "./types.ts";

/** Rows drawn at most; the journal table below lists every entry. */
const MAX_ROWS = 500;
const COMPENSATE = "$compensate:";

interface Segment {
  from: number;
  to: number;
  kind: string;
  title: string;
}

/** The timeline of `entries`; `link(id)` makes a link to another execution's page. */
export function timeline(
  entries: JournalEntry[],
  info: ExecutionInfo,
  start: number,
  now: number,
  link: (id: string, text: string) => HTMLElement,
): HTMLElement {
  // Up to the end, or now while it runs: a sleep or a wait's timeout days ahead is not drawn to
  // scale (its bar runs to the edge; its tooltip says until when).
  let end = info.endedAt ?? now;
  for (const e of entries) end = Math.max(end, e.endedAt ?? 0, e.startedAt);
  if (end <= start) end = start + 1;
  const span = end - start;
  const at = (t: number) => `${Math.min(100, Math.max(0, ((t - start) / span) * 100)).toFixed(3)}%`;
  const width = (from: number, to: number) =>
    `max(2px, ${Math.max(0, ((Math.min(to, end) - Math.max(from, start)) / span) * 100).toFixed(3)}%)`;

  const rows = entries.slice(0, MAX_ROWS).map((entry) => {
    const segments = segmentsOf(entry, info.endedAt === null ? now : (info.endedAt ?? now));
    const compensation = entry.name.startsWith(COMPENSATE);
    const name = compensation ? entry.name.slice(COMPENSATE.length) : entry.name;
    const label = h(
      "div",
      { class: "tl-label" },
      h("span", { class: "tl-name", attrs: { title: entry.name } }, name),
      h("span", { class: "tl-kind" }, compensation ? "compensation" : entry.kind),
      entry.kind === "child" && entry.childId ? link(entry.childId, "child ↗") : null,
      entry.kind === "wait" && entry.eventType
        ? h("span", { class: "tl-event" }, entry.eventType)
        : null,
    );
    const track = h(
      "div",
      { class: "tl-track" },
      segments.map((s) =>
        h("div", {
          class: `tl-seg tl-${s.kind}${compensation ? " tl-compensation" : ""}`,
          attrs: { title: s.title, "data-kind": s.kind },
          style: { left: at(s.from), width: width(s.from, s.to) },
        }),
      ),
    );
    const took = (entry.endedAt ?? now) - entry.startedAt;
    return h(
      "div",
      { class: "tl-row", attrs: { "data-step": entry.name, "data-status": entry.status } },
      label,
      track,
      h(
        "div",
        { class: "tl-took" },
        entry.endedAt === null ? `${duration(took)} …` : duration(took),
      ),
    );
  });

  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) =>
    h("span", { class: "tl-tick", style: { left: `${f * 100}%` } }, `+${duration(f * span)}`),
  );
  const legend = [
    ["ok", "attempt"],
    ["failed", "failed attempt"],
    ["backoff", "retry backoff"],
    ["running", "running"],
    ["sleep", "sleep"],
    ["wait", "wait for an event"],
    ["child", "child execution"],
    ["compensation", "compensation"],
  ].map(([kind, text]) =>
    h("span", { class: "tl-key" }, h("span", { class: `tl-swatch tl-${kind}` }), text ?? ""),
  );
  return h(
    "div",
    { class: "timeline" },
    h("div", { class: "tl-legend" }, legend),
    h(
      "div",
      { class: "tl-axis" },
      h("div", { class: "tl-label" }, time(start)),
      h("div", { class: "tl-track" }, ticks),
      h("div", { class: "tl-took" }, duration(span)),
    ),
    rows.length ? rows : h("p", { class: "muted" }, "No steps yet."),
    entries.length > MAX_ROWS
      ? h(
          "p",
          { class: "muted" },
          `The first ${MAX_ROWS} of ${entries.length} steps; the journal lists them all.`,
        )
      : null,
  );
}

function segmentsOf(entry: JournalEntry, now: number): Segment[] {
  const segments: Segment[] = [];
  const open = entry.endedAt ?? now;
  switch (entry.kind) {
    case "do": {
      const failed = entry.failedAttempts ?? [];
      failed.forEach((a, i) => {
        const from = a.startedAt ?? entry.startedAt;
        const code = a.error.code ? `${a.error.code}: ` : "";
        segments.push({
          from,
          to: a.endedAt,
          kind: "failed",
          title: `attempt ${a.attempt} failed after ${duration(a.endedAt - from)}: ${code}${a.error.message}`,
        });
        const next =
          failed[i + 1]?.startedAt ?? (i === failed.length - 1 ? nextStart(entry) : null);
        const until = next ?? (entry.status === "backoff" ? entry.wakeAt : null);
        if (until !== null && until > a.endedAt) {
          segments.push({
            from: a.endedAt,
            to: until,
            kind: "backoff",
            title: `backoff ${duration(until - a.endedAt)}${next === null ? ` (next attempt at ${time(until)})` : ""}`,
          });
        }
      });
      const started = entry.attemptStartedAt ?? entry.startedAt;
      if (entry.status === "completed") {
        segments.push({
          from: started,
          to: open,
          kind: "ok",
          title: `attempt ${entry.attempts} completed in ${duration(open - started)}`,
        });
      } else if (entry.status === "running") {
        segments.push({
          from: started,
          to: now,
          kind: "running",
          title: `attempt ${entry.attempts} running`,
        });
      } else if (entry.status === "cancelled") {
        segments.push({ from: started, to: open, kind: "cancelled", title: "cancelled" });
      } else if (entry.status === "failed" && failed.length === 0) {
        segments.push({
          from: entry.startedAt,
          to: open,
          kind: "failed",
          title: `failed: ${entry.error?.message ?? ""}`,
        });
      }
      return segments;
    }
    case "sleep":
      return [
        {
          from: entry.startedAt,
          to: entry.endedAt ?? entry.wakeAt ?? now,
          kind: "sleep",
          title: `sleep until ${time(entry.endedAt ?? entry.wakeAt)}`,
        },
      ];
    case "wait": {
      const event = entry.output as { type?: string; receivedAt?: number } | undefined;
      const title =
        entry.status === "completed"
          ? `resumed by event "${event?.type ?? entry.eventType}" received ${time(event?.receivedAt)}`
          : entry.status === "timed_out"
            ? `timed out waiting for "${entry.eventType}"`
            : `waiting for "${entry.eventType}" until ${time(entry.wakeAt)}`;
      return [
        {
          from: entry.startedAt,
          to: open,
          kind: entry.status === "timed_out" ? "failed" : "wait",
          title,
        },
      ];
    }
    case "child":
      return [
        {
          from: entry.startedAt,
          to: open,
          kind:
            entry.status === "completed"
              ? "child"
              : entry.status === "waiting" || entry.status === "running"
                ? "running"
                : entry.status === "cancelled"
                  ? "cancelled"
                  : "failed",
          title: `child ${entry.childId ?? ""}: ${entry.status}`,
        },
      ];
    default:
      return [{ from: entry.startedAt, to: entry.startedAt, kind: "ok", title: entry.kind }];
  }
}

/** When the attempt after the last failed one started (if one did). */
function nextStart(entry: JournalEntry): number | null {
  const last = entry.failedAttempts?.at(-1);
  if (!last || entry.status === "backoff" || entry.status === "failed") return null;
  const started = entry.attemptStartedAt;
  return started !== null && started !== undefined && started >= last.endedAt ? started : null;
}
