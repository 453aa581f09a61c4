/**
 * Baton's benchmark runner: `npm run bench [-- <suite> ...]`.
 *
 * It starts its own `wrangler dev` (bench/wrangler.toml) on a free loopback port, with a fresh
 * state directory and X_LOCAL_OBSERVABILITY=false, warms up, runs every case of a suite side by side (interleaved,
 * repetition by repetition, so drift hits all cases alike), prints one JSON line per case and
 * per ratio, and rewrites BENCHMARKS.md with medians, spread and the exact command.
 *
 * Add a suite by adding routes to bench/worker/index.ts and an entry to SUITES below.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { startDevServer } from "../scripts/wrangler-dev.ts";
import {
  type Measurement,
  progressLatency,
  statusOverBatch,
  statusOverWebSocket,
} from "./client.ts";

interface Case {
  /** Route of the bench Worker. */
  route: string;
  /** Key of the case in ratios and the JSON lines, when one route runs at several sizes (default `route`). */
  key?: string;
  /** The route's size parameter. */
  n: number;
  /** Work units one repetition does (default `n`). */
  units?: number;
  /** Label in the table. */
  label: string;
  /** Measured from here (Node) instead of by the Worker route: gets the server's base URL. */
  measure?: (base: string, n: number, run: string) => Promise<Measurement>;
}

interface Ratio {
  /** How many times faster `faster` is than `than` (rates divided, or times divided). */
  faster: string;
  than: string;
  target?: number;
  /** What the target means, for the report. */
  targetText?: string;
}

interface Suite {
  name: string;
  title: string;
  description: string;
  unit: string;
  /** `rate`: units per second matter; `time`: the median time itself (lower is better). */
  metric: "rate" | "time";
  reps: number;
  warmups: number;
  cases: Case[];
  ratios: Ratio[];
}

