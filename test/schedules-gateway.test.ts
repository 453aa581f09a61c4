import { env, SELF } from "cloudflare:test";
import { newWebSocketRpcSession, type RpcStub } from "capnweb";
import { describe, expect, it } from "vitest";
import { schedules } from "../src/index.ts";
import { uniqueName } from "./helpers.ts";
import type { GreetApi, TestApi } from "./worker.ts";
import { scheduled } from "./workflows.ts";

const BASE = "https://baton.test";
const token = { Authorization: "Bearer test-token" };

async function ws<T extends object = TestApi>(path: string, headers: Record<string, string>) {
  const response = await SELF.fetch(`${BASE}${path}`, {
    headers: { Upgrade: "websocket", ...headers },
  });
  expect(response.status).toBe(101);
  const socket = response.webSocket as WebSocket;
  socket.accept();
  return newWebSocketRpcSession<T>(socket) as unknown as RpcStub<T>;
}

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  return promise.then(
    () => "resolved",
    (error: unknown) => (error as { code?: string }).code,
  );
}

/** A schedule of the `scheduled` workflow, hourly, created in the Worker. */
async function hourly(id = uniqueName("gw-sched")) {
  await schedules(env.Schedules).create({
    id,
    workflow: scheduled,
    input: {},
    every: "1 hour",
    binding: "TestExecutions",
  });
  return id;
}

describe("schedules through the gateway", () => {
  it("lists, reads, pauses, resumes and triggers a schedule", async () => {
    const id = await hourly();
    const api = await ws("/test/rpc", token);
    const info = await api.schedules.get(id);
    expect(info).toMatchObject({ id, workflow: "scheduled", state: "active" });
    expect((await api.schedules.pause(id)).state).toBe("paused");
    expect((await api.schedules.resume(id)).state).toBe("active");
    const run = await api.schedules.trigger(id);
    expect(run).toMatchObject({ reason: "trigger" });
    expect(run.executionId.startsWith(`${id}/`)).toBe(true);
    let listed = false;
    for (let i = 0; i < 50 && !listed; i++) {
      let cursor: string | null = null;
      do {
        const page: Awaited<ReturnType<typeof api.schedules.list>> = await api.schedules.list({
          limit: 100,
          cursor,
        });
        if (page.schedules.some((s) => s.id === id)) listed = true;
        cursor = page.cursor;
      } while (cursor && !listed);
      if (!listed) await new Promise((r) => setTimeout(r, 20));
    }
    expect(listed).toBe(true);
    api[Symbol.dispose]();
  });

  it("a gateway that does not serve the schedule's workflow refuses it and does not list it", async () => {
    const id = await hourly();
    const api = await ws<GreetApi>("/greet/rpc", token);
    expect(await codeOf(api.schedules.get(id))).toBe("FORBIDDEN");
    expect(await codeOf(api.schedules.pause(id))).toBe("FORBIDDEN");
    expect(await codeOf(api.schedules.trigger(id))).toBe("FORBIDDEN");
    expect((await schedules(env.Schedules).get(id)).state).toBe("active"); // unchanged
    const page = await api.schedules.list({ limit: 500 });
    expect(page.schedules.every((s) => s.workflow === "greet")).toBe(true);
    api[Symbol.dispose]();
  });

  it("the policy decides per schedule; reserved and unknown ids are refused cleanly", async () => {
    const mine = await hourly(`acme/${uniqueName("s")}`);
    const theirs = await hourly(`other/${uniqueName("s")}`);
    const api = await ws("/tenant/rpc", { "X-Tenant": "acme" });
    expect((await api.schedules.get(mine)).id).toBe(mine);
    expect(await codeOf(api.schedules.get(theirs))).toBe("FORBIDDEN");
    expect(await codeOf(api.schedules.trigger(theirs))).toBe("FORBIDDEN");
    expect(await codeOf(api.schedules.list())).toBe("FORBIDDEN");
    expect(await codeOf(api.schedules.get("baton:schedules"))).toBe("FORBIDDEN");
    expect(await codeOf(api.schedules.get("acme/never-created"))).toBe("SCHEDULE_NOT_FOUND");
    expect(await codeOf(api.schedules.get(""))).toBe("INVALID_ARGUMENT");
    api[Symbol.dispose]();
  });
});
