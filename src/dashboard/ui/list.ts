/** The executions: newest first, filtered, counted by status, a page at a time. */
import { type Context, executionPath, guarded, link, type View } from "./context.ts";
import { badge, duration, h, replace, time } from "./dom.ts";
import { type IndexCounts, type ListPage, STATUSES } from "./types.ts";

/** Auto-refresh period (the page never polls faster than every 2 s). */
const REFRESH_MS = 5000;
const RANGES: Record<string, number | null> = {
  "15m": 15 * 60_000,
  "1h": 3_600_000,
  "24h": 86_400_000,
  "7d": 7 * 86_400_000,
  all: null,
};

interface Filters {
  workflow: string;
  status: string;
  range: string;
  from: string;
  to: string;
  prefix: string;
  cursor: string;
}

export function listView(ctx: Context, params: URLSearchParams): View {
  const filters: Filters = {
    workflow: params.get("workflow") ?? "",
    status: params.get("status") ?? "",
    range: ((r) => (r in RANGES || r === "custom" ? r : "all"))(params.get("range") ?? "all"),
    from: params.get("from") ?? "",
    to: params.get("to") ?? "",
    prefix: params.get("prefix") ?? "",
    cursor: params.get("cursor") ?? "",
  };
  /** Cursors of the pages before this one, for "Newer". */
  const previous: string[] = (params.get("back") ?? "").split(" ").filter(Boolean).slice(-20);

  const chips = h("div", { class: "chips", attrs: { role: "group", "aria-label": "status" } });
  const table = h("div", { class: "table-wrap" });
  const pager = h("div", { class: "pager" });
  const note = h("div");
  const workflow = h("select", {
    attrs: { name: "workflow" },
    on: { change: () => apply({ workflow: workflow.value }) },
  });
  const range = h(
    "select",
    { attrs: { name: "range" }, on: { change: () => apply({ range: range.value }) } },
    Object.keys(RANGES)
      .concat("custom")
      .map((r) =>
        h(
          "option",
          { attrs: { value: r, selected: r === filters.range } },
          r === "all" ? "any time" : r === "custom" ? "from … to …" : `last ${r}`,
        ),
      ),
  );
  const from = h("input", { attrs: { type: "datetime-local", name: "from", value: filters.from } });
  const to = h("input", { attrs: { type: "datetime-local", name: "to", value: filters.to } });
  const custom = h(
    "span",
    { class: filters.range === "custom" ? "custom" : "custom hidden" },
    from,
    to,
    h(
      "button",
      { attrs: { type: "button" }, on: { click: () => apply({ from: from.value, to: to.value }) } },
      "Apply",
    ),
  );
  const prefix = h("input", {
    attrs: {
      name: "prefix",
      placeholder: "id starts with",
      value: filters.prefix,
      autocomplete: "off",
    },
    on: { change: () => apply({ prefix: prefix.value.trim() }) },
  });
  const auto = h("input", { attrs: { type: "checkbox", name: "auto", checked: true } });
  const openId = h("input", {
    attrs: { name: "open", placeholder: "execution id", autocomplete: "off" },
  });
  const el = h(
    "section",
    { class: "list" },
    h(
      "div",
      { class: "list-head" },
      h("h1", null, "Executions"),
      h(
        "form",
        {
          class: "open-by-id",
          on: {
            submit: (event) => {
              event.preventDefault();
              if (openId.value.trim()) ctx.navigate(executionPath(openId.value.trim()));
            },
          },
        },
        openId,
        h("button", { attrs: { type: "submit" } }, "Open"),
      ),
    ),
    h(
      "div",
      { class: "filters" },
      h("label", null, "Workflow ", workflow),
      h("label", null, "Started ", range),
      custom,
      h("label", null, "Id ", prefix),
      h(
        "button",
        { attrs: { type: "button", "data-action": "refresh" }, on: { click: () => void load() } },
        "Refresh",
      ),
      h("label", { class: "auto" }, auto, " auto-refresh"),
    ),
    chips,
    note,
    table,
    pager,
  );

  let disposed = false;
  let timer: ReturnType<typeof setTimeout> | undefined;

  function apply(change: Partial<Filters>, keepCursor = false): void {
    const next = { ...filters, ...change, ...(keepCursor ? {} : { cursor: "" }) };
    const search = new URLSearchParams();
    for (const [k, v] of Object.entries(next))
      if (v && !(k === "range" && v === "all")) search.set(k, v);
    if (keepCursor && next.cursor)
      search.set("back", [...previous, filters.cursor || "-"].join(" "));
    ctx.navigate(`/executions${search.size ? `?${search}` : ""}`);
  }

  function query(): Record<string, string | number | undefined> {
    const span = RANGES[filters.range];
    const local = (value: string) => (value ? new Date(value).getTime() : undefined);
    return {
      workflow: filters.workflow || undefined,
      prefix: filters.prefix || undefined,
      after:
        filters.range === "custom" ? local(filters.from) : span ? Date.now() - span : undefined,
      before: filters.range === "custom" ? local(filters.to) : undefined,
    };
  }

  /** Loads are numbered: only the latest one renders and schedules the next. */
  let generation = 0;

  async function load(): Promise<void> {
    clearTimeout(timer);
    const mine = ++generation;
    if (!ctx.session.features.list) {
      replace(
        note,
        h(
          "p",
          { class: "muted" },
          "No ExecutionIndex is bound, so executions cannot be listed: bind one (see docs/listing.md), or open an execution by its id.",
        ),
      );
      return;
    }
    const base = query();
    const loaded = await guarded(ctx, note, () =>
      Promise.all([
        ctx.client.get<IndexCounts>("/counts", base),
        // The workflows to choose from: all of them (the same counts without a workflow filter).
        base.workflow
          ? ctx.client.get<IndexCounts>("/counts", { ...base, workflow: undefined })
          : null,
        ctx.client.get<ListPage>("/executions", {
          ...base,
          status: filters.status || undefined,
          cursor: filters.cursor || undefined,
          limit: 50,
        }),
      ]),
    );
    if (disposed || mine !== generation) return;
    if (loaded) {
      note.replaceChildren();
      const [counts, all, page] = loaded;
      renderWorkflows(Object.keys((all ?? counts).byWorkflow));
      renderChips(counts);
      renderTable(page);
    }
    // After a failure too (the note says what failed): it may pass next time.
    if (auto.checked) timer = setTimeout(() => void load(), REFRESH_MS);
  }

  function renderWorkflows(seen: string[]): void {
    const configured = ctx.session.namespaces.flatMap((n) =>
      n.workflows === "*" ? [] : n.workflows,
    );
    const names = [
      ...new Set([...configured, ...seen, ...(filters.workflow ? [filters.workflow] : [])]),
    ].sort();
    replace(
      workflow,
      h("option", { attrs: { value: "" } }, "all workflows"),
      names.map((n) => h("option", { attrs: { value: n, selected: n === filters.workflow } }, n)),
    );
  }

  function renderChips(counts: IndexCounts): void {
    const chip = (status: string, label: string, n: number) =>
      h(
        "button",
        {
          class: `chip${filters.status === status ? " active" : ""}`,
          attrs: {
            type: "button",
            "data-status": status || "all",
            "aria-pressed": filters.status === status,
          },
          on: { click: () => apply({ status }) },
        },
        label,
        h("span", { class: "count" }, String(n)),
      );
    replace(
      chips,
      chip("", "all", counts.total),
      STATUSES.map((s) => chip(s, s, counts.byStatus[s] ?? 0)),
    );
  }

  function renderTable(page: ListPage): void {
    const now = Date.now();
    const rows = page.executions.map((e) =>
      h(
        "tr",
        { attrs: { "data-id": e.id } },
        h("td", null, link(ctx, executionPath(e.id), e.id)),
        h("td", null, e.workflow),
        h("td", null, badge(e.status)),
        h("td", null, time(e.createdAt)),
        h(
          "td",
          { class: "num" },
          duration((e.endedAt ?? now) - e.createdAt),
          e.endedAt === null ? " …" : "",
        ),
        h("td", null, time(e.updatedAt)),
      ),
    );
    replace(
      table,
      rows.length
        ? h(
            "table",
            { class: "executions" },
            h(
              "thead",
              null,
              h(
                "tr",
                null,
                ["id", "workflow", "status", "started", "took", "updated"].map((t) =>
                  h("th", null, t),
                ),
              ),
            ),
            h("tbody", null, rows),
          )
        : h("p", { class: "muted empty" }, "No executions match."),
    );
    replace(
      pager,
      previous.length || filters.cursor
        ? h("button", { attrs: { type: "button" }, on: { click: () => back() } }, "← Newer")
        : null,
      page.cursor
        ? h(
            "button",
            {
              attrs: { type: "button", "data-action": "older" },
              on: { click: () => apply({ cursor: page.cursor ?? "" }, true) },
            },
            "Older →",
          )
        : null,
    );
  }

  function back(): void {
    const search = new URLSearchParams(location.search);
    const stack = [...previous];
    const cursor = stack.pop();
    search.delete("cursor");
    search.delete("back");
    if (cursor && cursor !== "-") search.set("cursor", cursor);
    if (stack.length) search.set("back", stack.join(" "));
    ctx.navigate(`/executions${search.size ? `?${search}` : ""}`);
  }

  auto.addEventListener("change", () => (auto.checked ? void load() : clearTimeout(timer)));
  void load();
  return {
    el,
    dispose() {
      disposed = true;
      clearTimeout(timer);
    },
  };
}