const SUITES: Suite[] = [
  {
    name: "timers",
    title: "Scheduler: 10,000 timers due at once in one object",
    description:
      "Baton's timer table over one alarm (batches of 256, at most 2,000 timers per alarm invocation) against a raw chain of one alarm per timer, each alarm re-arming the next at `Date.now() + 1`. Time runs from making the timers due to the last handler finishing.",
    unit: "timers",
    metric: "rate",
    reps: 3,
    warmups: 1,
    cases: [
      { route: "timers/baton", n: 10_000, label: "Baton scheduler" },
      { route: "timers/raw-chain", n: 10_000, label: "raw one-alarm-per-timer chain" },
    ],
    ratios: [{ faster: "timers/baton", than: "timers/raw-chain", target: 10 }],
  },
  {
    name: "steps",
    title: "Executions: 1 execution × 1000 trivial steps",
    description:
      "One workflow of 1,000 trivial `step.do` calls, from start to result. Baton's Execution actor against Cloudflare Workflows (local engine, same dev server; completion seen by polling `status()` every 5 ms) and a naive loop on a plain Durable Object writing one journal row per step.",
    unit: "steps",
    metric: "rate",
    reps: 3,
    warmups: 1,
    cases: [
      { route: "steps/baton", n: 1000, label: "Baton" },
      { route: "steps/cloudflare", n: 1000, label: "Cloudflare Workflows" },
      { route: "steps/naive-do", n: 1000, label: "naive Durable Object loop" },
    ],
    ratios: [
      { faster: "steps/baton", than: "steps/cloudflare", target: 10 },
      { faster: "steps/baton", than: "steps/naive-do" },
    ],
  },
  {
    name: "fanout",
    title: "Executions: 50 executions × 10 steps",
    description:
      '50 executions of 10 trivial steps each, started together (`execute`: start and wait in one call), until all 50 results are in. Each Baton execution is a new Durable Object; the floor row is 50 new objects that only create the Execution actor\'s SQLite tables (no workflow run). The other suites run without an ExecutionIndex; the "with listing" row runs the same executions on an Execution actor class bound to one (every status change also sent to the one index object), timed until the index lists all 50 as completed.',
    unit: "steps",
    metric: "time",
    reps: 3,
    warmups: 1,
    cases: [
      { route: "fanout/baton", n: 50, units: 500, label: "Baton" },
      {
        route: "fanout/baton-indexed",
        n: 50,
        units: 500,
        label: "Baton with listing (ExecutionIndex bound)",
      },
      { route: "fanout/cloudflare", n: 50, units: 500, label: "Cloudflare Workflows" },
      {
        route: "fanout/schema-floor",
        n: 50,
        units: 500,
        label: "floor: 50 new objects creating Baton's tables",
      },
    ],
    ratios: [
      {
        faster: "fanout/baton",
        than: "fanout/cloudflare",
        target: 4,
        targetText: "Baton in at most ¼ of the time",
      },
      { faster: "fanout/baton-indexed", than: "fanout/cloudflare" },
    ],
  },
  {
    name: "children",
    title: "Composition: fan-out to 100 and 1000 trivial children",
    description:
      "A parent execution fans out to `n` child executions of one trivial step each and finalizes over all their outputs (the count of distinct outputs must be `n`); start to result. Baton: `step.children` (each child its own Execution actor, reporting back through the actor). Cloudflare Workflows (local engine, same dev server): the closest pattern it allows — the parent workflow creates `n` child instances with `createBatch` (100 per call) in a step, then polls the unfinished ones from a step every 50 ms (`step.sleep`) until all are complete. Both create one new SQLite-backed object per child (Cloudflare's local engine runs each instance in its own object); the floor row is the cost of creating 1000 new objects that answer one RPC and store nothing, measured in the same run. Cloudflare's engine logs requests \"cancelled as hung\" on a fresh state; the instances still complete.",
    unit: "children",
    metric: "time",
    reps: 3,
    warmups: 1,
    cases: [
      { route: "children/baton", key: "baton-100", n: 100, label: "Baton, 100 children" },
      {
        route: "children/cloudflare",
        key: "cloudflare-100",
        n: 100,
        label: "Cloudflare Workflows, 100 children",
      },
      { route: "children/baton", key: "baton-1000", n: 1000, label: "Baton, 1000 children" },
      {
        route: "children/cloudflare",
        key: "cloudflare-1000",
        n: 1000,
        label: "Cloudflare Workflows, 1000 children",
      },
      {
        route: "children/empty-floor",
        key: "floor-1000",
        n: 1000,
        label: "floor: 1000 new empty objects, one RPC each",
      },
    ],
    ratios: [
      { faster: "baton-100", than: "cloudflare-100" },
      {
        faster: "baton-1000",
        than: "cloudflare-1000",
        target: 5,
        targetText: "Baton at least 5× as fast",
      },
    ],
  },
  {
    name: "gateway",
    title: "Gateway: `status()` round trips over Cap'n Web",
    description:
      "From Node (the runner) to the bench Worker under `wrangler dev`: Baton's gateway (`/rpc`: token check at connection, then `status(id)` → the Execution actor over native RPC → SQLite) against a bare capnweb target in the same Worker whose `status(id)` returns a constant of the same shape, and a floor: that bare target making the one native RPC hop a gateway call makes, to a plain Durable Object returning the constant (no storage; it does not coalesce, so its batch of 100 makes 100 hops where the gateway, coalescing overlapping reads of one execution, makes one). WebSocket: sequential calls on one session. HTTP batch: 100 `status()` calls in one batch (one POST), repeated.",
    unit: "calls",
    metric: "time",
    reps: 7,
    warmups: 1,
    cases: [
      {
        route: "rpc",
        key: "gateway-ws",
        n: 300,
        label: "Baton gateway, WebSocket, sequential",
        measure: (base, n, run) => statusOverWebSocket(base, n, run, "gateway"),
      },
      {
        route: "echo-rpc",
        key: "echo-ws",
        n: 300,
        label: "bare capnweb echo, WebSocket, sequential",
        measure: (base, n, run) => statusOverWebSocket(base, n, run, "echo"),
      },
      {
        route: "floor-rpc",
        key: "floor-ws",
        n: 300,
        label: "floor: bare target + one RPC to a plain object, WebSocket",
        measure: (base, n, run) => statusOverWebSocket(base, n, run, "floor"),
      },
      {
        route: "rpc",
        key: "gateway-batch",
        n: 20,
        units: 2000,
        label: "Baton gateway, HTTP batches of 100",
        measure: (base, n, run) => statusOverBatch(base, n, run, "gateway"),
      },
      {
        route: "echo-rpc",
        key: "echo-batch",
        n: 20,
        units: 2000,
        label: "bare capnweb echo, HTTP batches of 100",
        measure: (base, n, run) => statusOverBatch(base, n, run, "echo"),
      },
      {
        route: "floor-rpc",
        key: "floor-batch",
        n: 20,
        units: 2000,
        label: "floor: bare target + one RPC to a plain object, HTTP batches of 100",
        measure: (base, n, run) => statusOverBatch(base, n, run, "floor"),
      },
    ],
    ratios: [
      {
        faster: "gateway-ws",
        than: "echo-ws",
        target: 1 / 1.5,
        targetText: "at most 1.5× the bare round trip",
      },
      {
        faster: "gateway-batch",
        than: "echo-batch",
        target: 1 / 1.5,
        targetText: "at most 1.5× the bare round trip",
      },
      { faster: "gateway-ws", than: "floor-ws" },
      { faster: "gateway-batch", than: "floor-batch" },
    ],
  },
  {
    name: "live",
    title: "Live progress: from a step's end to the WebSocket subscriber",
    description:
      "A workflow of 100 steps, each returning the time it ended, with 20 ms of durable sleep between them, followed by a Node subscriber on the live-progress WebSocket route (`/executions/:id/live`); per `progress` event, its arrival time minus the step's end (one machine, one clock; workerd's clock advances at I/O, so the step's end reads slightly early and the latency slightly long). The time column is the median run's p50.",
    unit: "events",
    metric: "time",
    reps: 3,
    warmups: 1,
    cases: [
      {
        route: "executions/:id/live",
        key: "live",
        n: 100,
        label: "step end → subscriber (p50 per event)",
        measure: progressLatency,
      },
    ],
    ratios: [],
  },
  {
    name: "sleep",
    title: 'Executions: `step.sleep("1 second")` overshoot',
    description:
      "A workflow that sleeps 1 second; the time reported is start-to-result minus 1,000 ms (the overshoot).",
    unit: "executions",
    metric: "time",
    reps: 7,
    warmups: 1,
    cases: [
      { route: "sleep/baton", n: 1, label: "Baton" },
      { route: "sleep/cloudflare", n: 1, label: "Cloudflare Workflows" },
    ],
    ratios: [
      {
        faster: "sleep/baton",
        than: "sleep/cloudflare",
        target: 1,
        targetText: "overshoot no worse than Cloudflare Workflows'",
      },
    ],
  },
  {
    name: "retry",
    title: "Executions: a step that fails twice, then succeeds (100 ms constant backoff)",
    description: "Start to result; at least 200 ms of it is the two backoff waits.",
    unit: "executions",
    metric: "time",
    reps: 3,
    warmups: 1,
    cases: [
      { route: "retry/baton", n: 1, label: "Baton" },
      { route: "retry/cloudflare", n: 1, label: "Cloudflare Workflows" },
    ],
    ratios: [{ faster: "retry/baton", than: "retry/cloudflare" }],
  },
  {
    name: "locks",
    title: "Locks: uncontended acquire + release",
    description:
      "One caller, sequential acquire + release pairs on one lock, against the floor measured in the same run: two RPCs to a plain Durable Object, each committing one single-row write.",
    unit: "pairs",
    metric: "rate",
    reps: 3,
    warmups: 1,
    cases: [
      { route: "locks/uncontended", n: 500, label: "Baton Lock actor" },
      { route: "locks/floor", n: 500, label: "floor: 2 RPCs + 2 committed writes" },
    ],
    ratios: [{ faster: "locks/uncontended", than: "locks/floor", target: 0.6 }],
  },
  {
    name: "contention",
    title: "Locks: 16 contenders on one lock",
    description:
      "16 callers loop acquire (waiting in the FIFO queue) + release on one lock: handoffs per second, and the wait per grant (p50/p99 in ms, from the median run).",
    unit: "handoffs",
    metric: "rate",
    reps: 3,
    warmups: 1,
    cases: [{ route: "locks/contended", n: 480, label: "Baton Lock actor, 16 contenders" }],
    ratios: [],
  },
  {
    name: "checkpoints",
    title: "Checkpoints: save + load",
    description:
      "Sequential save + load round trips of one checkpoint through the Checkpoint actor (codec, compression above 10 KB, rows of at most 1.9 MB), against a plain Durable Object writing the same string's UTF-8 bytes raw in rows of at most 1.9 MB and reading them back, in the same run. 1 KB and 100 KB values are random base64 text (barely compressible); the 10 MB value is repeated English prose (very compressible).",
    unit: "round trips",
    metric: "rate",
    reps: 5,
    warmups: 1,
    cases: [
      { route: "cp/baton-1k", n: 300, label: "Baton, 1 KB" },
      { route: "cp/plain-1k", n: 300, label: "plain DO, 1 KB" },
      { route: "cp/baton-100k", n: 100, label: "Baton, 100 KB" },
      { route: "cp/plain-100k", n: 100, label: "plain DO, 100 KB" },
      { route: "cp/baton-10m", n: 3, label: "Baton, 10 MB prose" },
      { route: "cp/plain-10m", n: 3, label: "plain DO, 10 MB prose" },
    ],
    ratios: [
      { faster: "cp/baton-1k", than: "cp/plain-1k", target: 0.7 },
      { faster: "cp/baton-100k", than: "cp/plain-100k" },
      {
        faster: "cp/baton-10m",
        than: "cp/plain-10m",
        target: 1,
        targetText: "not slower than the plain write",
      },
    ],
  },
];

