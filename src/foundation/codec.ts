import { parse, stringify } from "devalue";
import { BatonError } from "./errors.ts";

/**
 * The value codec used for everything Baton stores.
 *
 * Encoding: `devalue` (structured-clone semantics without `eval`: Map, Set, Date, BigInt,
 * `undefined`, `-0`, NaN, RegExp, URL, ArrayBuffer and typed arrays, nested objects, repeated and
 * cyclic references), plus Error objects. Encoded text above {@link COMPRESS_THRESHOLD} bytes is
 * deflated with the runtime's `CompressionStream` when that makes it smaller.
 *
 * Every encoded value starts with a 3-byte header — magic `0xBA`, format version, flags — so the
 * format can evolve without misreading old rows. Format 1 is devalue 6 text (the dependency is
 * pinned because devalue does not promise cross-version stability).
 */

/**
 * Values whose encoded text is larger than this many bytes are compressed.
 *
 * @example
 * ```ts
 * isCompressed(await encode("x".repeat(COMPRESS_THRESHOLD * 2))); // true
 * ```
 */
export const COMPRESS_THRESHOLD = 10 * 1024;

/**
 * Largest value the codec encodes or decodes, counted as encoded text before compression (32
 * MiB; binary data counts as its base64 text, a third more). Decoding never inflates past it, so
 * a small compressed row cannot turn into a huge value in memory.
 *
 * @example
 * ```ts
 * await encode(hugeString); // PAYLOAD_TOO_LARGE past MAX_DECODED_BYTES
 * await encode(payload, 1024 * 1024); // a smaller limit of your own
 * ```
 */
export const MAX_DECODED_BYTES = 32 * 1024 * 1024;

const MAGIC = 0xba;
const FORMAT = 1;
const FLAG_DEFLATE = 1;
/** The body is a top-level string's UTF-8, without devalue (faster for big text). */
const FLAG_STRING = 2;
const KNOWN_FLAGS = FLAG_DEFLATE | FLAG_STRING;
const HEADER = 3;

const encoder = new TextEncoder();
// ignoreBOM: a string that starts with U+FEFF keeps it.
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

interface SerializedError {
  name: string;
  message: string;
  stack?: string | undefined;
  cause?: unknown;
  props: Record<string, unknown>;
}

const reducers = {
  Error: (value: unknown): SerializedError | false => {
    if (!(value instanceof Error)) return false;
    const props: Record<string, unknown> = {};
    for (const key of Object.keys(value)) {
      if (key !== "name" && key !== "message" && key !== "stack" && key !== "cause") {
        props[key] = (value as unknown as Record<string, unknown>)[key];
      }
    }
    return {
      name: value.name,
      message: value.message,
      stack: value.stack,
      cause: value.cause,
      props,
    };
  },
};

const revivers = {
  Error: (data: SerializedError): Error => {
    const error = new Error(data.message, data.cause === undefined ? {} : { cause: data.cause });
    error.name = data.name;
    if (data.stack !== undefined) error.stack = data.stack;
    Object.assign(error, data.props);
    return error;
  },
};

/**
 * Encodes `value` as text (no header, no compression). Use it when you need a stable text form,
 * for example to compare two inputs.
 *
 * @throws BatonError `SERIALIZATION_ERROR` for values structured clone cannot carry (functions,
 *   symbols, class instances other than the supported built-ins); the message names the path.
 * @example
 * ```ts
 * encodeText(new Map([["a", 1n]])) === encodeText(new Map([["a", 1n]])); // true
 * ```
 */
export function encodeText(value: unknown): string {
  try {
    return stringify(value, reducers);
  } catch (cause) {
    const path = (cause as { path?: string }).path;
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new BatonError(
      "SERIALIZATION_ERROR",
      `Value cannot be stored: ${reason}${path ? ` (at ${path})` : ""}. Stored values support what structured clone does: plain objects, arrays, Map, Set, Date, BigInt, typed arrays, Errors; not functions, symbols or class instances.`,
      { path: path ?? "", reason },
      { cause },
    );
  }
}

/**
 * Decodes text made by {@link encodeText}.
 *
 * @example
 * ```ts
 * decodeText<Map<string, number>>(encodeText(new Map([["a", 1]]))); // Map { "a" => 1 }
 * ```
 */
export function decodeText<T = unknown>(text: string): T {
  try {
    return parse(text, revivers) as T;
  } catch (cause) {
    throw new BatonError(
      "SERIALIZATION_ERROR",
      `Stored value could not be decoded: ${cause instanceof Error ? cause.message : String(cause)}.`,
      {},
      { cause },
    );
  }
}

