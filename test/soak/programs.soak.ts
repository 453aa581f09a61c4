/**
 * The soak: random workflow programs under chaos, each checked against the reference
 * interpreter (see test/soak/program.ts, driver.ts; run by scripts/soak.mjs).
 */
import { env } from "cloudflare:test";
import { expect, it } from "vitest";
import { type ProgramReport, runProgram } from "./driver.ts";
import { programs } from "./program.ts";

interface SoakOptions {
  seed?: number;
  programs?: number;
  concurrency?: number;
  /** Only this program of the run (its index), to replay one failure. */
  program?: number;
  boundMs?: number;
  only?: "programs" | "locks";
}

const options = JSON.parse((env as unknown as { SOAK: string }).SOAK) as SoakOptions;

it.skipIf(options.only === "locks")("random workflow programs under chaos", async () => {
  const seed = options.seed ?? 1;
  const count = options.programs ?? 1_000;
  const all = programs(seed, count);
  const chosen =
    options.program === undefined ? all : all.filter((p) => p.index === options.program);
  const concurrency = Math.max(1, options.concurrency ?? 100);
  const boundMs = options.boundMs ?? 120_000;
  const tag = crypto.randomUUID().slice(0, 8);
  const began = Date.now();
  const reports: ProgramReport[] = [];
  const queue = [...chosen];
  let inFlight = 0;
  let peak = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, queue.length) }, async () => {
      for (let p = queue.shift(); p; p = queue.shift()) {
        peak = Math.max(peak, ++inFlight);
        const report = await runProgram(p, `soak-${seed}-${p.index}-${tag}`, boundMs);
        inFlight--;
        reports.push(report);
        if (report.problems.length > 0) {
          console.log(
            `soak: program ${p.index} of seed ${seed} failed (replay: npm run soak -- --seed ${seed} --programs ${count} --program ${p.index})\n` +
              `  ${report.problems.join("\n  ")}\n  program: ${JSON.stringify(p)}`,
          );
        }
      }
    }),
  );
  const sum = (k: "lost" | "duplicated" | "mismatched" | "stuck") =>
    reports.reduce((n, r) => n + r[k], 0);
  const seconds = ((Date.now() - began) / 1000).toFixed(1);
  const durations = reports.map((r) => r.ms).sort((a, b) => a - b);
  const p50 = durations[Math.floor(durations.length / 2)] ?? 0;
  const chaos: Record<string, number> = {};
  for (const r of reports)
    for (const [k, n] of Object.entries(r.chaos)) chaos[k] = (chaos[k] ?? 0) + n;
  const injected = Object.entries(chaos)
    .sort()
    .map(([k, n]) => `${n} ${k}`)
    .join(", ");
  console.log(
    `soak: ${reports.length} programs, seed ${seed}, ${sum("lost")} lost, ${sum("duplicated")} duplicated, ` +
      `${sum("mismatched")} mismatched, ${sum("stuck")} stuck, ${seconds} s ` +
      `(${peak} concurrent, program p50 ${p50} ms; faults injected: ${injected || "none"})`,
  );
  expect(reports.filter((r) => r.problems.length > 0).map((r) => r.id)).toEqual([]);
  // A soak whose chaos never happened proves nothing (a run of a few programs may see little).
  if (chosen.length >= 50) {
    for (const kind of ["abort", "crash", "evict", "alarm", "late-alarm", "jump"]) {
      expect(chaos[kind] ?? 0, `faults of kind ${kind} injected`).toBeGreaterThan(0);
    }
  }
});