const keyOf = (c: Case): string => c.key ?? c.route;

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

interface Measured {
  suite: string;
  bench: string;
  label: string;
  n: number;
  reps: number;
  median_ms: number;
  min_ms: number;
  max_ms: number;
  per_s: number;
  extra?: Record<string, number>;
}

async function main(): Promise<void> {
  const wanted = process.argv.slice(2);
  const suites = wanted.length ? SUITES.filter((s) => wanted.includes(s.name)) : SUITES;
  if (suites.length === 0) {
    console.error(
      `No suite named ${wanted.join(", ")}. Suites: ${SUITES.map((s) => s.name).join(", ")}`,
    );
    process.exit(2);
  }
  // Fresh local state for every run (removed afterwards): objects of earlier runs neither pile up
  // (a full run creates tens of thousands) nor slow this one down.
  const server = await startDevServer({ config: "bench/wrangler.toml" });
  const port = server.port;
  const results: Array<{
    suite: Suite;
    rows: Measured[];
    ratios: Array<Ratio & { value: number }>;
  }> = [];
  try {
    for (const suite of suites) {
      const rows = await runSuite(suite, port);
      const ratios = suite.ratios.map((ratio) => {
        const a = rows.find((r) => r.bench === ratio.faster);
        const b = rows.find((r) => r.bench === ratio.than);
        const value =
          a && b
            ? suite.metric === "rate"
              ? a.per_s / b.per_s
              : Math.max(b.median_ms, 0.5) / Math.max(a.median_ms, 0.5)
            : Number.NaN;
        const line = {
          suite: suite.name,
          ratio: `${ratio.faster} / ${ratio.than}`,
          value: round(value, 2),
          target: ratio.target ?? null,
        };
        console.log(JSON.stringify(line));
        return { ...ratio, value };
      });
      results.push({ suite, rows, ratios });
    }
  } finally {
    await server.stop();
  }
  writeReport(results, wanted);
}

