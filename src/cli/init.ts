import { copyFile, mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The starter's files (templates/starter), copied one by one so nothing else in that folder
 * (a local `node_modules`, `.wrangler`, `.dev.vars`) reaches a new project. npm does not pack
 * files named `.gitignore`: the starter keeps it as `gitignore`, renamed on the way.
 */
export const STARTER_FILES = [
  "README.md",
  "gitignore",
  "package.json",
  "src/index.ts",
  "test/env.d.ts",
  "test/journals/signup.json",
  "test/signup.test.ts",
  "test/workflow.test.ts",
  "tsconfig.json",
  "vitest.config.ts",
  "wrangler.toml",
] as const;

/** The root of the installed `baton` package (the folder of its package.json). */
async function packageRoot(): Promise<{ root: string; version: string }> {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(await readFile(join(dir, "package.json"), "utf8")) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === "baton") return { root: dir, version: pkg.version ?? "0.0.0" };
    } catch {
      // not here
    }
    const up = dirname(dir);
    if (up === dir) throw new Error("baton init: cannot find the baton package's own files.");
    dir = up;
  }
}

/**
 * Creates a new project in `directory` from the starter (templates/starter): a workflow, its
 * Worker, wrangler.toml, a test in workerd. `options.baton` is the dependency spec of baton
 * (default: `^<this version>`; a tarball path for a local build). Returns the absolute path.
 *
 * @throws Error if `directory` exists and is not empty.
 */
export async function init(directory: string, options: { baton?: string } = {}): Promise<string> {
  const target = resolve(directory);
  const existing = await readdir(target).catch(() => [] as string[]);
  if (existing.length > 0) {
    throw new Error(`baton init: ${target} is not empty; choose a new directory.`);
  }
  const { root, version } = await packageRoot();
  await mkdir(target, { recursive: true });
  for (const file of STARTER_FILES) {
    const to = join(target, file === "gitignore" ? ".gitignore" : file);
    await mkdir(dirname(to), { recursive: true });
    await copyFile(join(root, "templates", "starter", file), to);
  }
  const pkgPath = join(target, "package.json");
  const pkg = JSON.parse(await readFile(pkgPath, "utf8")) as {
    name: string;
    dependencies: Record<string, string>;
  };
  // A Worker name: lowercase letters, digits and dashes, not starting or ending with a dash.
  pkg.name =
    basename(target)
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, "-")
      .slice(0, 63)
      .replace(/^-+|-+$/g, "") || "baton-app";
  let spec = options.baton ?? `^${version}`;
  // A local tarball or folder, given relative to where init runs: an absolute file: spec, so it
  // resolves the same from the new project.
  const local = spec.startsWith("file:") ? spec.slice("file:".length) : spec;
  if (/^(\.{1,2}([/\\]|$)|[/\\]|[A-Za-z]:[/\\])/.test(local) || /\.(tgz|tar\.gz)$/.test(local)) {
    spec = `file:${resolve(local)}`;
  }
  pkg.dependencies.baton = spec;
  await writeFile(pkgPath, `${JSON.stringify(pkg, null, 2)}\n`);
  const toml = join(target, "wrangler.toml");
  const text = await readFile(toml, "utf8");
  await writeFile(toml, text.replace(/^name = ".*"$/m, `name = "${pkg.name}"`));
  return target;
}
