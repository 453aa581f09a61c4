/**
 * Starts and stops a `wrangler dev` for the benchmark runner and the end-to-end tests: on a free
 * loopback port, with a fresh state directory, observability off, and in its own process group
 * so that stopping it leaves no workerd behind.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/** A running `wrangler dev`. */
export interface DevServer {
  /** `http://127.0.0.1:<port>` */
  url: string;
  port: number;
  /** Leader of its process group (see {@link groupAlive}). */
  pid: number;
  /** Stops the server (its whole process group) and removes its state directory. */
  stop(): Promise<void>;
}

/** Options of {@link startDevServer}. */
export interface DevServerOptions {
  /** The wrangler config, relative to the project root. */
  config: string;
  /** Where wrangler's output goes (default: this process's stderr, prefixed). */
  log?: (line: string) => void;
  /** How long to wait for the server to answer `GET /` (default 90 s). */
  timeoutMs?: number;
  /** Variables passed with `--var NAME:value` (local values such as a dev token). */
  vars?: Record<string, string>;
}

/** Starts `wrangler dev` and resolves once it answers `GET /`. */
export async function startDevServer(options: DevServerOptions): Promise<DevServer> {
  const port = await freePort();
  const state = mkdtempSync(join(tmpdir(), "baton-dev-"));
  const log = options.log ?? ((line: string) => process.stderr.write(`[wrangler] ${line}`));
  const wrangler = join(root, "node_modules", "wrangler", "bin", "wrangler.js");
  const child = spawn(
    process.execPath,
    [
      wrangler,
      "dev",
      "--config",
      options.config,
      "--ip",
      "127.0.0.1",
      "--port",
      String(port),
      "--persist-to",
      state,
      "--log-level",
      "warn",
      "--show-interactive-dev-session=false",
      ...Object.entries(options.vars ?? {}).flatMap(([name, value]) => [
        "--var",
        `${name}:${value}`,
      ]),
    ],
    {
      cwd: root,
      env: {
        ...process.env,
        X_LOCAL_OBSERVABILITY: "false",
        WRANGLER_SEND_METRICS: "false",
        CI: "true",
      },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    },
  );
  // The last of its output goes into the error when it does not start.
  let recent = "";
  const take = (d: Buffer) => {
    recent = (recent + String(d)).slice(-4000);
    log(String(d));
  };
  child.stdout?.on("data", take);
  child.stderr?.on("data", take);
  const server: DevServer = {
    url: `http://127.0.0.1:${port}`,
    port,
    pid: child.pid ?? -1,
    async stop() {
      await stop(child);
      rmSync(state, { recursive: true, force: true });
    },
  };
  try {
    await waitForServer(`${server.url}/`, child, options.timeoutMs ?? 90_000);
  } catch (error) {
    await server.stop();
    throw new Error(`${(error as Error).message}; its last output:\n${recent}`);
  }
  return server;
}

async function waitForServer(url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`wrangler dev exited with code ${child.exitCode}`);
    try {
      const response = await fetch(url);
      await response.body?.cancel();
      if (response.ok) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`wrangler dev did not answer within ${timeoutMs / 1000} s`);
}

/** SIGTERM to the process group, SIGKILL after 5 s; resolves when the process has exited. */
async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const signal = (name: NodeJS.Signals) => {
    try {
      process.kill(-(child.pid as number), name);
    } catch {
      child.kill(name);
    }
  };
  signal("SIGTERM");
  const timeout = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 5_000));
  if ((await Promise.race([exited, timeout])) === "timeout") {
    signal("SIGKILL");
    await exited;
  }
  // Anything left in the group (workerd) goes too, and is waited for.
  try {
    process.kill(-(child.pid as number), "SIGKILL");
  } catch {
    // The group is gone: nothing left behind.
  }
  for (let i = 0; i < 40 && groupAlive(child.pid as number); i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Whether any process of the group led by `pid` is still running (zombies, which only wait for
 * their parent to collect them, do not count). Reads /proc where there is one.
 */
export function groupAlive(pid: number): boolean {
  if (existsSync("/proc/self/stat")) {
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
        // "pid (comm) state ppid pgrp ..."; comm may contain spaces, so split after ")".
        const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        if (Number(pgrp) === pid && state !== "Z" && state !== "X") return true;
      } catch {
        // Gone meanwhile.
      }
    }
    return false;
  }
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