async function viaRoute(port: number, c: Case, run: string): Promise<Measurement> {
  const response = await fetch(`http://127.0.0.1:${port}/${c.route}?n=${c.n}&run=${run}`);
  if (!response.ok)
    throw new Error(`${c.route}: HTTP ${response.status}: ${await response.text()}`);
  return (await response.json()) as Measurement;
}

async function runSuite(suite: Suite, port: number): Promise<Measured[]> {
  const samples = new Map<string, number[]>(suite.cases.map((c) => [keyOf(c), []]));
  const extras = new Map<string, Array<Record<string, number>>>(
    suite.cases.map((c) => [keyOf(c), []]),
  );
  for (let rep = -suite.warmups; rep < suite.reps; rep++) {
    for (const c of suite.cases) {
      const run = `${suite.name}-${rep}-${Date.now()}`;
      const { ms, count, extra } = c.measure
        ? await c.measure(`http://127.0.0.1:${port}`, c.n, run)
        : await viaRoute(port, c, run);
      const units = c.units ?? c.n;
      if (count !== units)
        throw new Error(`${c.route}: expected ${units} ${suite.unit}, got ${count}`);
      if (rep >= 0) {
        samples.get(keyOf(c))!.push(ms);
        extras.get(keyOf(c))!.push({ ms, ...extra });
      }
    }
  }
  return suite.cases.map((c) => {
    const ms = samples.get(keyOf(c))!.sort((a, b) => a - b);
    const median = ms[Math.floor(ms.length / 2)]!;
    // Extra figures (wait percentiles ...) come from the run whose time is the median.
    const { ms: _median, ...extra } = extras.get(keyOf(c))!.find((e) => e.ms === median) ?? {
      ms: 0,
    };
    const row: Measured = {
      suite: suite.name,
      bench: keyOf(c),
      label: c.label,
      n: c.units ?? c.n,
      reps: ms.length,
      median_ms: median,
      min_ms: ms[0]!,
      max_ms: ms[ms.length - 1]!,
      per_s: round(((c.units ?? c.n) / Math.max(median, 0.5)) * 1000, 0),
      ...(Object.keys(extra).length ? { extra } : {}),
    };
    console.log(JSON.stringify(row));
    return row;
  });
}

