/**
 * The dashboard in a real browser: headless Chromium (Debian's `chromium`, or CHROMIUM_PATH)
 * driven by playwright-core, against the dev Worker under `wrangler dev` — once as `npm run dev`
 * runs it (local access, no token) and once as a deployed copy would be (the token required).
 * Makes screenshots of the list and of an execution page: into test/.screenshots/, or, with
 * UPDATE_SCREENSHOTS=1, into docs/images/ (the ones README shows; commit them).
 */
import { existsSync, mkdirSync } from "node:fs";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Browser, chromium, firefox, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DevServer, groupAlive, startDevServer } from "../../scripts/wrangler-dev.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const images = process.env.UPDATE_SCREENSHOTS
  ? join(root, "docs", "images")
  : join(root, "test", ".screenshots");

let local: DevServer;
let secured: DevServer;

/** The browser's executable: its environment variable, or one of `names` on PATH. */
function executable(variable: string, names: string[], install: string): string {
  const onPath = (process.env.PATH ?? "")
    .split(delimiter)
    .flatMap((dir) => names.map((n) => join(dir, n)));
  const found = [process.env[variable], ...onPath].find((p) => p && existsSync(p));
  if (!found) {
    throw new Error(`No ${names[0]} for the browser tests: ${install}, or set ${variable}.`);
  }
  return found;
}

/** The browsers the dashboard is tested in (what .ci/run installs). */
const BROWSERS: Record<string, () => Promise<Browser>> = {
  chromium: () =>
    chromium.launch({
      executablePath: executable(
        "CHROMIUM_PATH",
        ["chromium", "chromium-browser", "google-chrome"],
        "apt-get install chromium",
      ),
      args: ["--no-sandbox"],
    }),
  // Stock Firefox over WebDriver BiDi (playwright's "moz-firefox" channels).
  firefox: () =>
    firefox.launch({
      channel: "moz-firefox",
      executablePath: executable(
        "FIREFOX_PATH",
        ["firefox-esr", "firefox"],
        "apt-get install firefox-esr",
      ),
    }),
};

beforeAll(async () => {
  const log = () => {};
  // One after the other: two wrangler starts at once race on the build step and ports.
  local = await startDevServer({
    config: "wrangler.toml",
    vars: { BATON_TOKEN: "dev-token", BATON_LOCAL_DEV: "true" }, // as `npm run dev`
    log,
  });
  secured = await startDevServer({
    config: "wrangler.toml",
    vars: { BATON_TOKEN: "dev-token" },
    log,
  });
}, 180_000);

afterAll(async () => {
  for (const server of [local, secured]) {
    const pid = server?.pid;
    await server?.stop();
    if (pid !== undefined) expect(groupAlive(pid), "wrangler/workerd left running").toBe(false);
  }
}, 60_000);

/** Starts a playground execution (its steps spelled out by its input) on the local server. */
async function play(id: string, steps: unknown[], retryDelay = "1 second"): Promise<void> {
  const response = await fetch(`${local.url}/playground`, {
    method: "POST",
    body: JSON.stringify({ id, steps, retryDelay }),
  });
  expect(response.status, await response.clone().text()).toBe(201);
  await response.body?.cancel();
}

for (const [name, launch] of Object.entries(BROWSERS)) {
  describe(`the dashboard in ${name}`, () => {
    let browser: Browser | undefined;
    beforeAll(async () => {
      browser = await launch();
    }, 60_000);
    afterAll(async () => {
      await browser?.close();
    });
    scenarios(name, () => {
      if (!browser) throw new Error(`${name} did not start`);
      return browser;
    });
  });
}

/** A page that fails the test on any script error, and records dialogs (none should open). */
async function openIn(
  browser: Browser,
  url: string,
): Promise<{ page: Page; errors: string[]; dialogs: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors: string[] = [];
  const dialogs: string[] = [];
  page.on("pageerror", (error) => errors.push(error.message));
  page.on("dialog", (dialog) => {
    dialogs.push(`${dialog.type()}: ${dialog.message()}`);
    void (dialog.type() === "confirm" ? dialog.accept() : dialog.dismiss());
  });
  await page.goto(url);
  return { page, errors, dialogs };
}

