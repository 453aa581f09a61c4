/**
 * Type-checks every `ts` code block of README.md and docs/*.md against Baton's sources, so the
 * docs cannot rot (part of `npm run check`).
 *
 * Each document's blocks become modules in `.docs-check/<document>/`: a block whose first line
 * is a path comment (`// src/worker.ts`) is written to that path, so blocks of one document can
 * import each other as a reader's project would; others are `block-<n>.ts`. Every directory also
 * gets the README's quick start as `src/index.ts`, which the guides build on. Fragments are
 * completed, not rewritten: a block whose first line is `// in a route …` becomes the body of a
 * function returning a Response, one starting `// in an actor …` the body of a method of an
 * `Actor` subclass. Names a fragment uses without
 * defining (`env`, `step`, `ctx`, sample workflows, the reader's own functions) are declared in
 * `scripts/docs-check/prelude.d.ts`. `baton`, `baton/client`, `baton/testing` and `baton/workflows` resolve to
 * `src/index.ts`, `src/remote/index.ts`, `src/testing/index.ts` and `src/compat/index.ts`, the sources of the package's
 * entry points.
 *
 *   node scripts/check-docs.mjs           # check; on failure, prints each error with its block
 *   node scripts/check-docs.mjs --keep    # and keep .docs-check/ to look at
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, ".docs-check");
const keep = process.argv.includes("--keep");

const documents = [
  "README.md",
  ...readdirSync(join(root, "docs"))
    .filter((name) => name.endsWith(".md"))
    .map((name) => `docs/${name}`),
];

/** The ```ts blocks of a markdown text, with the line each starts on. */
function blocks(text) {
  const found = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    if (!/^```(ts|typescript)\s*$/.test(lines[i])) continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !/^```\s*$/.test(lines[end])) end++;
    if (end === lines.length) throw new Error(`unclosed code block at line ${i + 1}`);
    found.push({ line: start + 1, code: lines.slice(start, end).join("\n") });
    i = end;
  }
  return found;
}

/**
 * Whether a fragment needs a function or a method around it: its first line says where it goes,
 * `// in a route …` (the body of a fetch handler: it may `return` a Response) or
 * `// in an actor …` (the body of a method of an `Actor` subclass: it may use `this`).
 */
function needs(code) {
  const first = code.split("\n")[0] ?? "";
  return { returns: /^\/\/ in a route\b/.test(first), self: /^\/\/ in an actor\b/.test(first) };
}

/** The block as a module: imports and exports kept at the top, the rest completed if needed. */
function moduleOf(code) {
  const { returns, self } = needs(code);
  if (!returns && !self) return `${code}\nexport {};\n`;
  const lines = code.split("\n");
  const head = [];
  const body = [];
  let inImport = false;
  for (const line of lines) {
    if (inImport || /^import\b/.test(line)) {
      head.push(line);
      inImport = !/from\s+["'][^"']+["'];?\s*(\/\/.*)?$/.test(line) && !/^import\s+["']/.test(line);
    } else body.push(line);
  }
  const indented = body.map((line) => `    ${line}`).join("\n");
  const wrapped = self
    ? `import { Actor as DocsActor } from "baton";\nexport class DocsBlock extends DocsActor<Env, DocsTimers> {\n  async block() {\n${indented}\n  }\n}`
    : `export async function block(): Promise<Response | undefined> {\n${indented}\n}`;
  return `${head.join("\n")}\n${wrapped}\n`;
}

rmSync(out, { recursive: true, force: true });
const origin = new Map(); // generated file → { document, line, offset }
const readme = blocks(readFileSync(join(root, "README.md"), "utf8"));
const quickStart = readme.find((b) =>
  /export class Executions extends ExecutionActor/.test(b.code),
);
if (!quickStart) throw new Error("README.md: the quick start's ts block was not found");
let count = 0;
for (const document of documents) {
  const dir = join(out, document.replace(/\.md$/, "").replace(/[/.]/g, "-"));
  const found = blocks(readFileSync(join(root, document), "utf8"));
  if (found.length === 0) continue;
  mkdirSync(join(dir, "src"), { recursive: true });
  if (document !== "README.md") {
    writeFileSync(join(dir, "src/index.ts"), moduleOf(quickStart.code));
    origin.set(join(dir, "src/index.ts"), { document: "README.md", line: quickStart.line });
  }
  found.forEach((block, n) => {
    const named = /^\/\/ ([\w./-]+\.ts)\b/.exec(block.code.split("\n")[0] ?? "");
    const file = join(dir, named?.[1] ?? `block-${n + 1}.ts`);
    if (origin.has(file) && origin.get(file).document === document) {
      throw new Error(`${document}:${block.line}: a second block names ${named?.[1]}`);
    }
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, moduleOf(block.code));
    // A JSON file the block imports (a recorded journal): an empty document stands in for it.
    for (const [, json] of block.code.matchAll(/from\s+"(\.{1,2}\/[^"]+\.json)"/g)) {
      const path = join(dirname(file), json);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, "{}\n");
    }
    origin.set(file, { document, line: block.line });
    count++;
  });
}

writeFileSync(
  join(out, "tsconfig.json"),
  JSON.stringify(
    {
      extends: "../tsconfig.json",
      compilerOptions: {
        paths: {
          baton: ["../src/index.ts"],
          "baton/client": ["../src/remote/index.ts"],
          "baton/testing": ["../src/testing/index.ts"],
          "baton/workflows": ["../src/compat/index.ts"],
        },
        noImplicitReturns: false,
        resolveJsonModule: true,
      },
      include: ["**/*.ts", "../scripts/docs-check/prelude.d.ts"],
      exclude: [],
    },
    null,
    2,
  ),
);

const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
try {
  execFileSync(
    process.execPath,
    [tsc, "--noEmit", "-p", join(out, "tsconfig.json"), "--pretty", "false"],
    {
      cwd: root,
      encoding: "utf8",
      stdio: "pipe",
    },
  );
} catch (error) {
  const report = `${error.stdout ?? ""}${error.stderr ?? ""}`;
  const lines = report.split("\n").filter(Boolean);
  console.error(`check-docs: the docs' code blocks do not type-check:\n`);
  for (const line of lines) {
    const match = /^(.+?)\((\d+),(\d+)\): (.*)$/.exec(line);
    const file = match && join(root, match[1]);
    const where = file && origin.get(file);
    if (match && where) {
      const generated = relative(root, file);
      console.error(
        `  ${where.document} (block at line ${where.line}; ${generated}:${match[2]}): ${match[4]}`,
      );
    } else console.error(`  ${line}`);
  }
  console.error(
    `\nRun \`node scripts/check-docs.mjs --keep\` and open .docs-check/ to see the modules.`,
  );
  process.exit(1);
}
if (!keep) rmSync(out, { recursive: true, force: true });
console.log(`check-docs: ${count} code blocks in ${documents.length} documents type-check.`);
