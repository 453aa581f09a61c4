import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

/**
 * The reliability soak (scripts/soak.mjs runs it: `npm run soak`, `npm run soak -- --quick`).
 * Its options reach the tests inside workerd as the SOAK binding (a JSON string).
 */
export default defineConfig({
  test: {
    projects: [
      {
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./test/soak/wrangler.toml" },
            miniflare: { bindings: { SOAK: process.env.SOAK ?? "{}" } },
          }),
        ],
        test: {
          name: "soak",
          include: ["test/soak/**/*.soak.ts"],
          // A full soak runs for minutes; each file checks its own bound and reports stuck work.
          testTimeout: 60 * 60_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
