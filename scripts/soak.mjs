#!/usr/bin/env node
/**
 * The reliability soak: random workflow programs under chaos and the lock soak, inside workerd
 * (vitest.soak.config.ts). `npm run soak` runs the full soak; `npm run soak -- --quick` the short
 * one `npm test` runs.
 *
 *   --quick            120 programs and 1,000 lock grants (about a minute)
 *   --seed S           the programs (and lock schedule) of seed S; default: a new random seed
 *                      (--quick: seed 1, so CI runs the same programs every time)
 *   --programs N       how many programs (default 1,000)
 *   --concurrency C    programs in flight at once (default 100)
 *   --program K        only program K of the seed's N (replays one failure)
 *   --only programs|locks
 *   --grants G, --contenders C   the lock soak's size (default 10,000 grants, 50 contenders)
 *
 * Each part prints one line (`soak: ...`, `lock soak: ...`); a failure prints its seed and
 * program. The lines are repeated at the end.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    seed: { type: "string" },
    programs: { type: "string" },
    concurrency: { type: "string" },
    program: { type: "string" },
    only: { type: "string" },
    grants: { type: "string" },
    contenders: { type: "string" },
  },
});

const int = (name, text) => {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) {
    console.error(`soak: --${name} must be a whole number, got "${text}"`);
    process.exit(2);
  }
  return n;
};
if (values.only !== undefined && values.only !== "programs" && values.only !== "locks") {
  console.error(`soak: --only must be "programs" or "locks", got "${values.only}"`);
  process.exit(2);
}
const seed = int("seed", values.seed) ?? (values.quick ? 1 : Math.floor(Math.random() * 2 ** 31));
const options = {
  seed,
  programs: int("programs", values.programs) ?? (values.quick ? 120 : 1_000),
  concurrency: int("concurrency", values.concurrency) ?? 100,
  program: int("program", values.program),
  only: values.only,
  grants: int("grants", values.grants) ?? (values.quick ? 1_000 : 10_000),
  contenders: int("contenders", values.contenders) ?? 50,
};

const root = fileURLToPath(new URL("..", import.meta.url));
const vitest = fileURLToPath(new URL("../node_modules/vitest/vitest.mjs", import.meta.url));
const child = spawn(process.execPath, [vitest, "run", "-c", "vitest.soak.config.ts"], {
  cwd: root,
  env: { ...process.env, SOAK: JSON.stringify(options) },
  stdio: ["ignore", "pipe", "pipe"],
});
const lines = [];
const collect = (stream, out) => {
  let rest = "";
  stream.on("data", (chunk) => {
    out.write(chunk);
    rest += chunk;
    const parts = rest.split("\n");
    rest = parts.pop() ?? "";
    for (const line of parts) {
      // biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI colour codes of the reporter
      const text = line.replace(/\x1b\[[0-9;]*m/g, "").trim();
      if (/^(lock )?soak: \d/.test(text)) lines.push(text);
    }
  });
};
collect(child.stdout, process.stdout);
collect(child.stderr, process.stderr);
child.on("exit", (code) => {
  console.log(`\n${lines.join("\n") || "soak: no summary line (see the output above)"}`);
  process.exit(code ?? 1);
});
