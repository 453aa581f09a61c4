import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { checkpoints, executions } from "../src/index.ts";
import { executionStub, expectBatonError, probe, uniqueName } from "./helpers.ts";
import type { Platform } from "./worker.ts";
import { forkable } from "./workflows.ts";

const orders = (path: string, init?: RequestInit) =>
  env.ORDERS.fetch(`http://orders.test${path}`, init);

describe("cross-Worker composition through a service binding", () => {
  it("starts a workflow on the platform's actors and returns its typed result", async () => {
    const id = uniqueName("o");
    const response = await orders(`/orders/${id}`, {
      method: "POST",
      body: JSON.stringify({ items: 2 }),
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      ok: true,
      status: "completed",
      value: { orderId: id, packed: "packed 2 item(s)", label: `label-${id}` },
    });
    const status = (await (await orders(`/orders/${id}`)).json()) as {
      workflow: string;
      status: string;
    };
    expect(status).toMatchObject({ workflow: "fulfil", status: "completed" });
  });

  it("starts, reads status, sends an event and awaits the result across the boundary", async () => {
    const id = uniqueName("o");
    const started = await orders(`/orders/${id}`, {
      method: "POST",
      body: JSON.stringify({ items: 3, hold: true }),
    });
    expect(started.status).toBe(202);
    expect(await started.json()).toMatchObject({ id: `order-${id}`, workflow: "fulfil" });
    // Held: it cannot finish before the event.
    const held = (await (await orders(`/orders/${id}`)).json()) as { status: string };
    expect(["pending", "running", "waiting"]).toContain(held.status);
    const receipt = await orders(`/orders/${id}/release`, { method: "POST" });
    expect(receipt.status).toBe(200);
    expect(await receipt.json()).toMatchObject({ duplicate: false });
    const result = await orders(`/orders/${id}/result`);
    expect(await result.json()).toEqual({
      ok: true,
      status: "completed",
      value: { orderId: id, packed: "packed 3 item(s)", label: `label-${id}` },
    });
  });

  it("uses the platform's locks and checkpoints", async () => {
    const id = uniqueName("o");
    const response = await orders(`/orders/${id}/note`, {
      method: "POST",
      body: "leave at the door",
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ name: "note", version: 1 });
    expect((await checkpoints(env.Checkpoints).load(`order-${id}`, "note")).value).toBe(
      "leave at the door",
    );
  });

  it("keeps error codes across the boundary", async () => {
    const missing = await orders("/orders/never-started");
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ code: "EXECUTION_NOT_FOUND" });
    const bad = await orders(`/orders/${uniqueName("o")}`, {
      method: "POST",
      body: JSON.stringify({ items: 1 }),
    });
    expect(bad.status).toBe(200);
    // Same id, other input: the platform refuses it with its code.
    const id = uniqueName("o");
    await orders(`/orders/${id}`, { method: "POST", body: JSON.stringify({ items: 1 }) });
    const conflict = await orders(`/orders/${id}`, {
      method: "POST",
      body: JSON.stringify({ items: 5 }),
    });
    expect(conflict.status).toBe(400);
    expect(await conflict.json()).toMatchObject({ code: "EXECUTION_CONFLICT" });
  });

  it("serves the whole execution API through the entrypoint: fork, tracked, pause, journal", async () => {
    // PLATFORM is this Worker's own Platform entrypoint, called as another Worker would.
    const remote = executions<Platform>(env.PLATFORM);
    const p = probe();
    const source = executionStub("svc-fork-src").id;
    const original = await remote.start(forkable, { probe: p.name }, { id: source });
    expect(await original.result({ timeout: "5s" })).toMatchObject({ ok: true });
    const forked = await remote.fork(forkable, source, "half", {
      id: executionStub("svc-fork").id,
    });
    expect(await forked.result({ timeout: "5s" })).toMatchObject({ ok: true });
    expect((await forked.journal()).length).toBe((await original.journal()).length);

    const tracked = remote.tracked(executionStub("svc-tracked").id);
    await tracked.start("import", { totalSteps: 2 });
    await tracked.progress("read", { index: 0, output: 1 });
    await tracked.complete({ rows: 1 });
    expect(await tracked.result()).toMatchObject({ ok: true, value: { rows: 1 } });

    await expectBatonError(remote.get(uniqueName("none")).pause(), "EXECUTION_NOT_FOUND");
  });
});