/** The scenarios, in one browser. Screenshots come from Chromium. */
function scenarios(name: string, current: () => Browser): void {
  const run = `${name.slice(0, 2)}${Date.now().toString(36)}`;
  const open = (url: string) => openIn(current(), url);
  const shots = name === "chromium";

  it("is linked from / and lists executions, filtered, counted, each linking to its page", async () => {
    const done = `list-done-${run}`;
    const waiting = `list-waiting-${run}`;
    await play(done, [{ do: "only step" }]);
    await play(waiting, [{ wait: "approval", event: "approve" }]);
    const order = await fetch(`${local.url}/orders`, {
      method: "POST",
      body: JSON.stringify({ orderId: `o-${run}`, items: ["book"], amount: 12 }),
    });
    expect(order.status).toBe(201);

    const { page, errors } = await open(`${local.url}/`);
    await page.getByRole("link", { name: "Open the dashboard" }).click();
    await page.waitForURL(`${local.url}/dashboard`);
    await expect
      .poll(() => page.locator(`tr[data-id="${done}"] .badge`).textContent())
      .toBe("completed");
    await expect
      .poll(() => page.locator(`tr[data-id="${waiting}"] .badge`).textContent())
      .toBe("running");
    await expect.poll(() => page.locator(`tr[data-id="o-${run}"]`).count()).toBe(1);
    const completed = Number(await page.locator('[data-status="completed"] .count').textContent());
    expect(completed).toBeGreaterThanOrEqual(1);

    // Filter by workflow: the order goes; by status: only running ones stay.
    await page.selectOption("select[name=workflow]", "playground");
    // (Each filter change re-renders the list: wait for the rows that must be there, too.)
    const rows = async (...ids: string[]) =>
      Promise.all(ids.map((id) => page.locator(`tr[data-id="${id}"]`).count()));
    await expect.poll(() => rows(`o-${run}`, waiting)).toEqual([0, 1]);
    expect(page.url()).toContain("workflow=playground");
    await page.click('[data-status="running"]');
    await expect.poll(() => rows(done, waiting)).toEqual([0, 1]);
    // A time range that excludes everything, then back to any time.
    await page.selectOption("select[name=range]", "custom");
    await page.fill("input[name=from]", "2001-01-01T00:00");
    await page.fill("input[name=to]", "2001-01-02T00:00");
    await page.getByRole("button", { name: "Apply" }).click();
    await expect.poll(() => page.locator("p.empty").count()).toBe(1);
    await page.selectOption("select[name=range]", "all");
    await expect.poll(() => rows(waiting)).toEqual([1]);

    // The row's link is the execution's own URL.
    await page.click(`tr[data-id="${waiting}"] a`);
    await page.waitForURL(`${local.url}/dashboard/executions/${waiting}`);
    await expect.poll(() => page.locator("h1").textContent()).toContain(waiting);
    expect(errors).toEqual([]);
    await page.close();
  });

  it("shows an execution's steps on a timeline, live, and completes it by an event sent from the page", async () => {
    const id = `timeline-${run}`;
    await play(id, [
      { do: "fetch data", fail: 2 },
      { sleep: "cool down", for: "1 second" },
      { wait: "approval", event: "approve", timeout: "1 hour" },
      { child: "sub-task", steps: [{ do: "inner" }] },
      { do: "book", compensate: true },
    ]);
    // Listening to the page's WebSocket before the page opens: no event goes unseen.
    const { page, errors } = await open("about:blank");
    const frames: string[] = [];
    page.on("websocket", (ws) => ws.on("framereceived", (f) => frames.push(String(f.payload))));
    await page.goto(`${local.url}/dashboard/executions/${id}`);
    // The page never reloads from here: its state changes arrive live.
    await page.evaluate(() => {
      (globalThis as unknown as { stayed: boolean }).stayed = true;
    });
    const fetchRow = page.locator('.tl-row[data-step="fetch data"]');
    await expect
      .poll(() => fetchRow.getAttribute("data-status"), { timeout: 15_000 })
      .toBe("completed");
    expect(await fetchRow.locator('[data-kind="failed"]').count()).toBe(2);
    expect(await fetchRow.locator('[data-kind="backoff"]').count()).toBe(2);
    expect(await fetchRow.locator('[data-kind="ok"]').count()).toBe(1);
    expect(await fetchRow.locator('[data-kind="failed"]').first().getAttribute("title")).toMatch(
      /attempt 1 failed .*fails on purpose/,
    );
    await expect
      .poll(() => page.locator('.tl-row[data-step="approval"]').getAttribute("data-status"), {
        timeout: 15_000,
      })
      .toBe("waiting");
    expect(await page.locator('.tl-row[data-step="cool down"] [data-kind="sleep"]').count()).toBe(
      1,
    );
    // (Playwright reports WebSocket frames in Chromium only.)
    if (shots) expect(frames.some((f) => f.includes('"progress"'))).toBe(true);
    await expect.poll(() => page.locator(".live").getAttribute("class")).toBe("live");
    // A live event (not the 5 s re-read) brought an update in.
    await expect
      .poll(() => page.locator("section.execution").getAttribute("data-updated-by"))
      .toBe("live");

    await page.fill("input[name=type]", "approve");
    await page.fill("textarea[name=payload]", '{"approved": true, "by": "ada"}');
    await page.getByRole("button", { name: "Send event" }).click();
    await expect
      .poll(() => page.locator(".action-result").textContent())
      .toContain('delivered to step "approval"');
    await expect
      .poll(() => page.locator(".exec-status .badge").textContent(), { timeout: 15_000 })
      .toBe("completed");
    expect(await page.evaluate(() => (globalThis as unknown as { stayed?: boolean }).stayed)).toBe(
      true,
    );
    const approval = page.locator('.tl-row[data-step="approval"] [data-kind="wait"]');
    expect(await approval.getAttribute("title")).toMatch(/resumed by event "approve"/);
    expect(await page.locator(".io pre").nth(1).textContent()).toContain('"by": "ada"');
    if (shots) {
      await page.screenshot({
        path: join(mkdir(images), "dashboard-execution.png"),
        fullPage: true,
      });
    }

    // The child is linked to its own page, which links back to its parent.
    await page.locator('.tl-row[data-step="sub-task"] a').click();
    await page.waitForURL(/\/dashboard\/executions\/.*sub-task/);
    await expect.poll(() => page.locator(".summary a").textContent()).toBe(id);
    expect(errors).toEqual([]);
    await page.close();
  });

  it("cancels an execution from the page, and shows an action's error code", async () => {
    const id = `cancel-${run}`;
    await play(id, [{ wait: "approval", event: "approve" }]);
    const { page, errors, dialogs } = await open(`${local.url}/dashboard/executions/${id}`);
    const cancel = page.locator('button[data-action="cancel"]');
    await expect.poll(() => cancel.isEnabled()).toBe(true);
    // Waiting for an event, it can be paused too.
    expect(await page.locator('button[data-action="pause"]').isEnabled()).toBe(true);
    await cancel.click();
    await expect
      .poll(() => page.locator(".action-result").textContent())
      .toContain("cancel: the execution is now cancelled");
    expect(dialogs).toEqual([`confirm: Cancel execution ${id}?`]);
    await expect.poll(() => page.locator(".exec-status .badge").textContent()).toBe("cancelled");
    // An event now: refused, and the page says why, by its code.
    await page.fill("input[name=type]", "approve");
    await page.getByRole("button", { name: "Send event" }).click();
    await expect
      .poll(() => page.locator(".action-result .error").textContent())
      .toMatch(/^EXECUTION_FINISHED: /);
    await page.fill("textarea[name=payload]", "{not json");
    await page.getByRole("button", { name: "Send event" }).click();
    await expect
      .poll(() => page.locator(".action-result .error").textContent())
      .toMatch(/^INVALID_JSON: /);
    expect(errors).toEqual([]);
    await page.close();
  });

  it("lists schedules, pauses, resumes and triggers one, and shows its runs", async () => {
    const id = `nightly-${run}`;
    const created = await fetch(`${local.url}/schedules`, {
      method: "POST",
      body: JSON.stringify({ id, cron: "30 2 * * *", timezone: "Europe/Berlin" }),
    });
    expect(created.status, await created.clone().text()).toBe(201);
    await created.body?.cancel();
    const { page, errors } = await open(`${local.url}/dashboard/schedules`);
    const row = page.locator("tr", { has: page.getByRole("link", { name: id, exact: true }) });
    // The list is the registry's: it has the new schedule a moment after its creation.
    await expect
      .poll(async () => {
        if ((await row.count()) === 0) await page.reload();
        return row.count();
      })
      .toBe(1);
    expect(await row.textContent()).toContain("cron 30 2 * * * (Europe/Berlin)");
    await row.getByRole("button", { name: "Pause" }).click();
    await expect.poll(() => row.locator(".badge").first().textContent()).toBe("paused");
    await row.getByRole("button", { name: "Resume" }).click();
    await expect.poll(() => row.locator(".badge").first().textContent()).toBe("active");
    await row.getByRole("button", { name: "Trigger" }).click();
    await expect.poll(() => page.locator(".action-result").textContent()).toBe("trigger: done");
    await row.getByRole("link", { name: id, exact: true }).click();
    await expect.poll(() => page.locator("h1").textContent()).toBe(`Schedule ${id}`);
    const runRow = page.locator("tbody tr").first();
    await expect.poll(() => runRow.textContent()).toContain("trigger");
    await runRow.getByRole("link").click();
    await expect.poll(() => page.locator("h1").textContent()).toContain(`${id}/`);
    expect(errors).toEqual([]);
    await page.close();
  });

  it("shows a lock and a checkpoint scope typed in", async () => {
    const { page, errors } = await open(`${local.url}/dashboard/locks`);
    await page.fill("input[name=name]", `no-such-lock-${run}`);
    await page.getByRole("button", { name: "Show" }).click();
    await expect.poll(() => page.locator("main").textContent()).toContain("No holders.");
    await page.goto(`${local.url}/dashboard/checkpoints`);
    await page.fill("input[name=scope]", `scope-${run}`);
    await page.getByRole("button", { name: "Show" }).click();
    await expect
      .poll(() => page.locator("main").textContent())
      .toContain("No checkpoints in this scope.");
    expect(errors).toEqual([]);
    await page.close();
  });

  it("renders every value as text: step names and outputs holding markup stay characters", async () => {
    const id = `xss-${run}`;
    const name = "<img src=x onerror=alert(1)>";
    const output = "<script>alert(2)</script><b>bold</b>";
    await play(id, [
      { do: name, output },
      { wait: "<i>approval</i>", event: "approve" },
    ]);
    const { page, errors, dialogs } = await open(`${local.url}/dashboard/executions/${id}`);
    await expect.poll(() => page.locator(".tl-name").first().textContent()).toBe(name);
    expect(await page.locator("td", { hasText: name }).count()).toBe(1);
    await page.locator("details summary").first().click();
    expect(await page.locator("details pre").first().textContent()).toContain(output);
    expect(await page.locator("main img, main b, main i, main script").count()).toBe(0);
    expect(await page.locator("script").count()).toBe(1); // the dashboard's own
    await page.goto(`${local.url}/dashboard/executions?prefix=xss-${run}`);
    await expect.poll(() => page.locator(`tr[data-id="${id}"]`).count()).toBe(1);
    expect(await page.locator("main img").count()).toBe(0);
    expect(dialogs).toEqual([]);
    expect(errors).toEqual([]);
    await page.close();
  });

  it("asks for the token on a dashboard that needs one, and refuses a wrong one", async () => {
    const { page, errors } = await open(`${secured.url}/dashboard`);
    await expect.poll(() => page.locator("h1").textContent()).toBe("Sign in");
    const direct = await fetch(`${secured.url}/dashboard/api/session`, {
      headers: { "X-Baton-Dashboard": "1" },
    });
    expect(direct.status).toBe(401);
    await direct.body?.cancel();
    await page.fill("input[name=token]", "wrong");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect.poll(() => page.locator("[role=alert]").textContent()).toContain("UNAUTHORIZED");
    await page.fill("input[name=token]", "dev-token");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect.poll(() => page.locator("h1").textContent()).toBe("Executions");
    expect(errors).toEqual([]);
    await page.close();
  });

  it("shows a full list (the screenshot of the executions list)", async () => {
    for (const [i, steps] of [
      [
        { do: "charge card", fail: 1 },
        { sleep: "settle", for: "1 second" },
      ],
      [
        { do: "reserve", compensate: true },
        { do: "ship", nonRetryable: true },
      ],
      [{ wait: "approval", event: "approve" }],
      [{ do: "import rows" }, { child: "validate", steps: [{ do: "check" }] }],
    ].entries()) {
      await play(`demo-${i}-${run}`, steps as unknown[], "500 ms");
    }
    const { page, errors } = await open(`${local.url}/dashboard`);
    await expect
      .poll(() => page.locator(`tr[data-id="demo-3-${run}"] .badge`).textContent())
      .toBe("completed");
    if (shots) await page.screenshot({ path: join(mkdir(images), "dashboard-executions.png") });
    expect(errors).toEqual([]);
    await page.close();
  });
}

function mkdir(dir: string): string {
  mkdirSync(dir, { recursive: true });
  return dir;
}
