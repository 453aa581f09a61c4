/** The views of a lock (by name) and of a checkpoint scope (by scope), typed in. */
import { type Context, guarded, type View } from "./context.ts";
import { duration, h, json, replace, table, time } from "./dom.ts";
import type { CheckpointVersionView, LockView } from "./types.ts";

/** A small form: one text field and a button; calls `go` with the value. */
function lookup(name: string, placeholder: string, value: string, go: (value: string) => void) {
  const input = h("input", {
    attrs: { name, placeholder, value, required: true, autocomplete: "off" },
  });
  return h(
    "form",
    {
      class: "lookup",
      on: {
        submit: (event) => {
          event.preventDefault();
          go(input.value.trim());
        },
      },
    },
    input,
    h("button", { attrs: { type: "submit" } }, "Show"),
  );
}

export function locksView(ctx: Context, params: URLSearchParams): View {
  const name = params.get("name") ?? "";
  const out = h("div", { class: "lock" });
  const el = h(
    "section",
    null,
    h("h1", null, "Locks"),
    lookup("name", "lock name", name, (v) => ctx.navigate(`/locks?name=${encodeURIComponent(v)}`)),
    out,
  );
  if (!ctx.session.features.locks) {
    replace(out, h("p", { class: "muted" }, "No Lock actor is bound to this dashboard."));
  } else if (name) {
    void guarded(ctx, out, async () => {
      const lock = await ctx.client.get<LockView>(`/locks/${encodeURIComponent(name)}`);
      const now = Date.now();
      replace(
        out,
        h(
          "div",
          { class: "summary" },
          h(
            "div",
            { class: "field" },
            h("span", { class: "field-name" }, "State"),
            lock.locked ? "held (no permit free)" : "free",
          ),
          h(
            "div",
            { class: "field" },
            h("span", { class: "field-name" }, "Permits"),
            String(lock.permits),
          ),
          h(
            "div",
            { class: "field" },
            h("span", { class: "field-name" }, "Last fence"),
            String(lock.fence),
          ),
          h(
            "div",
            { class: "field" },
            h("span", { class: "field-name" }, "Waiting"),
            String(lock.queue),
          ),
        ),
        lock.holders.length
          ? table(
              ["owner", "fence", "acquired", "expires", "expires in"],
              lock.holders.map((holder) =>
                h(
                  "tr",
                  null,
                  h("td", null, holder.owner),
                  h("td", { class: "num" }, String(holder.fence)),
                  h("td", null, time(holder.acquiredAt)),
                  h("td", null, time(holder.expiresAt)),
                  h("td", { class: "num" }, duration(holder.expiresAt - now)),
                ),
              ),
            )
          : h("p", { class: "muted" }, "No holders."),
      );
    });
  }
  return { el, dispose() {} };
}

export function checkpointsView(ctx: Context, params: URLSearchParams): View {
  const scope = params.get("scope") ?? "";
  const name = params.get("name") ?? "";
  const out = h("div");
  const history = h("div");
  const value = h("div");
  const el = h(
    "section",
    null,
    h("h1", null, "Checkpoints"),
    lookup("scope", "scope (e.g. an execution id)", scope, (v) =>
      ctx.navigate(`/checkpoints?scope=${encodeURIComponent(v)}`),
    ),
    out,
    history,
    value,
  );
  const base = `/checkpoints/${encodeURIComponent(scope)}`;
  const show = (version: CheckpointVersionView) =>
    void guarded(ctx, value, async () => {
      const loaded = await ctx.client.get<{ value: unknown; version: number; savedAt: number }>(
        `${base}/${encodeURIComponent(version.name)}/${version.version}`,
      );
      replace(value, h("h2", null, `${version.name} v${loaded.version}`), json(loaded.value));
    });
  if (!ctx.session.features.checkpoints) {
    replace(out, h("p", { class: "muted" }, "No Checkpoint actor is bound to this dashboard."));
  } else if (scope) {
    void guarded(ctx, out, async () => {
      const names = await ctx.client.get<CheckpointVersionView[]>(base);
      replace(
        out,
        names.length
          ? table(
              ["name", "latest version", "saved", "expires", "bytes"],
              names.map((c) =>
                h(
                  "tr",
                  null,
                  h(
                    "td",
                    null,
                    h(
                      "a",
                      {
                        attrs: {
                          href: `${ctx.base}/checkpoints?scope=${encodeURIComponent(scope)}&name=${encodeURIComponent(c.name)}`,
                        },
                        on: {
                          click: (event) => {
                            event.preventDefault();
                            ctx.navigate(
                              `/checkpoints?scope=${encodeURIComponent(scope)}&name=${encodeURIComponent(c.name)}`,
                            );
                          },
                        },
                      },
                      c.name,
                    ),
                  ),
                  h("td", { class: "num" }, String(c.version)),
                  h("td", null, time(c.savedAt)),
                  h("td", null, time(c.expiresAt)),
                  h("td", { class: "num" }, String(c.bytes)),
                ),
              ),
            )
          : h("p", { class: "muted" }, "No checkpoints in this scope."),
      );
    });
    if (name) {
      // A page of versions at a time (oldest first): "Later versions" reads the next.
      const rows = h("tbody");
      const more = h("div", { class: "pager" });
      replace(
        history,
        h("h2", null, `History of ${name}`),
        table(["version", "saved", "expires", "bytes", ""], rows),
        more,
      );
      const page = (from: number) =>
        void guarded(ctx, more, async () => {
          const versions = await ctx.client.get<CheckpointVersionView[]>(
            `${base}/${encodeURIComponent(name)}`,
            { from: from || undefined },
          );
          for (const v of versions) {
            rows.append(
              h(
                "tr",
                null,
                h("td", { class: "num" }, String(v.version)),
                h("td", null, time(v.savedAt)),
                h("td", null, time(v.expiresAt)),
                h("td", { class: "num" }, String(v.bytes)),
                h(
                  "td",
                  null,
                  h(
                    "button",
                    { attrs: { type: "button" }, on: { click: () => show(v) } },
                    "Show value",
                  ),
                ),
              ),
            );
          }
          const last = versions.at(-1);
          replace(
            more,
            versions.length === 100 && last
              ? h(
                  "button",
                  { attrs: { type: "button" }, on: { click: () => page(last.version + 1) } },
                  "Later versions",
                )
              : null,
          );
        });
      page(0);
    }
  }
  return { el, dispose() {} };
}