/**
 * Encodes `value` into bytes for storage: header, devalue text, deflated when large.
 *
 * @param maxBytes Largest encoded size allowed, before compression (default and most:
 *   {@link MAX_DECODED_BYTES}).
 * @throws BatonError `SERIALIZATION_ERROR` (see {@link encodeText}); `PAYLOAD_TOO_LARGE` past
 *   `maxBytes`.
 * @example
 * ```ts
 * const bytes = await encode({ when: new Date(), tags: new Set(["a"]) });
 * const back = await decode<{ when: Date; tags: Set<string> }>(bytes);
 * ```
 */
export async function encode(
  value: unknown,
  maxBytes: number = MAX_DECODED_BYTES,
): Promise<Uint8Array> {
  const kind = isPlainText(value) ? FLAG_STRING : 0;
  const raw = encoder.encode(kind ? (value as string) : encodeText(value));
  checkSize(raw.byteLength, maxBytes);
  // The entropy sample saves a wasted attempt on mid-size random data; big values are always
  // tried (they may repeat a random block, and their size matters more than the attempt).
  if (
    raw.byteLength > COMPRESS_THRESHOLD &&
    (raw.byteLength >= 1024 * 1024 || sampleEntropy(raw) < MAX_COMPRESSIBLE_ENTROPY)
  ) {
    const deflated = await transform(raw, new CompressionStream("deflate-raw"));
    // Keep it compressed only when that saves at least a third: every load pays to inflate it.
    if (deflated.byteLength < raw.byteLength * (2 / 3)) {
      return withHeader(deflated, FLAG_DEFLATE | kind);
    }
  }
  return withHeader(raw, kind);
}

/**
 * Encodes without compression, synchronously. For small values on hot paths; {@link decode}
 * reads the result.
 *
 * @example
 * ```ts
 * const bytes = encodeSync({ at: new Date() });
 * const back = decodeSync<{ at: Date }>(bytes);
 * ```
 */
export function encodeSync(value: unknown, maxBytes: number = MAX_DECODED_BYTES): Uint8Array {
  const kind = isPlainText(value) ? FLAG_STRING : 0;
  const raw = encoder.encode(kind ? (value as string) : encodeText(value));
  checkSize(raw.byteLength, maxBytes);
  return withHeader(raw, kind);
}

/** Refuses an encoded size past `maxBytes` (never past {@link MAX_DECODED_BYTES}). */
function checkSize(bytes: number, maxBytes: number): void {
  const limit = Math.min(maxBytes, MAX_DECODED_BYTES);
  if (bytes > limit) {
    throw new BatonError(
      "PAYLOAD_TOO_LARGE",
      `Value is ${bytes} bytes encoded (before compression); the limit here is ${limit} bytes. Store large data elsewhere (R2) and keep a reference.`,
      { bytes, limit },
    );
  }
}

/**
 * Decodes bytes made by {@link encode} or {@link encodeSync}.
 *
 * @throws BatonError `SERIALIZATION_ERROR` if the bytes are not a Baton-encoded value.
 *
 * @example
 * ```ts
 * const value = await decode<{ tags: Set<string> }>(row.payload);
 * ```
 */
export async function decode<T = unknown>(bytes: ArrayBuffer | Uint8Array): Promise<T> {
  return (await decodeSized<T>(bytes)).value;
}

/**
 * Decodes like {@link decode} and also tells the value's encoded size before compression (what
 * it weighs in a message), for callers that budget what they return.
 *
 * @throws BatonError `SERIALIZATION_ERROR`; `PAYLOAD_TOO_LARGE` for a value that would inflate
 *   past {@link MAX_DECODED_BYTES} (the inflating stops there).
 */
export async function decodeSized<T = unknown>(
  bytes: ArrayBuffer | Uint8Array,
): Promise<{ value: T; bytes: number }> {
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const flags = readHeader(view);
  let body = view.subarray(HEADER);
  if (flags & FLAG_DEFLATE) {
    try {
      body = await transform(body, new DecompressionStream("deflate-raw"), MAX_DECODED_BYTES);
    } catch (cause) {
      if (cause instanceof BatonError) throw cause;
      throw new BatonError(
        "SERIALIZATION_ERROR",
        "Stored value could not be decompressed; its bytes are damaged.",
        {},
        { cause },
      );
    }
  }
  checkSize(body.byteLength, MAX_DECODED_BYTES);
  const value = flags & FLAG_STRING ? (toText(body) as T) : decodeText<T>(toText(body));
  return { value, bytes: body.byteLength };
}

/**
 * Decodes synchronously; throws `SERIALIZATION_ERROR` if the value was stored compressed
 * (use {@link decode} for those).
 *
 * @example
 * ```ts
 * const small = decodeSync<number[]>(encodeSync([1, 2, 3]));
 * ```
 */
