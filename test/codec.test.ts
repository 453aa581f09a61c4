import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import {
  COMPRESS_THRESHOLD,
  decode,
  decodeSync,
  encode,
  encodeSync,
  isBatonError,
  isCompressed,
} from "../src/index.ts";
import { expectBatonError, randomBytes, timerActor } from "./helpers.ts";

function rich() {
  return {
    when: new Date("2026-11-21T10:00:00.000Z"),
    big: 12345678901234567890n,
    nothing: undefined,
    map: new Map<unknown, unknown>([
      ["a", 1],
      [2, new Set(["x", "y"])],
    ]),
    set: new Set([1, 2, 3]),
    bytes: new Uint8Array([0, 1, 2, 255]),
    floats: new Float64Array([1.5, -0, Number.NaN]),
    nested: { deep: [{ deeper: [null, true, "text", -0, Number.POSITIVE_INFINITY] }] },
    re: /ba+ton/gi,
  };
}

function randomText(n: number): string {
  const bytes = randomBytes(n);
  let out = "";
  for (const b of bytes) out += String.fromCharCode(0x4e00 + b * 37);
  return out;
}

describe("codec", () => {
  it("round-trips what structured clone carries", async () => {
    const value = rich();
    expect(await decode(await encode(value))).toEqual(value);
    expect(decodeSync(encodeSync(value))).toEqual(value);
  });

  it("round-trips top-level strings of any size through the fast path", async () => {
    // A leading byte-order mark is part of the value, not stripped.
    for (const text of ["", "héllo ✓ 𝄞", "\uFEFFbom", "prose ".repeat(50_000)]) {
      const bytes = await encode(text);
      expect(await decode(bytes)).toBe(text);
      if (!isCompressed(bytes)) expect(decodeSync(bytes)).toBe(text);
      expect(decodeSync(encodeSync(text))).toBe(text);
    }
    expect(isCompressed(await encode("prose ".repeat(50_000)))).toBe(true);
    // A lone surrogate is kept exactly (it cannot be UTF-8: devalue carries it).
    const broken = "a\uD800b";
    expect(await decode(await encode(broken))).toBe(broken);
    // A big value made of one random block repeated is still compressed.
    const block = Array.from(randomBytes(3_000), (b) => String.fromCharCode(33 + (b % 90))).join(
      "",
    );
    const repeated = await encode(block.repeat(400));
    expect(isCompressed(repeated)).toBe(true);
    expect(repeated.byteLength).toBeLessThan(100_000);
  });

  it("keeps repeated and cyclic references", async () => {
    const shared = { n: 1 };
    const cyclic: { self?: unknown; list: unknown[] } = { list: [shared, shared] };
    cyclic.self = cyclic;
    const back = await decode<typeof cyclic>(await encode(cyclic));
    expect(back.self).toBe(back);
    expect(back.list[0]).toBe(back.list[1]);
  });

  it("round-trips Errors with their name, message and own properties", async () => {
    const error = Object.assign(new TypeError("bad thing"), { code: "E_BAD", details: { n: 1 } });
    const back = await decode<Error & { code: string; details: unknown }>(await encode(error));
    expect(back).toBeInstanceOf(Error);
    expect(back.name).toBe("TypeError");
    expect(back.message).toBe("bad thing");
    expect(back.code).toBe("E_BAD");
    expect(back.details).toEqual({ n: 1 });
  });

  it("compresses values above the threshold, never making them bigger", async () => {
    const small = await encode({ text: "x".repeat(100) });
    expect(isCompressed(small)).toBe(false);
    const text = "the same sentence again and again. ".repeat(2_000);
    const compressible = await encode({ text });
    expect(compressible.byteLength).toBeGreaterThan(0);
    expect(isCompressed(compressible)).toBe(true);
    expect(compressible.byteLength).toBeLessThan(text.length / 10);
    expect(await decode(compressible)).toEqual({ text });
    // Whatever the data, the stored form is never bigger than the uncompressed encoding.
    for (const value of [randomBytes(COMPRESS_THRESHOLD * 4), randomText(COMPRESS_THRESHOLD * 2)]) {
      const stored = await encode(value);
      expect(stored.byteLength).toBeLessThanOrEqual(encodeSync(value).byteLength);
      expect(await decode(stored)).toEqual(value);
    }
    // Just under the threshold: stored as is, even when compressible.
    const under = { text: "a".repeat(COMPRESS_THRESHOLD - 100) };
    expect(isCompressed(await encode(under))).toBe(false);
    // The sync decoder refuses compressed bytes with a clear error.
    expect(() => decodeSync(compressible)).toThrowError(/compressed/);
  });

  it("rejects values it cannot encode with SERIALIZATION_ERROR naming the path", async () => {
    for (const bad of [{ f: () => 1 }, { s: Symbol("x") }, { nested: [new (class Foo {})()] }]) {
      let caught: unknown;
      try {
        await encode(bad);
      } catch (error) {
        caught = error;
      }
      expect(isBatonError(caught, "SERIALIZATION_ERROR")).toBe(true);
    }
    await expectBatonError(encode({ a: { b: () => 1 } }), "SERIALIZATION_ERROR", /\.a\.b|a.*b/);
  });

  it("rejects bytes that are not an encoded value", async () => {
    await expectBatonError(decode(new Uint8Array([1, 2, 3, 4])), "SERIALIZATION_ERROR", /header/);
    await expectBatonError(
      decode(new Uint8Array([0xba, 99, 0, 1])),
      "SERIALIZATION_ERROR",
      /format 99/,
    );
    await expectBatonError(
      decode(new Uint8Array([0xba, 1, 1, 9, 9, 9])),
      "SERIALIZATION_ERROR",
      /damaged/,
    );
    await expectBatonError(decode(new Uint8Array([0xba, 1, 0, 0xff, 0xfe])), "SERIALIZATION_ERROR");
  });
});