function writeReport(
  results: Array<{ suite: Suite; rows: Measured[]; ratios: Array<Ratio & { value: number }> }>,
  wanted: string[],
): void {
  const command = `npm run bench${wanted.length ? ` -- ${wanted.join(" ")}` : ""}`;
  const day = new Date().toISOString().slice(0, 10);
  const lines = [
    "# Benchmarks",
    "",
    "Made by `npm run bench` (all suites) or `npm run bench -- <suite> ...` (some; the other",
    "sections are kept from their last run, each says which command and day made it): `wrangler dev`",
    "(local workerd) with `X_LOCAL_OBSERVABILITY=false`, started by the runner on a free loopback",
    "port. Each case is warmed up, then repeated; cases of a suite run interleaved in one run, so their",
    "ratio is measured side by side. Times are medians with the min–max spread. This machine is",
    "noisy (±20–40% between runs): compare ratios, not absolute times across runs.",
    "",
  ];
  // Sections of suites not run now are kept from the existing file.
  const kept = new Map<string, string>();
  try {
    const previous = readFileSync(join(root, "BENCHMARKS.md"), "utf8");
    for (const section of previous.split(/\n(?=## )/).slice(1)) {
      kept.set(section.slice(3, section.indexOf("\n")), section.trimEnd());
    }
  } catch {
    // no previous report
  }
  const fresh = new Map<string, string[]>();
  for (const { suite, rows, ratios } of results) {
    const section: string[] = [];
    fresh.set(suite.title, section);
    section.push(
      `## ${suite.title}`,
      "",
      `Made by \`${command}\` on ${day}; Node ${process.version}, ${process.platform}/${process.arch}.`,
      "",
      suite.description,
      "",
    );
    const rate = suite.metric === "rate";
    section.push(
      `| case | ${suite.unit} | runs | median ms | min–max ms |${rate ? ` ${suite.unit}/s |` : ""}`,
    );
    section.push(`| --- | ---: | ---: | ---: | ---: |${rate ? " ---: |" : ""}`);
    for (const r of rows) {
      section.push(
        `| ${r.label} | ${r.n} | ${r.reps} | ${r.median_ms} | ${r.min_ms}–${r.max_ms} |${rate ? ` ${r.per_s} |` : ""}`,
      );
    }
    for (const r of rows) {
      if (r.extra) {
        const figures = Object.entries(r.extra).map(([k, v]) => `${k.replaceAll("_", " ")} ${v}`);
        section.push("", `${r.label}: ${figures.join(", ")}.`);
      }
    }
    section.push("");
    for (const ratio of ratios) {
      const a = rows.find((r) => r.bench === ratio.faster)?.label;
      const b = rows.find((r) => r.bench === ratio.than)?.label;
      const goal = ratio.targetText ?? `≥ ${ratio.target}×`;
      const verdict =
        ratio.target === undefined
          ? ""
          : ratio.value >= ratio.target
            ? ` — target (${goal}): met`
            : ` — target (${goal}): **not met**`;
      const how = suite.metric === "rate" ? "the rate of" : "as fast as";
      section.push(`**${a}** is **${round(ratio.value, 2)}×** ${how} ${b}${verdict}.`, "");
    }
  }
  for (const suite of SUITES) {
    const section = fresh.get(suite.title)?.join("\n").trimEnd() ?? kept.get(suite.title);
    if (section) lines.push(section, "");
  }
  // Sections written by hand (comparisons of several runs, e.g. before and after a change) stay.
  const titles = new Set(SUITES.map((suite) => suite.title));
  for (const [title, section] of kept) if (!titles.has(title)) lines.push(section, "");
  writeFileSync(join(root, "BENCHMARKS.md"), `${lines.join("\n")}\n`);
  console.error(`Wrote BENCHMARKS.md (${command}).`);
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
