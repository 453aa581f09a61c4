import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    projects: [
      {
        // Everything inside workerd: the actors, the gateway, the cross-Worker example.
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./test/wrangler.toml" },
            miniflare: {
              // The orders Worker of examples/cross-worker, bundled by
              // scripts/build-test-workers.mjs, bound to this Worker's Platform entrypoint.
              workers: [
                {
                  name: "baton-orders",
                  modules: true,
                  scriptPath: "./test/.build/orders.mjs",
                  compatibilityDate: "2026-11-01",
                  // The Worker under test runs as "vitest-plugin-runner-<project name>" (the
                  // plugin's naming; auxiliary Workers' bindings to it are not rewritten for us).
                  serviceBindings: {
                    PLATFORM: { name: "vitest-plugin-runner-baton", entrypoint: "Platform" },
                  },
                },
              ],
            },
          }),
        ],
        test: {
          name: "baton",
          include: ["test/**/*.test.ts"],
          testTimeout: 30_000,
        },
      },
      {
        // From Node, against a real `wrangler dev` (started and stopped by the test).
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.e2e.ts"],
          environment: "node",
          testTimeout: 60_000,
        },
      },
      {
        // The dashboard in headless Chromium (playwright-core), against two `wrangler dev`s.
        test: {
          name: "browser",
          include: ["test/browser/**/*.browser.ts"],
          environment: "node",
          testTimeout: 60_000,
          // A page updates when its data arrives: give it time on a busy machine.
          expect: { poll: { timeout: 10_000, interval: 50 } },
        },
      },
    ],
  },
});
