#!/usr/bin/env node
/**
 * Checks the shape of the codebase (part of `npm run check`); exits 1 with every finding:
 *
 * - no source file in src/, actors/ or examples/ is over 800 lines;
 * - the layers hold: a file imports only from its own layer or lower ones (type imports too);
 * - there is no runtime import circle among the project's files;
 * - the dashboard's page (src/dashboard/ui/) never parses a string as HTML;
 * - nothing outside src/testing/ imports the test kit (baton/testing);
 * - `baton/client` (src/remote/) loads nothing Worker-only: no file it reaches at runtime imports
 *   a `cloudflare:` module (it must run in Node and in browsers).
 *
 * The layers, lowest first, are listed in LAYERS (docs/architecture.md draws them). Imports are
 * read from the source text: `import`/`export … from "…"`, `import "…"` and `import("…")`.
 * With `verbatimModuleSyntax` (tsconfig.json), only `import type` / `export type` are erased, so
 * every other import is a runtime edge, even one that names only types inline.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, normalize } from "node:path";

const MAX_LINES = 800;
const ROOTS = ["src", "actors", "examples"];
/** Path prefixes of the layers, lowest first. A file's layer is its longest matching prefix. */
const LAYERS = [
  ["src/foundation/", "foundation"],
  ["src/workflow/", "workflow"],
  ["src/execution/", "execution"],
  ["src/protocol/", "protocol"],
  // The dashboard's page (browser code): types from the layers above, nothing of the Worker.
  ["src/dashboard/ui/", "dashboard page"],
  ["actors/", "actors"],
  ["src/clients/", "clients"],
  // baton/workflows: Cloudflare Workflows' API over the clients and the engine.
  ["src/compat/", "workflows compat"],
  ["src/dashboard/", "dashboard"],
  // baton/testing: the test kit (imports cloudflare:test; nothing below it imports it).
  ["src/testing/", "testing"],
  ["src/remote/", "remote"],
  ["src/cli/", "cli"],
  ["src/index.ts", "barrel"],
];

const root = join(dirname(new URL(import.meta.url).pathname), "..");
const problems = [];

function filesUnder(dir) {
  const out = [];
  for (const name of readdirSync(join(root, dir))) {
    if (name === "node_modules" || name.startsWith(".")) continue;
    const path = join(dir, name);
    if (statSync(join(root, path)).isDirectory()) out.push(...filesUnder(path));
    else if (/\.(ts|mts|tsx|js|mjs)$/.test(name) && !name.endsWith(".d.ts")) out.push(path);
  }
  return out;
}

function layerOf(file) {
  let best = -1;
  for (let i = 0; i < LAYERS.length; i++) {
    const [prefix] = LAYERS[i];
    if (file === prefix || (prefix.endsWith("/") && file.startsWith(prefix))) {
      if (best === -1 || prefix.length > LAYERS[best][0].length) best = i;
    }
  }
  return best;
}

const IMPORT =
  /(?:^|[\n;])\s*(import|export)\s+(type\s+)?(?:[\w*{}\s,$]*?\s+from\s+)?"(\.{1,2}\/[^"]+)"/g;
const DYNAMIC = /\bimport\(\s*"(\.{1,2}\/[^"]+)"\s*\)/g;

/** The project files `file` imports, each with whether the import survives at runtime. */
function importsOf(file, text) {
  const edges = [];
  const add = (spec, runtime) => {
    const target = normalize(join(dirname(file), spec));
    edges.push({ target, runtime });
  };
  for (const m of text.matchAll(IMPORT)) add(m[3], m[2] === undefined);
  for (const m of text.matchAll(DYNAMIC)) add(m[1], true);
  return edges;
}

/** Entries that must stay free of Worker-only modules, and how those modules are imported. */
const PORTABLE_ENTRIES = ["src/remote/index.ts", "src/dashboard/ui/main.ts"];
const WORKER_ONLY =
  /(?:^|[\n;])\s*(?:import|export)\s+(?!type\s)(?:[\w*{}\s,$]*?\s+from\s+)?"cloudflare:[^"]*"/;

