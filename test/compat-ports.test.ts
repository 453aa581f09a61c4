/**
 * Three public Cloudflare Workflows programs (test/ports/), ported with only their imports (and
 * wrangler.toml) changed, run through their own fetch handlers: their Workflow bindings are the
 * classes themselves, served by Baton. Each test keeps the original's intent: outputs, retries,
 * sleeps, waits resumed by events, batches.
 */
import { createExecutionContext, env } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import { testExecutions } from "../src/testing/index.ts";
import VitestExample, { TestLongWorkflow, TestWorkflow } from "./ports/vitest-workflows.ts";
import Fixture, { Demo, Demo2, Demo3 } from "./ports/workers-sdk-fixture.ts";
import Starter, { MyWorkflow } from "./ports/workflows-starter.ts";

const kit = testExecutions(env.Executions);
afterEach(() => {
  kit.dispose();
  vi.restoreAllMocks();
});

const fixture = () => new Fixture(createExecutionContext(), env as never);
const call = async (
  handler: { fetch(r: Request): Promise<Response> },
  path: string,
  body?: unknown,
) =>
  (
    await handler.fetch(
      new Request(
        `http://fixture${path}`,
        body === undefined ? {} : { method: "POST", body: JSON.stringify(body) },
      ),
    )
  ).json() as Promise<Record<string, unknown>>;

describe("workers-sdk fixtures/workflow", () => {
  it("Demo: a step, a 1 second sleep, a step; the payload (default {}) is the output", async () => {
    const t = kit.execution(Demo, { id: "Demo:demo-1" });
    const created = await call(fixture(), "/create?workflowName=demo-1");
    expect(created.status).toBe("waiting"); // asleep
    await t.advance("1 second");
    expect(await call(fixture(), "/?workflowName=demo-1")).toMatchObject({
      status: "complete",
      output: {},
    });
    expect((await t.journal()).map((s) => [s.name, s.status])).toEqual([
      ["First step", "completed"],
      ["Wait", "completed"],
      ["Second step", "completed"],
    ]);
  });

  it("Demo: create with an id that exists is refused; get of an unknown id throws", async () => {
    kit.execution(Demo, { id: "Demo:demo-dup" });
    await call(fixture(), "/create?workflowName=demo-dup");
    await expect(call(fixture(), "/create?workflowName=demo-dup")).rejects.toThrow(
      /instance\.already_exists.*demo-dup/,
    );
    await expect(call(fixture(), "/?workflowName=never-made")).rejects.toThrow(
      /instance\.not_found/,
    );
  });

  it("Demo2: waits for event-1, which /sendEvent delivers; then completes", async () => {
    const t = kit.execution(Demo2, { id: "Demo2:demo2-1" });
    expect(await call(fixture(), "/createDemo2?workflowName=demo2-1")).toMatchObject({
      status: "waiting",
    });
    expect(await call(fixture(), "/get2?workflowName=demo2-1")).toMatchObject({
      status: "waiting",
    });
    const after = await call(fixture(), "/sendEvent?workflowName=demo2-1", { hello: "world" });
    await t.settle();
    expect(["running", "complete"]).toContain(after.status);
    expect(await call(fixture(), "/get2?workflowName=demo2-1")).toMatchObject({
      status: "complete",
      output: {},
    });
  });

  it("Demo3: an Error is retried 3 times (limit 3, 100 ms exponential)", async () => {
    const t = kit.execution(Demo3, { id: "Demo3:demo3-retry" });
    await call(fixture(), "/createDemo3?workflowName=demo3-retry&doRetry=true&errorMessage=boom");
    await t.advance("100 ms");
    await t.advance("200 ms");
    await t.advance("400 ms");
    expect(await call(fixture(), "/get3?workflowName=demo3-retry")).toMatchObject({
      status: "complete",
      output: "The step was retried 3 times",
    });
    const [step] = await t.journal();
    expect(step?.attempts).toBe(4);
    expect(step?.failedAttempts?.map((a) => a.error.message)).toEqual([
      "boom",
      "boom",
      "boom",
      "boom",
    ]);
  });

  it("Demo3: cloudflare:workflows' own NonRetryableError stops retries at once", async () => {
    const t = kit.execution(Demo3, { id: "Demo3:demo3-fatal" });
    await call(fixture(), "/createDemo3?workflowName=demo3-fatal&doRetry=false&errorMessage=fatal");
    await t.settle();
    expect(await call(fixture(), "/get3?workflowName=demo3-fatal")).toMatchObject({
      status: "complete",
      output: "The step was retried 0 times",
    });
    const [step] = await t.journal();
    expect(step).toMatchObject({
      attempts: 1,
      status: "failed",
      error: { name: "NonRetryableError", nonRetryable: true },
    });
  });

  it("createBatch makes batch-1 and batch-2 with their params", async () => {
    const one = kit.execution(Demo, { id: "Demo:batch-1" });
    const two = kit.execution(Demo, { id: "Demo:batch-2" });
    expect(await call(fixture(), "/createBatch")).toEqual(["batch-1", "batch-2"]);
    await one.advance("1 second");
    await two.advance("1 second");
    expect(await call(fixture(), "/?workflowName=batch-1")).toMatchObject({
      status: "complete",
      output: "1",
    });
    expect(await call(fixture(), "/?workflowName=batch-2")).toMatchObject({
      status: "complete",
      output: "2",
    });
    // Again: both exist, so the array form skips them (as Workflows does).
    expect(await call(fixture(), "/createBatch")).toEqual([]);
  });
});

