#!/usr/bin/env node
/**
 * Adds the platform-specific optional packages that `npm install` left out of package-lock.json.
 *
 * Why: the npm registry mirror these machines use does not serve the macOS and Windows builds
 * of some packages (workerd, biome). npm then writes a lockfile without those entries, and
 * `npm ci` (which CI runs) rejects it: "Missing: @cloudflare/workerd-darwin-64@ from lock file".
 * The entries added here carry name, version, os and cpu — enough for `npm ci` to skip them on
 * Linux and for npm on macOS or Windows to fetch the right build by version.
 *
 * Run it after changing dependencies: `npm run lockfile`. It is idempotent. With `--check` it
 * changes nothing and exits 1 if entries are missing (part of `npm run check`).
 */
import { readFileSync, writeFileSync } from "node:fs";

const path = new URL("../package-lock.json", import.meta.url);
const lock = JSON.parse(readFileSync(path, "utf8"));
const packages = lock.packages;

const OS = {
  darwin: "darwin",
  linux: "linux",
  win32: "win32",
  windows: "win32",
  android: "android",
  freebsd: "freebsd",
};
const CPU = { x64: "x64", 64: "x64", arm64: "arm64", arm: "arm", ia32: "ia32" };

function platformOf(name) {
  const match =
    /-(darwin|linux|win32|windows|android|freebsd)-(x64|64|arm64|arm|ia32)(-musl)?$/.exec(name);
  if (!match) return undefined;
  const entry = { os: [OS[match[1]]], cpu: [CPU[match[2]]] };
  if (match[1] === "linux") entry.libc = [match[3] ? "musl" : "glibc"];
  return entry;
}

function resolvedPath(parentPath, name) {
  // Node's lookup: parent's own node_modules, then each ancestor's, then the root's.
  let dir = parentPath;
  for (;;) {
    const candidate = `${dir ? `${dir}/` : ""}node_modules/${name}`;
    if (packages[candidate]) return candidate;
    if (!dir) return undefined;
    const cut = dir.lastIndexOf("/node_modules/");
    dir = cut === -1 ? "" : dir.slice(0, cut);
  }
}

let added = 0;
for (const [parentPath, entry] of Object.entries(packages)) {
  const optional = entry.optionalDependencies;
  if (!optional) continue;
  // Where npm placed this parent's platform packages that it did record.
  const placed = Object.keys(optional)
    .map((name) => resolvedPath(parentPath, name))
    .find(
      (p) =>
        p !== undefined &&
        packages[p].version === optional[p.slice(p.lastIndexOf("node_modules/") + 13)],
    );
  for (const [name, range] of Object.entries(optional)) {
    if (
      resolvedPath(parentPath, name) &&
      packages[resolvedPath(parentPath, name)].version === range
    )
      continue;
    const platform = platformOf(name);
    if (!platform) continue; // not a platform build: leave it to npm
    if (!/^\d+\.\d+\.\d+(-[\w.]+)?$/.test(range)) {
      throw new Error(`${parentPath} wants ${name}@${range}: only exact versions can be completed`);
    }
    const base = placed
      ? placed.slice(0, placed.lastIndexOf("node_modules/"))
      : `${parentPath ? `${parentPath}/` : ""}`;
    const target = `${base}node_modules/${name}`;
    if (packages[target]) throw new Error(`${target} exists with another version; resolve by hand`);
    packages[target] = {
      version: range,
      ...platform,
      dev: entry.dev === true || undefined,
      optional: true,
    };
    added++;
  }
}

if (process.argv.includes("--check")) {
  if (added > 0) {
    console.error(
      `package-lock.json lacks ${added} platform package entries: run \`npm run lockfile\`.`,
    );
    process.exit(1);
  }
  process.exit(0);
}

lock.packages = Object.fromEntries(
  Object.entries(packages).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a < b ? -1 : 1)),
);
writeFileSync(path, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`package-lock.json: added ${added} platform package entr${added === 1 ? "y" : "ies"}.`);
