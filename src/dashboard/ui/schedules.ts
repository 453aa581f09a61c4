/** The schedules view: every schedule with its next fire and last run, actions, and one's runs. */
import { type Context, executionPath, guarded, link, type View } from "./context.ts";
import { badge, h, json, replace, table, time } from "./dom.ts";
import type { ScheduleInfo, ScheduleList, ScheduleSummary } from "./types.ts";

/** How a schedule fires, in words. */
function when(s: { cron: string | null; every: number | null; timezone: string }): string {
  if (s.cron !== null) return `cron ${s.cron} (${s.timezone})`;
  const ms = s.every ?? 0;
  const units: Array<[number, string]> = [
    [86_400_000, "day"],
    [3_600_000, "hour"],
    [60_000, "minute"],
    [1000, "second"],
  ];
  const [size, unit] = units.find(([u]) => ms % u === 0) ?? [1, "ms"];
  const n = ms / size;
  return `every ${n} ${unit}${n === 1 ? "" : "s"}`;
}

export function schedulesView(ctx: Context, params: URLSearchParams): View {
  const id = params.get("id");
  const out = h("div");
  const status = h("p", { class: "action-result", attrs: { role: "status" } });
  const el = h("section", null, h("h1", null, id ? `Schedule ${id}` : "Schedules"), status, out);
  let live = true;

  /** Runs an action on a schedule, then shows the view again. */
  const act = (target: string, verb: "pause" | "resume" | "trigger") =>
    void guarded(ctx, status, async () => {
      await ctx.client.post(`/schedules/${encodeURIComponent(target)}/${verb}`);
      status.textContent = `${verb}: done`;
      if (live) await load();
    });

  const actions = (target: string, state: ScheduleSummary["state"]) =>
    ctx.session.readOnly
      ? null
      : h(
          "span",
          { class: "actions" },
          state === "paused"
            ? h(
                "button",
                { attrs: { type: "button" }, on: { click: () => act(target, "resume") } },
                "Resume",
              )
            : h(
                "button",
                { attrs: { type: "button" }, on: { click: () => act(target, "pause") } },
                "Pause",
              ),
          h(
            "button",
            { attrs: { type: "button" }, on: { click: () => act(target, "trigger") } },
            "Trigger",
          ),
        );

  async function load(): Promise<void> {
    if (id) {
      const s = await ctx.client.get<ScheduleInfo>(`/schedules/${encodeURIComponent(id)}`);
      if (!live) return;
      replace(
        out,
        h(
          "div",
          { class: "summary" },
          field("Workflow", s.workflow),
          field("When", when(s)),
          field("State", badge(s.state)),
          field("Next fire", time(s.nextFireAt)),
          field("Overlap", s.overlap),
          field("Catch-up", s.catchup),
          field("Dropped fires", String(s.skipped)),
        ),
        actions(s.id, s.state),
        h("h2", null, "Input"),
        json(s.input),
        h("h2", null, "Recent runs"),
        s.runs.length
          ? table(
              ["fire time", "reason", "status", "execution"],
              s.runs.map((r) =>
                h(
                  "tr",
                  null,
                  h("td", null, time(r.fireAt)),
                  h("td", null, r.reason),
                  h("td", null, badge(r.status), r.error ? ` ${r.error.code}` : ""),
                  h(
                    "td",
                    null,
                    ["skipped", "buffered", "start_failed"].includes(r.status)
                      ? r.executionId
                      : link(ctx, executionPath(r.executionId), r.executionId),
                  ),
                ),
              ),
            )
          : h("p", { class: "muted" }, "No runs yet."),
      );
      return;
    }
    const all: ScheduleSummary[] = [];
    let cursor: string | null = null;
    do {
      const page: ScheduleList = await ctx.client.get<ScheduleList>("/schedules", {
        cursor: cursor ?? undefined,
      });
      all.push(...page.schedules);
      cursor = page.cursor;
    } while (cursor && all.length < 1000);
    if (!live) return;
    replace(
      out,
      all.length
        ? table(
            ["schedule", "workflow", "when", "state", "next fire", "last run", ""],
            all.map((s) =>
              h(
                "tr",
                null,
                h("td", null, link(ctx, `/schedules?id=${encodeURIComponent(s.id)}`, s.id)),
                h("td", null, s.workflow),
                h("td", null, when(s)),
                h("td", null, badge(s.state)),
                h("td", null, time(s.nextFireAt)),
                h(
                  "td",
                  null,
                  s.lastRun
                    ? [
                        link(ctx, executionPath(s.lastRun.executionId), time(s.lastRun.fireAt)),
                        " ",
                        badge(s.lastRun.status),
                      ]
                    : "—",
                ),
                h("td", null, actions(s.id, s.state)),
              ),
            ),
          )
        : h("p", { class: "muted" }, "No schedules."),
    );
  }

  if (!ctx.session.features.schedules) {
    replace(out, h("p", { class: "muted" }, "No Schedule actor is bound to this dashboard."));
  } else void guarded(ctx, out, load);
  return {
    el,
    dispose() {
      live = false;
    },
  };
}

function field(name: string, value: string | Node): HTMLElement {
  return h("div", { class: "field" }, h("span", { class: "field-name" }, name), value);
}