describe("value store (chunked over the 2 MB row limit)", () => {
  it("stores a 5 MB value with a Map inside across rows and reads it back equal", async () => {
    const stub = timerActor("values");
    const value = {
      index: new Map([
        ["first", new Date(0)],
        ["second", new Date(1_000)],
      ]),
      blob: randomBytes(5 * 1024 * 1024),
    };
    const put = await stub.putValue("big", value);
    expect(put.chunks).toBeGreaterThanOrEqual(3);
    expect(await stub.valueRows("big")).toBe(put.chunks);
    const back = (await stub.getValue("big")) as unknown as typeof value;
    expect(back.index).toBeInstanceOf(Map);
    expect(back.index).toEqual(value.index);
    expect(back.blob.byteLength).toBe(value.blob.byteLength);
    expect(back.blob).toEqual(value.blob);
  });

  it("replaces a value atomically and keeps the old one when the new one cannot be encoded", async () => {
    const stub = timerActor("values");
    await stub.putValue("k", { version: 1, tags: new Set(["a"]) });
    await runInDurableObject(stub, async (instance) => {
      const error = await instance
        .putValue("k", { version: 2, fn: () => 2 })
        .catch((e: unknown) => e);
      expect(isBatonError(error, "SERIALIZATION_ERROR")).toBe(true);
    });
    expect(await stub.getValue("k")).toEqual({ version: 1, tags: new Set(["a"]) });
    // A big value shrinking to a small one leaves no stale chunks behind.
    await stub.putValue("k", randomBytes(3 * 1024 * 1024));
    expect(await stub.valueRows("k")).toBeGreaterThan(1);
    await stub.putValue("k", "small");
    expect(await stub.valueRows("k")).toBe(1);
    expect(await stub.getValue("k")).toBe("small");
  });

  it("applies concurrent writes to one key in call order", async () => {
    const stub = timerActor("values");
    await runInDurableObject(stub, async (instance) => {
      // The big write is slower to encode (compression); the later small one must still win.
      await Promise.all([
        instance.putValue("k", { text: "x".repeat(500_000) }),
        instance.putValue("k", "latest"),
      ]);
    });
    expect(await stub.getValue("k")).toBe("latest");
  });

  it("lists and deletes keys, and answers undefined for a missing key", async () => {
    const stub = timerActor("values");
    await stub.putValue("b", 2);
    await stub.putValue("a", 1);
    expect(await stub.valueKeys()).toEqual(["a", "b"]);
    expect(await stub.deleteValue("a")).toBe(true);
    expect(await stub.deleteValue("a")).toBe(false);
    expect(await stub.getValue("a")).toBeUndefined();
    expect(await stub.valueKeys()).toEqual(["b"]);
  });

  it("rejects bad keys with INVALID_ARGUMENT and stores nothing", async () => {
    const stub = timerActor("values");
    await expectBatonError(stub.putValue("", 1), "INVALID_ARGUMENT", /key/);
    await expectBatonError(stub.putValue("k".repeat(1025), 1), "INVALID_ARGUMENT", /key/);
    await expectBatonError(stub.getValue(""), "INVALID_ARGUMENT", /key/);
    expect(await stub.valueKeys()).toEqual([]);
  });
});
