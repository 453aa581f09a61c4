/**
 * The dashboard's page: a small router over the views, the header, and the sign-in view the
 * API's 401 leads to. Served by the Worker (`dashboard()`), bundled by scripts/build-dashboard.mjs.
 */
import { ApiError, Client } from "./client.ts";
import { type Context, errorText, link, type View } from "./context.ts";
import { h, replace } from "./dom.ts";
import { executionView } from "./execution.ts";
import { listView } from "./list.ts";
import { schedulesView } from "./schedules.ts";
import { checkpointsView, locksView } from "./stores.ts";
import type { Session } from "./types.ts";

const base = document.body.dataset.base ?? "/dashboard";
const client = new Client(base);
const nav = h("nav");
const main = h("main");
const user = h("div", { class: "user" });
document.body.append(
  h("header", null, h("a", { class: "brand", attrs: { href: base } }, "Baton"), nav, user),
  main,
);

let current: View | undefined;
let session: Session | undefined;
/** Renders are numbered: one that an earlier navigation overtook shows nothing. */
let rendering = 0;

const ctx: Context = {
  client,
  base,
  get session() {
    return session as Session;
  },
  navigate(path: string) {
    history.pushState(null, "", `${base}${path}`);
    void render();
  },
  unauthorized() {
    signIn();
  },
};

window.addEventListener("popstate", () => void render());

async function render(): Promise<void> {
  const mine = ++rendering;
  current?.dispose();
  current = undefined;
  if (!session) {
    let loaded: Session;
    try {
      loaded = await client.get<Session>("/session");
    } catch (error) {
      if (mine !== rendering) return;
      if (error instanceof ApiError && error.status === 401) return signIn();
      replace(main, h("p", { class: "error", attrs: { role: "alert" } }, errorText(error)));
      return;
    }
    if (mine !== rendering) return;
    session = loaded;
    document.title = session.title;
    replace(
      nav,
      link(ctx, "/executions", "Executions"),
      link(ctx, "/schedules", "Schedules"),
      link(ctx, "/locks", "Locks"),
      link(ctx, "/checkpoints", "Checkpoints"),
    );
    replace(
      user,
      session.readOnly ? h("span", { class: "muted" }, "read-only") : null,
      client.token
        ? h("button", { attrs: { type: "button" }, on: { click: signOut } }, "Sign out")
        : null,
    );
  }
  const path = location.pathname.slice(base.length) || "/";
  const params = new URLSearchParams(location.search);
  const execution = /^\/executions\/([^/]+)$/.exec(path);
  for (const a of nav.querySelectorAll("a")) {
    const href = a.getAttribute("href") ?? "";
    a.classList.toggle(
      "active",
      location.pathname.startsWith(href) || (path === "/" && href.endsWith("/executions")),
    );
  }
  let id: string | undefined;
  try {
    id = execution?.[1] ? decodeURIComponent(execution[1]) : undefined;
  } catch {
    replace(
      main,
      h(
        "p",
        { class: "error", attrs: { role: "alert" } },
        "This address is not one of the dashboard's.",
      ),
    );
    return;
  }
  if (id !== undefined) current = executionView(ctx, id);
  else if (path === "/schedules") current = schedulesView(ctx, params);
  else if (path === "/locks") current = locksView(ctx, params);
  else if (path === "/checkpoints") current = checkpointsView(ctx, params);
  else current = listView(ctx, params);
  replace(main, current.el);
}

function signOut(): void {
  client.token = null;
  signIn();
}

/** The sign-in view: the token is kept for this tab only (sessionStorage), sent as a header. */
function signIn(): void {
  current?.dispose();
  current = undefined;
  session = undefined;
  replace(nav);
  replace(user);
  const token = h("input", {
    attrs: { type: "password", name: "token", autocomplete: "current-password", required: true },
  });
  const message = h("p", { class: "error", attrs: { role: "alert" } });
  const refused = client.token !== null;
  if (refused) message.textContent = "UNAUTHORIZED: that token was refused.";
  client.token = null;
  if (client.auth === "hook") {
    // The app's own sign-in (a session, Cloudflare Access) decides: no token to type here.
    replace(
      main,
      h(
        "section",
        { class: "sign-in" },
        h("h1", null, "Not signed in"),
        h(
          "p",
          null,
          "This dashboard is not open to you: sign in to the application it belongs to, then reload.",
        ),
        h(
          "button",
          { attrs: { type: "button" }, on: { click: () => location.reload() } },
          "Reload",
        ),
      ),
    );
    return;
  }
  replace(
    main,
    h(
      "section",
      { class: "sign-in" },
      h("h1", null, "Sign in"),
      h(
        "p",
        null,
        "This dashboard needs its token (the Worker's secret named in its auth option).",
      ),
      h(
        "form",
        {
          on: {
            submit: (event) => {
              event.preventDefault();
              client.token = token.value;
              void render();
            },
          },
        },
        h("label", null, "Token ", token),
        h("button", { attrs: { type: "submit" } }, "Sign in"),
      ),
      message,
    ),
  );
  token.focus();
}

void render();