const files = ROOTS.flatMap(filesUnder);
const graph = new Map();
const workerOnly = new Set();
for (const file of files) {
  const text = readFileSync(join(root, file), "utf8");
  const lines = text.split("\n").length - (text.endsWith("\n") ? 1 : 0);
  if (lines > MAX_LINES) {
    problems.push(`${file}: ${lines} lines (at most ${MAX_LINES}); split it by concern`);
  }
  const edges = importsOf(file, text);
  if (WORKER_ONLY.test(text)) workerOnly.add(file);
  graph.set(
    file,
    edges.filter((e) => e.runtime).map((e) => e.target),
  );
  // baton/testing is its own entry: no other file of the package reaches it, so a Worker that
  // imports `baton` never loads the test kit (it imports cloudflare:test).
  if (!file.startsWith("src/testing/")) {
    for (const { target } of edges) {
      if (target.startsWith("src/testing/")) {
        problems.push(`${file} imports ${target}: only tests import the test kit (baton/testing)`);
      }
    }
  }
  const from = layerOf(file);
  if (from === -1) continue;
  for (const { target, runtime } of edges) {
    const to = layerOf(target);
    if (to > from) {
      problems.push(
        `${file} (${LAYERS[from][1]}) imports ${target} (${LAYERS[to][1]})${runtime ? "" : " as a type"}: a lower layer never imports a higher one`,
      );
    }
  }
}

// Runtime import circles: strongly connected components of more than one file (Tarjan).
let index = 0;
const stack = [];
const state = new Map();
function visit(file) {
  const node = { index, low: index, onStack: true };
  state.set(file, node);
  index++;
  stack.push(file);
  for (const next of graph.get(file) ?? []) {
    if (!graph.has(next)) continue;
    const seen = state.get(next);
    if (!seen) {
      visit(next);
      node.low = Math.min(node.low, state.get(next).low);
    } else if (seen.onStack) node.low = Math.min(node.low, seen.index);
  }
  if (node.low === node.index) {
    const component = [];
    let member;
    do {
      member = stack.pop();
      state.get(member).onStack = false;
      component.push(member);
    } while (member !== file);
    const selfLoop = (graph.get(file) ?? []).includes(file);
    if (component.length > 1 || selfLoop) {
      problems.push(`runtime import circle among: ${component.reverse().join(", ")}`);
    }
  }
}
for (const file of graph.keys()) if (!state.has(file)) visit(file);

for (const entry of PORTABLE_ENTRIES) {
  const seen = new Set([entry]);
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.shift();
    if (workerOnly.has(file)) {
      problems.push(
        `${entry} (browsers and Node) reaches ${file}, which imports a cloudflare: module`,
      );
    }
    for (const next of graph.get(file) ?? []) {
      if (!seen.has(next)) {
        seen.add(next);
        queue.push(next);
      }
    }
  }
}

// The dashboard's page renders data as text: nothing in it parses a string as HTML.
const HTML_SINKS =
  /\b(innerHTML|outerHTML|insertAdjacentHTML|createContextualFragment|DOMParser|document\.write)\b/;
for (const file of files.filter((f) => f.startsWith("src/dashboard/ui/"))) {
  const sink = HTML_SINKS.exec(readFileSync(join(root, file), "utf8"));
  if (sink) problems.push(`${file} uses ${sink[1]}: build elements with dom.ts's h() (text only)`);
}

if (problems.length > 0) {
  console.error(`check-structure: ${problems.length} problem(s)`);
  for (const problem of problems) console.error(`- ${problem}`);
  process.exit(1);
}
console.log(
  `check-structure: ${files.length} files, none over ${MAX_LINES} lines, layers hold, no runtime import circle`,
);
