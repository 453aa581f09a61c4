/**
 * `baton/testing`: test your own workflows inside workerd, against your real Execution actor —
 * time travel, step mocks, crashes and replays, replay tests of recorded journals. For vitest
 * tests with `@cloudflare/vitest-plugin` only: it imports `cloudflare:test`, which exists
 * nowhere else, so it cannot load in a deployed Worker.
 *
 * @example
 * ```ts
 * import { env } from "cloudflare:test";
 * import { testExecutions } from "baton/testing";
 *
 * const t = testExecutions(env.Signups).execution(signup);
 * await t.start({ email: "ada@example.com" });
 * await t.advance("7 days");
 * ```
 * @module
 */
export { type StatusChange, type StepMock, TestExecution, type Waiting } from "./execution.ts";
export type { RecordedJournal } from "./journal.ts";
export { type ReplayReport, type RunOptions, TestKit, testExecutions } from "./kit.ts";
