/** An execution's page: its state, input and outcome, timeline, journal, actions, live. */
import { ApiError } from "./client.ts";
import { type Context, errorText, executionPath, link, type View } from "./context.ts";
import { badge, duration, h, json, replace, time } from "./dom.ts";
import { timeline } from "./timeline.ts";
import {
  type Described,
  type ExecutionInfo,
  type Journal,
  type JournalEntry,
  TERMINAL,
} from "./types.ts";

/** While an execution runs, the page also re-reads it this often (live events come between). */
const POLL_MS = 5000;
/** Live events trigger a re-read at most this often (the page never polls faster than 2 s). */
const REFRESH_GAP_MS = 2000;
/** Journal entries in these states may still change; the others are final. */
const SETTLED = new Set(["completed", "failed", "timed_out", "cancelled"]);

export function executionView(ctx: Context, id: string): View {
  let disposed = false;
  let info: ExecutionInfo | undefined;
  let stopLive: (() => void) | undefined;
  let poll: ReturnType<typeof setTimeout> | undefined;
  let queued: ReturnType<typeof setTimeout> | undefined;
  let lastRead = 0;
  let buttons: Record<string, HTMLButtonElement> = {};
  /** The journal read so far (re-read from its first unsettled entry), and for which run. */
  let entries: JournalEntry[] = [];
  let truncated = false;
  let run = 0;
  /** Outputs the reader opened in the journal table (kept open across re-renders). */
  const opened = new Set<number>();
  const header = h(
    "div",
    { class: "exec-header" },
    h("h1", null, "Execution ", h("code", null, id)),
  );
  const liveDot = h("span", { class: "live off", attrs: { title: "live progress" } }, "live");
  const status = h("div", { class: "exec-status" });
  const result = h("div", {
    class: "action-result",
    attrs: { role: "status", "aria-live": "polite" },
  });
  const summary = h("div", { class: "summary" });
  const io = h("div", { class: "io" });
  const steps = h("div", { class: "steps" });
  const journalBox = h("div", { class: "journal" });
  const error = h("div");
  const el = h(
    "section",
    { class: "execution" },
    header,
    h("div", { class: "exec-meta" }, status, liveDot),
    error,
    ctx.session.readOnly ? null : actions(),
    result,
    summary,
    io,
    h("h2", null, "Timeline"),
    steps,
    h("h2", null, "Journal"),
    journalBox,
  );

  /** Re-reads the execution and the part of its journal that may have changed. */
  async function refresh(reason: "load" | "live" | "poll" | "action"): Promise<void> {
    lastRead = Date.now();
    clearTimeout(poll);
    const path = executionPath(id);
    const unsettled = entries.find((e) => !SETTLED.has(e.status));
    const from = unsettled?.seq ?? (entries.length ? (entries.at(-1)?.seq ?? 0) + 1 : 0);
    let loaded: [Described, Journal] | undefined;
    try {
      loaded = await Promise.all([
        ctx.client.get<Described>(path),
        ctx.client.get<Journal>(`${path}/journal`, { from }),
      ]);
    } catch (e) {
      if (disposed) return;
      if (e instanceof ApiError && e.status === 401) return ctx.unauthorized();
      replace(error, h("p", { class: "error", attrs: { role: "alert" } }, errorText(e)));
    }
    if (disposed) return;
    if (!loaded) {
      // Not there yet (the index has not caught up), or the Worker did not answer: try again.
      poll = setTimeout(() => void refresh("poll"), POLL_MS);
      return;
    }
    error.replaceChildren();
    const [described, journal] = loaded;
    info = described.details.info;
    if (info.run !== run && run !== 0 && from > 0) {
      // Restarted: its journal began again. Read it whole.
      run = info.run;
      entries = [];
      return refresh(reason);
    }
    run = info.run;
    entries = entries.filter((e) => e.seq < from).concat(journal.entries);
    truncated = journal.truncated;
    render(described);
    el.dataset.updatedBy = reason;
    if (TERMINAL.has(info.status)) {
      stopLive?.();
      stopLive = undefined;
      liveDot.classList.add("off");
      return;
    }
    if (!stopLive) {
      const stop = ctx.client.live(
        id,
        (event) => {
          if (event.type !== "initial_state") schedule();
        },
        (open) => {
          liveDot.classList.toggle("off", !open);
          // Closed by the server (a deploy, a reset): the next re-read opens it again.
          if (!open && stopLive === stop) stopLive = undefined;
        },
      );
      stopLive = stop;
    }
    poll = setTimeout(() => void refresh("poll"), POLL_MS);
  }

  /** A re-read soon after a live event, at most one per REFRESH_GAP_MS. */
  function schedule(): void {
    if (queued || disposed) return;
    const wait = Math.max(0, lastRead + REFRESH_GAP_MS - Date.now());
    queued = setTimeout(() => {
      queued = undefined;
      void refresh("live");
    }, wait);
  }

  function render(described: Described): void {
    const { details } = described;
    const i = details.info;
    replace(
      status,
      badge(i.status),
      h("span", null, "workflow ", h("strong", null, i.workflow), ` v${i.version}`),
      h("span", null, `run ${i.run}`),
      h("span", { class: "muted" }, `on ${described.binding}`),
    );
    for (const [verb, button] of Object.entries(buttons))
      button.disabled = !allowed(verb, i.status);
    const now = Date.now();
    // A restart begins the journal again: this run began with its first step.
    const runStart = i.run > 1 && entries[0] ? entries[0].startedAt : i.createdAt;
    replace(
      summary,
      field("Started", time(i.createdAt)),
      field("Updated", time(i.updatedAt)),
      field("Ended", time(i.endedAt)),
      field(
        i.run > 1 ? `Duration (run ${i.run})` : "Duration",
        duration((i.endedAt ?? now) - runStart),
      ),
      field("Steps", `${i.completedSteps} of ${i.stepCount} completed`),
      field("Attempts", String(i.attempts)),
      field("Current step", i.currentStep ?? "—"),
      details.parent
        ? field("Parent", link(ctx, executionPath(details.parent.id), details.parent.id))
        : null,
    );
    const outcome = details.result;
    replace(
      io,
      h("div", null, h("h2", null, "Input"), json(details.input)),
      outcome === null
        ? h(
            "div",
            null,
            h("h2", null, "Output"),
            h(
              "p",
              { class: "muted" },
              described.hidden
                ? "Not shown: the dashboard's policy does not allow execution.result."
                : "Not finished yet.",
            ),
          )
        : outcome.ok
          ? h("div", null, h("h2", null, "Output"), json(outcome.value))
          : h(
              "div",
              { class: "exec-error" },
              h("h2", null, "Error"),
              h(
                "dl",
                null,
                h("dt", null, "code"),
                h("dd", null, h("code", null, outcome.error.code)),
                h("dt", null, "step"),
                h("dd", null, outcome.error.step ?? "—"),
                h("dt", null, "attempt"),
                h("dd", null, String(outcome.error.attempt ?? "—")),
              ),
              h("pre", { class: "json" }, outcome.error.message),
            ),
    );
    replace(
      steps,
      timeline(entries, i, runStart, now, (child, text) => link(ctx, executionPath(child), text)),
    );
    replace(journalBox, journalTable(ctx, { entries, truncated }, opened));
  }

  function actions(): HTMLElement {
    const verbs = ["pause", "resume", "cancel", "restart"] as const;
    buttons = Object.fromEntries(
      verbs.map((verb) => [
        verb,
        h(
          "button",
          {
            class: verb === "cancel" ? "danger" : "",
            attrs: { type: "button", "data-action": verb, disabled: true },
            on: { click: () => void act(verb) },
          },
          verb[0]?.toUpperCase() + verb.slice(1),
        ),
      ]),
    );
    const type = h("input", {
      attrs: { name: "type", placeholder: "event type", required: true, autocomplete: "off" },
    });
    const payload = h("textarea", { attrs: { name: "payload", rows: 2, spellcheck: "false" } });
    payload.value = "{}";
    const form = h(
      "form",
      {
        class: "send-event",
        on: {
          submit: (event) => {
            event.preventDefault();
            void send(type.value.trim(), payload.value);
          },
        },
      },
      h("label", null, "Send an event ", type),
      h("label", null, "payload (JSON) ", payload),
      h("button", { attrs: { type: "submit" } }, "Send event"),
    );
    return h(
      "div",
      { class: "actions" },
      h("div", { class: "buttons" }, Object.values(buttons)),
      form,
    );
  }

  async function act(verb: string): Promise<void> {
    if (verb === "cancel" && !confirm(`Cancel execution ${id}?`)) return;
    const button = buttons[verb];
    if (button) button.disabled = true;
    try {
      const after = await ctx.client.post<ExecutionInfo>(`${executionPath(id)}/${verb}`);
      show(`${verb}: the execution is now ${after.status}.`);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return ctx.unauthorized();
      show(errorText(e), true);
    }
    await refresh("action");
  }

  async function send(type: string, text: string): Promise<void> {
    let payload: unknown;
    try {
      payload = text.trim() ? JSON.parse(text) : null;
    } catch (e) {
      return show(`INVALID_JSON: the payload is not JSON (${(e as Error).message}).`, true);
    }
    try {
      const receipt = await ctx.client.post<{
        delivered: boolean;
        step: string | null;
        duplicate: boolean;
      }>(`${executionPath(id)}/events`, { type, payload });
      show(
        receipt.duplicate
          ? `Event "${type}": a duplicate, nothing changed.`
          : receipt.delivered
            ? `Event "${type}" delivered to step "${receipt.step}".`
            : `Event "${type}" buffered until a step waits for it.`,
      );
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return ctx.unauthorized();
      show(errorText(e), true);
    }
    await refresh("action");
  }

  function show(text: string, failed = false): void {
    replace(result, h("p", { class: failed ? "error" : "ok" }, text));
  }

  void refresh("load");
  return {
    el,
    dispose() {
      disposed = true;
      stopLive?.();
      clearTimeout(poll);
      clearTimeout(queued);
    },
  };
}

