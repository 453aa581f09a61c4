import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import devWorker from "../examples/dev/worker.ts";
import {
  checkpoints,
  DEFAULT_KEEP,
  decode,
  encode,
  executions,
  MAX_DECODED_BYTES,
  parseDuration,
} from "../src/index.ts";
import {
  advance,
  eventually,
  executionStub,
  expectBatonError,
  randomBytes,
  uniqueName,
} from "./helpers.ts";
import { bigOutputs, greet, hugeError } from "./workflows.ts";

const client = () => executions(env.TestExecutions);

describe("sizes bounded after decoding", () => {
  for (const where of ["step", "body"] as const) {
    it(`ends an execution whose error (from its ${where}) is far over the row limit as failed, message truncated`, async () => {
      const { id, stub } = executionStub(`wedge-${where}`);
      const run = await client().start(hugeError, { where }, { id });
      await stub.sendEvent("data", { size: 3_000_000 });
      const result = await run.result({ timeout: "5s" });
      expect(result).toMatchObject({ ok: false, status: "failed" });
      if (result.ok) return;
      const bytes = new TextEncoder().encode(result.error.message).byteLength;
      expect(bytes).toBeLessThanOrEqual(8 * 1024 + 64);
      expect(result.error.message).toMatch(/^bad input: x+… \(\d+ more bytes\)$/);
      if (where === "step") {
        const journal = await stub.journal();
        expect(journal.at(-1)).toMatchObject({ name: "parse", status: "failed" });
        expect(JSON.stringify(journal.at(-1)?.error).length).toBeLessThan(9_000);
      }
      // It stays ended: the next alarm does not replay it.
      await advance(stub, 60_000);
      expect((await stub.status()).status).toBe("failed");
    });
  }

  it("never inflates a stored value past MAX_DECODED_BYTES, and never encodes one", async () => {
    await expectBatonError(encode("x".repeat(MAX_DECODED_BYTES + 1)), "PAYLOAD_TOO_LARGE");
    // A deflate stream of 40 MiB of zeros: about 40 KB, behind a valid Baton header.
    const zeros = new Uint8Array(40 * 1024 * 1024);
    const deflated = new Uint8Array(
      await new Response(
        new Blob([zeros]).stream().pipeThrough(new CompressionStream("deflate-raw")),
      ).arrayBuffer(),
    );
    expect(deflated.byteLength).toBeLessThan(100_000);
    const bomb = new Uint8Array(3 + deflated.byteLength);
    bomb.set([0xba, 1, 3], 0); // magic, format 1, deflated | string
    bomb.set(deflated, 3);
    await expectBatonError(decode(bomb), "PAYLOAD_TOO_LARGE", /inflates past/);
    // Up to the limit, a value inflates and comes back whole.
    const fine = await encode("y".repeat(MAX_DECODED_BYTES));
    expect(fine.byteLength).toBeLessThan(100_000);
    expect(((await decode(fine)) as string).length).toBe(MAX_DECODED_BYTES);
  });

  it("measures an event payload before compression", async () => {
    const { id, stub } = executionStub("event-size");
    await client().start(greet, { name: "E" }, { id });
    // 2 MB of one character compresses to a few KB, but it is 2 MB.
    await expectBatonError(stub.sendEvent("other", "z".repeat(2_000_000)), "PAYLOAD_TOO_LARGE");
    await stub.cancel();
  });
});