export function decodeSync<T = unknown>(bytes: ArrayBuffer | Uint8Array): T {
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const flags = readHeader(view);
  if (flags & FLAG_DEFLATE) {
    throw new BatonError(
      "SERIALIZATION_ERROR",
      "Value is compressed; decode it with the async decode().",
    );
  }
  const text = toText(view.subarray(HEADER));
  return flags & FLAG_STRING ? (text as T) : decodeText<T>(text);
}

/**
 * True if the encoded bytes are compressed (so only the async {@link decode} reads them).
 *
 * @example
 * ```ts
 * const bytes = await encode(bigValue);
 * const value = isCompressed(bytes) ? await decode(bytes) : decodeSync(bytes);
 * ```
 */
export function isCompressed(bytes: ArrayBuffer | Uint8Array): boolean {
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  return (readHeader(view) & FLAG_DEFLATE) !== 0;
}

/**
 * A string UTF-8 can carry as it is (no lone surrogates; those go through devalue, which keeps
 * them).
 */
function isPlainText(value: unknown): value is string {
  return (
    typeof value === "string" &&
    (value as string & { isWellFormed?: () => boolean }).isWellFormed?.() !== false
  );
}

/**
 * Bits per byte above which deflate cannot save a third (random base64 text is 6.0, encrypted or
 * random bytes in base64 likewise; English prose and JSON are 4-5). Values above it are stored
 * as they are, without paying for a compression attempt.
 */
const MAX_COMPRESSIBLE_ENTROPY = 5.5;

/** Shannon entropy (bits per byte) of up to 8 KB sampled across `bytes`. */
function sampleEntropy(bytes: Uint8Array): number {
  const counts = new Uint32Array(256);
  const slices = 8;
  const slice = 1024;
  let total = 0;
  for (let i = 0; i < slices; i++) {
    const start = Math.floor(((bytes.byteLength - slice) * i) / (slices - 1));
    for (let j = Math.max(0, start); j < Math.min(bytes.byteLength, start + slice); j++) {
      counts[bytes[j] as number] = (counts[bytes[j] as number] as number) + 1;
      total++;
    }
  }
  let entropy = 0;
  for (const count of counts) {
    if (count > 0) {
      const p = count / total;
      entropy -= p * Math.log2(p);
    }
  }
  return entropy;
}

function withHeader(body: Uint8Array, flags: number): Uint8Array {
  const out = new Uint8Array(HEADER + body.byteLength);
  out[0] = MAGIC;
  out[1] = FORMAT;
  out[2] = flags;
  out.set(body, HEADER);
  return out;
}

function readHeader(view: Uint8Array): number {
  if (view.byteLength < HEADER || view[0] !== MAGIC) {
    throw new BatonError(
      "SERIALIZATION_ERROR",
      "Stored bytes are not a Baton-encoded value (bad header).",
    );
  }
  if (view[1] !== FORMAT) {
    throw new BatonError(
      "SERIALIZATION_ERROR",
      `Stored value uses codec format ${String(view[1])}; this version of Baton reads format ${FORMAT}. Deploy a Baton version that knows that format.`,
      { format: view[1] },
    );
  }
  const flags = view[2] ?? 0;
  if ((flags & ~KNOWN_FLAGS) !== 0) {
    throw new BatonError(
      "SERIALIZATION_ERROR",
      `Stored value has unknown codec flags 0x${flags.toString(16)}; it was written by a newer Baton.`,
      { flags },
    );
  }
  return flags;
}

function toText(body: Uint8Array): string {
  try {
    return decoder.decode(body);
  } catch (cause) {
    throw new BatonError("SERIALIZATION_ERROR", "Stored value is not valid UTF-8.", {}, { cause });
  }
}

/**
 * Runs `input` through `stream`. With `maxOutput`, stops (and cancels the stream) as soon as the
 * output passes it: `PAYLOAD_TOO_LARGE`.
 */
async function transform(
  input: Uint8Array,
  stream: CompressionStream | DecompressionStream,
  maxOutput = Number.POSITIVE_INFINITY,
): Promise<Uint8Array> {
  const writer = stream.writable.getWriter();
  const written = writer.write(input).then(() => writer.close());
  // A failure also errors the readable side, which reports it; don't leave this one unhandled.
  written.catch(() => {});
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = stream.readable.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    total += value.byteLength;
    if (total > maxOutput) {
      await reader.cancel().catch(() => {});
      throw new BatonError(
        "PAYLOAD_TOO_LARGE",
        `Stored value inflates past ${maxOutput} bytes; it is refused rather than decoded.`,
        { limit: maxOutput },
      );
    }
  }
  await written;
  if (chunks.length === 1 && chunks[0]) return chunks[0];
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}