function allowed(verb: string, status: string): boolean {
  switch (verb) {
    case "pause":
      // Running, sleeping or waiting: anything not paused and not over.
      return status !== "paused" && !TERMINAL.has(status);
    case "resume":
      return status === "paused";
    case "cancel":
      return !TERMINAL.has(status);
    case "restart":
      return TERMINAL.has(status);
    default:
      return false;
  }
}

function field(name: string, value: Node | string): HTMLElement {
  return h(
    "div",
    { class: "field" },
    h("span", { class: "field-name" }, name),
    h("span", null, value),
  );
}

function journalTable(ctx: Context, journal: Journal, opened: Set<number>): HTMLElement {
  const rows = journal.entries.map((e: JournalEntry) =>
    h(
      "tr",
      { attrs: { "data-step": e.name } },
      h("td", { class: "num" }, String(e.seq)),
      h("td", null, e.name),
      h("td", null, e.kind),
      h("td", null, badge(e.status)),
      h("td", { class: "num" }, String(e.attempts)),
      h("td", null, time(e.startedAt)),
      h("td", { class: "num" }, e.endedAt === null ? "…" : duration(e.endedAt - e.startedAt)),
      h("td", null, detail(ctx, e)),
      h(
        "td",
        null,
        "output" in e
          ? h(
              "details",
              {
                attrs: { open: opened.has(e.seq) },
                on: {
                  toggle: (event) => {
                    const open = (event.currentTarget as HTMLDetailsElement).open;
                    if (open) opened.add(e.seq);
                    else opened.delete(e.seq);
                  },
                },
              },
              h("summary", null, "output"),
              json(e.output),
            )
          : e.outputOmitted
            ? "omitted"
            : "",
      ),
    ),
  );
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "journal-table" },
      h(
        "thead",
        null,
        h(
          "tr",
          null,
          ["#", "step", "kind", "status", "attempts", "started", "took", "detail", "output"].map(
            (t) => h("th", null, t),
          ),
        ),
      ),
      h("tbody", null, rows),
    ),
    journal.truncated
      ? h("p", { class: "muted" }, `The first ${journal.entries.length} entries.`)
      : null,
  );
}

function detail(ctx: Context, e: JournalEntry): Node | string {
  if (e.kind === "child" && e.childId) return link(ctx, executionPath(e.childId), e.childId);
  if (e.kind === "wait")
    return `event "${e.eventType ?? ""}"${e.wakeAt ? ` until ${time(e.wakeAt)}` : ""}`;
  if (e.kind === "sleep") return `until ${time(e.wakeAt ?? e.endedAt)}`;
  if (e.status === "backoff") return `retry at ${time(e.wakeAt)}: ${e.error?.message ?? ""}`;
  const failed = e.failedAttempts?.length ?? 0;
  if (e.status === "completed") {
    return failed ? `completed after ${failed} failed attempt${failed > 1 ? "s" : ""}` : "";
  }
  if (e.error) return `${e.error.code ? `${e.error.code}: ` : ""}${e.error.message}`;
  return "";
}
