#!/usr/bin/env node
/**
 * Bundles the auxiliary Workers the tests run beside the main test Worker (the Workers vitest
 * integration loads auxiliary Workers as JavaScript). Output: test/.build/*.mjs (git-ignored).
 */
import { build } from "esbuild";

await build({
  entryPoints: { orders: "examples/cross-worker/orders/worker.ts" },
  outdir: "test/.build",
  outExtension: { ".js": ".mjs" },
  bundle: true,
  format: "esm",
  platform: "neutral",
  target: "es2023",
  external: ["cloudflare:*"],
  logLevel: "warning",
});
