#!/usr/bin/env node
/**
 * `npm run build`: the package's dist/ — ESM JavaScript (without comments), .d.ts declarations
 * (with their JSDoc) and source maps of src/ and actors/, compiled by tsc (tsconfig.build.json). tsc rewrites the `.ts` import paths of
 * the JavaScript to `.js`; declarations keep them, which a user's tsc would refuse (TS5097), so
 * they are rewritten here too.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");
rmSync(dist, { recursive: true, force: true });
// The dashboard's page, bundled into a module of strings that tsc then compiles like the rest.
execFileSync(process.execPath, [join(root, "scripts", "build-dashboard.mjs"), "--force"], {
  stdio: "inherit",
});
const tsc = (...args) =>
  execFileSync(join(root, "node_modules", ".bin", "tsc"), ["-p", "tsconfig.build.json", ...args], {
    cwd: root,
    stdio: "inherit",
  });
// JavaScript without comments (users' bundles stay small; the source maps keep the sources),
// then the declarations with their JSDoc.
tsc("--removeComments", "--declaration", "false", "--declarationMap", "false");
tsc("--emitDeclarationOnly");

/** `from "./x.ts"` and `import("./x.ts")` → `.js`, for relative paths only. */
const TS_PATH = /((?:from|import)\s*\(?\s*["'])(\.{1,2}\/[^"']+)\.ts(["'])/g;
let rewritten = 0;
function walk(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path);
    else if (name.endsWith(".d.ts")) {
      const text = readFileSync(path, "utf8");
      const out = text.replace(TS_PATH, "$1$2.js$3");
      if (out !== text) {
        writeFileSync(path, out);
        rewritten++;
      }
    }
  }
}
walk(dist);
chmodSync(join(dist, "src", "cli", "baton.js"), 0o755);
console.log(`build: dist/ written (${rewritten} declaration files had .ts paths rewritten)`);