describe("per-object growth is bounded", () => {
  it("buffers at most 1,000 events no wait has taken", async () => {
    const { id, stub } = executionStub("buffer-count");
    await client().start(greet, { name: "B" }, { id });
    for (let i = 0; i < 1000; i++) await stub.sendEvent("unwanted", i);
    await expectBatonError(stub.sendEvent("unwanted", 1000), "LIMIT_EXCEEDED", /1000 event/);
    // A waited-for event still goes through: it is delivered, not buffered.
    await advance(stub, 1_000);
    await eventually(
      () => stub.status(),
      (s) => s.status === "waiting",
    );
    expect(await stub.sendEvent("approve", { ok: true })).toMatchObject({ delivered: true });
  });

  it("buffers at most 16 MiB of events", async () => {
    const { id, stub } = executionStub("buffer-bytes");
    await client().start(greet, { name: "B" }, { id });
    let refused: unknown;
    for (let i = 0; i < 30 && !refused; i++) {
      // ~930 KB encoded each (random, so it does not compress).
      await stub.sendEvent("unwanted", randomBytes(700_000)).catch((error: unknown) => {
        refused = error;
      });
    }
    expect(refused).toMatchObject({ code: "LIMIT_EXCEEDED" });
    await stub.cancel();
  });

  it("keeps the last 100 versions of a checkpoint unless told otherwise; history comes in pages", async () => {
    const scope = uniqueName("cp");
    const cp = checkpoints(env.Checkpoints);
    for (let v = 1; v <= DEFAULT_KEEP + 5; v++) await cp.save(scope, "doc", v);
    const firstPage = await cp.history(scope, "doc");
    expect(firstPage).toHaveLength(100);
    expect(firstPage[0]?.version).toBe(6);
    const page = await cp.history(scope, "doc", { fromVersion: 100, limit: 3 });
    expect(page.map((v) => v.version)).toEqual([100, 101, 102]);
    await expectBatonError(cp.load(scope, "doc", { version: 5 }), "CHECKPOINT_NOT_FOUND");
    expect((await cp.load(scope, "doc")).value).toBe(105);
    await expectBatonError(cp.history(scope, "doc", { limit: 1001 }), "INVALID_ARGUMENT");
    await expectBatonError(cp.history(scope, "doc", { fromVersion: 0 }), "INVALID_ARGUMENT");
  });

  it("ends a journal page early when its outputs pass 8 MiB", async () => {
    const { id, stub } = executionStub("big-journal");
    const run = await client().start(bigOutputs, { n: 4, bytes: 3_000_000 }, { id });
    expect((await run.result({ timeout: "20s" })).ok).toBe(true);
    const first = await stub.journal();
    expect(first.map((e) => e.name)).toEqual(["big0", "big1"]);
    const rest = await stub.journal({ from: 2 });
    expect(rest.map((e) => e.name)).toEqual(["big2", "big3"]);
    expect((first[0]?.output as Uint8Array | undefined)?.byteLength).toBe(3_000_000);
  });
});

describe("durations and retention have bounds", () => {
  it("refuses a retention under a minute or over a year, and durations over 100 years", async () => {
    const { id } = executionStub("retention-bounds");
    await expectBatonError(
      client().start(greet, { name: "R" }, { id, retention: "30s" }),
      "INVALID_ARGUMENT",
      /retention/,
    );
    await expectBatonError(
      client().start(greet, { name: "R" }, { id, retention: "400 days" }),
      "INVALID_ARGUMENT",
      /retention/,
    );
    await expectBatonError(client().get(id).status(), "EXECUTION_NOT_FOUND");
    expect(() => parseDuration(1e300)).toThrowError(/100 years/);
    expect(() => parseDuration(Number.MAX_VALUE)).toThrowError(/100 years/);
    expect(() => parseDuration("101000 weeks")).toThrowError(/100 years/);
    expect(parseDuration("1 minute")).toBe(60_000);
  });
});

describe("the dev Worker's example routes", () => {
  const post = (path: string, body: string) =>
    SELF.fetch(`http://baton.test${path}`, { method: "POST", body });

  it("answers bad input with 400 and a code, never a stack trace or an execution named undefined", async () => {
    for (const [path, body] of [
      ["/orders", "not json"],
      ["/orders", "[]"],
      ["/orders", "{}"],
      ["/orders", JSON.stringify({ orderId: "ok-1", items: "x", amount: -1 })],
      ["/orders/ok-1/approve", "{"],
      ["/orders/ok-1/approve", JSON.stringify({ approved: "yes" })],
      ["/reminders/ada", "nope"],
      ["/reminders/ada", JSON.stringify({ text: 1 })],
    ] as const) {
      const response = await post(path, body);
      expect(response.status, `${path} ${body}`).toBe(400);
      const json = (await response.json()) as { code: string; message: string };
      expect(json.code).toMatch(/^(INVALID_ARGUMENT|INVALID_INPUT)$/);
      expect(json.message).not.toMatch(/ at /);
    }
    await expectBatonError(executions(env.Orders).get("undefined").status(), "EXECUTION_NOT_FOUND");
  });

  it("are closed outside `npm run dev` unless the caller has the token", async () => {
    const deployed = { ...env, BATON_LOCAL_DEV: undefined } as never;
    const request = () => new Request("http://baton.test/orders/x");
    expect((await devWorker.fetch(request(), deployed)).status).toBe(401);
    const withToken = new Request("http://baton.test/orders/none", {
      headers: { Authorization: "Bearer dev-token" },
    });
    expect((await devWorker.fetch(withToken, deployed)).status).toBe(404);
    expect((await devWorker.fetch(new Request("http://baton.test/"), deployed)).status).toBe(200);
  });
});
