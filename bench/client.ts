/**
 * Measurements made from Node (the benchmark runner's side) against the bench Worker: the
 * gateway's round trips over Cap'n Web, and live-progress latency over the WebSocket route.
 */
import { newHttpBatchRpcSession, newWebSocketRpcSession, type RpcStub } from "capnweb";
import type { LiveEvent } from "../src/execution/live-events.ts";
import type { BenchApi, EchoApi } from "./worker/index.ts";

const TOKEN = "bench-token";
const headers = { Authorization: `Bearer ${TOKEN}` };

export interface Measurement {
  ms: number;
  count: number;
  extra?: Record<string, number>;
}

type Target = "gateway" | "echo" | "floor";
const path = (target: Target) =>
  ({ gateway: "/rpc", echo: "/echo-rpc", floor: "/floor-rpc" })[target];

async function socket(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url, { headers } as never);
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener("open", () => resolve());
    ws.addEventListener("error", () => reject(new Error(`cannot connect to ${url}`)));
  });
  return ws;
}

/** An execution for the gateway to report on (made outside the measurement). */
async function prepare(base: string, id: string): Promise<void> {
  const api = newWebSocketRpcSession<BenchApi>(await socket(`${base.replace("http", "ws")}/rpc`));
  try {
    const result = await api.workflows.steps.execute({ n: 1 }, { id });
    if (!result.ok) throw new Error(`prepare failed: ${result.error.message}`);
  } finally {
    api[Symbol.dispose]();
  }
}

/** `n` sequential `status()` calls over one WebSocket session. */
export async function statusOverWebSocket(
  base: string,
  n: number,
  run: string,
  target: Target,
): Promise<Measurement> {
  const id = `gw-${run}`;
  if (target === "gateway") await prepare(base, id);
  const ws = await socket(`${base.replace("http", "ws")}${path(target)}`);
  const api = newWebSocketRpcSession<BenchApi | EchoApi>(ws) as RpcStub<EchoApi>;
  try {
    for (let i = 0; i < 20; i++) await api.status(id); // warm the session
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      const info = await api.status(id);
      if (info.id !== id) throw new Error("wrong answer");
    }
    return { ms: round(performance.now() - t0), count: n };
  } finally {
    api[Symbol.dispose]();
  }
}

/** `n` HTTP batches, each of 100 `status()` calls. */
export async function statusOverBatch(
  base: string,
  n: number,
  run: string,
  target: Target,
): Promise<Measurement> {
  const id = `gwb-${run}`;
  if (target === "gateway") await prepare(base, id);
  const batch = async () => {
    const api = newHttpBatchRpcSession<BenchApi | EchoApi>(
      new Request(`${base}${path(target)}`, { headers }),
    ) as RpcStub<EchoApi>;
    const answers = await Promise.all(Array.from({ length: 100 }, () => api.status(id)));
    if (answers.length !== 100 || answers.some((a) => a.id !== id)) throw new Error("bad batch");
  };
  await batch(); // warm
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await batch();
  return { ms: round(performance.now() - t0), count: n * 100 };
}

/**
 * Starts a workflow of `n` steps (each returns the time it finished, 20 ms of durable sleep
 * between them), follows it over the live WebSocket route, and measures, per `progress` event,
 * the time from the step's end to the event's arrival here.
 */
export async function progressLatency(base: string, n: number, run: string): Promise<Measurement> {
  const id = `live-${run}`;
  const wsBase = base.replace("http", "ws");
  const api = newWebSocketRpcSession<BenchApi>(await socket(`${wsBase}/rpc`));
  try {
    await api.workflows.ticker.start({ n, gapMs: 20, delayMs: 300 }, { id });
    const live = await socket(`${wsBase}/executions/${encodeURIComponent(id)}/live`);
    const latencies: number[] = [];
    await new Promise<void>((resolve, reject) => {
      live.addEventListener("message", (message) => {
        const arrived = Date.now();
        const event = JSON.parse(String(message.data)) as LiveEvent;
        if (event.type === "progress" && event.step.startsWith("t")) {
          latencies.push(arrived - (event.output as number));
        }
        if (event.type === "completed") resolve();
        if (event.type === "failed" || event.type === "cancelled") reject(new Error(event.type));
      });
      live.addEventListener("close", () => resolve());
    });
    latencies.sort((a, b) => a - b);
    const pick = (q: number) =>
      latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
    return {
      ms: pick(0.5),
      count: latencies.length,
      extra: { p50_ms: pick(0.5), p99_ms: pick(0.99), max_ms: latencies.at(-1) ?? 0 },
    };
  } finally {
    api[Symbol.dispose]();
  }
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