describe("workflows-starter", () => {
  it("creates an instance with a random id, runs its steps, its 1 minute sleep and a retried call", async () => {
    vi.spyOn(globalThis, "fetch").mockImplementation(async () =>
      Response.json({ result: { ipv4_cidrs: ["173.245.48.0/20"] }, success: true }),
    );
    // The "might fail" step fails once (Math.random() > 0.5), then succeeds.
    vi.spyOn(Math, "random").mockReturnValueOnce(0.9).mockReturnValue(0.1);
    const created = (await Starter.fetch(new Request("http://starter/"), env as never).then((r) =>
      r.json(),
    )) as { id: string; details: { status: string } };
    expect(created.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(["running", "waiting"]).toContain(created.details.status);
    const t = kit.execution(MyWorkflow, { id: `MyWorkflow:${created.id}` });
    await t.settle();
    expect((await t.waitingFor())[0]).toMatchObject({ kind: "sleep", step: "wait on something" });
    await t.advance("1 minute");
    expect((await t.waitingFor())[0]).toMatchObject({ kind: "retry" });
    await t.advance("5 seconds");
    const status = (await Starter.fetch(
      new Request(`http://starter/?instanceId=${created.id}`),
      env as never,
    ).then((r) => r.json())) as { status: { status: string } };
    expect(status.status).toMatchObject({ status: "complete", output: null });
    const journal = await t.journal();
    expect(journal.map((s) => [s.name, s.attempts])).toEqual([
      ["my first step", 1],
      ["some other step", 1],
      ["wait on something", 1],
      ["make a call to write that could maybe, just might, fail", 2],
    ]);
    // The first step returned the event itself: the params ({}), the instance id, the workflow.
    expect(journal[0]?.output).toMatchObject({
      inputParams: { payload: {}, instanceId: created.id, workflowName: "MyWorkflow" },
    });
    expect(journal[1]?.output).toMatchObject({ success: true });
  });
});

describe("vitest-pool-workers-examples/workflows", () => {
  const handler = VitestExample as unknown as { fetch(r: Request, e: unknown): Promise<Response> };
  const get = async (path: string) =>
    (await handler.fetch(new Request(`http://example${path}`), env)).json() as Promise<
      Record<string, unknown>
    >;

  it("TestWorkflow completes with its output, read through props.executions", async () => {
    const { id } = (await get("/")) as { id: string };
    const t = kit.execution(TestWorkflow, { id: `TestWorkflow:${id}` });
    await t.settle();
    expect(await get(`/?id=${id}`)).toMatchObject({ status: "complete", output: "test-workflow" });
  });

  it("TestLongWorkflow: sleeps (one name twice), a step with a timeout, 8 hours, then completes", async () => {
    const { id } = (await get("/long-workflow")) as { id: string };
    const t = kit.execution(TestLongWorkflow, { id: `TestLongWorkflow:${id}` });
    await t.settle();
    await t.advance("10 seconds");
    await t.advance("8 hours");
    await t.advance("5 seconds");
    expect(await t.result()).toEqual({ ok: true, status: "completed", value: "test-workflow" });
    const journal = await t.journal();
    expect(journal.map((s) => s.name)).toEqual([
      "sleep for a while",
      "my step",
      "sleep for a day",
      "sleep for a while",
    ]);
  });

  it("createBatch with two generated ids and 321", async () => {
    const { ids } = (await get("/long-workflow-batch")) as { ids: string[] };
    expect(ids).toHaveLength(3);
    expect(ids[1]).toBe("321");
    expect(new Set(ids).size).toBe(3);
    for (const id of ids) {
      const instance = await env.TEST_LONG_WORKFLOW.get(id);
      expect(["running", "waiting"]).toContain((await instance.status()).status);
    }
  });

  it("through the service binding: an instance's methods and subscribe() cross Workers RPC", async () => {
    const instance = await env.TEST_WORKFLOW.create({ id: "over-rpc" });
    expect(instance.id).toBe("over-rpc");
    const t = kit.execution(TestWorkflow, { id: "TestWorkflow:over-rpc" });
    await t.settle();
    expect(await instance.status()).toMatchObject({ status: "complete", output: "test-workflow" });
    const sub = await (
      instance as unknown as {
        subscribe(): Promise<{ next(): Promise<IteratorResult<{ type: string }>> }>;
      }
    ).subscribe();
    const types: string[] = [];
    for (let r = await sub.next(); !r.done; r = await sub.next()) types.push(r.value.type);
    expect(types[0]).toBe("workflow_started");
    expect(types.at(-1)).toBe("workflow_completed");
  });
});
