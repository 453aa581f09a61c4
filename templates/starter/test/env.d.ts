import type { Env as WorkerEnv } from "../src/index.ts";

// The `env` of `cloudflare:test` is this Worker's env.
declare global {
  namespace Cloudflare {
    interface Env extends WorkerEnv {}
  }
}
