/**
 * The Worker the soak runs in (inside workerd, through @cloudflare/vitest-plugin; see
 * vitest.soak.config.ts and scripts/soak.mjs): the soak's Execution actor and Effects object, and
 * the lock soak's actors.
 */
export { LockMonitor, SoakLocks } from "./locks.ts";
export { Effects, SoakExecutions } from "./workflow.ts";

export default {
  fetch(): Response {
    return new Response("baton soak worker", { status: 404 });
  },
};
