#!/usr/bin/env node
/**
 * The `baton` command.
 *
 *   baton init <directory> [--baton <version or tarball>]   a new project from the starter
 *   baton executions list [--workflow w] [--status s] [--id-prefix p] [--limit n]
 *   baton executions status|journal|result <id>
 *   baton send-event <id> <type> [<json payload>] [--dedupe-key k]
 *   baton cancel|pause|resume|restart <id>
 *
 * Every command but `init` talks to a Baton gateway: `--url` (or BATON_URL, e.g.
 * https://my-worker.example.workers.dev/rpc) and `--token` (or BATON_TOKEN). Output is JSON.
 */
import { realpathSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import type { BatonApi } from "../clients/gateway/api.ts";
import { connect } from "../remote/connect.ts";
import { init } from "./init.ts";

const HELP = `Usage:
  baton init <directory> [--baton <version or tarball>]
  baton executions list [--workflow <name>] [--status <status>] [--id-prefix <p>] [--limit <n>] [--cursor <c>]
  baton executions status <id>
  baton executions journal <id> [--from <seq>] [--limit <n>]
  baton executions result <id> [--timeout <duration>]
  baton send-event <id> <type> [<json payload>] [--dedupe-key <key>]
  baton cancel <id> | pause <id> | resume <id> | restart <id>

Options for the gateway commands:
  --url <url>      the gateway (env BATON_URL), e.g. https://app.example.workers.dev/rpc
  --token <token>  its bearer token (env BATON_TOKEN)
`;

/** Runs the command line `argv` (without node and the script); returns the exit code. */
export async function main(
  argv: readonly string[],
  out: (line: string) => void = (line) => process.stdout.write(`${line}\n`),
  err: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    err(`${(error as Error).message}\n\n${HELP}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [command, ...rest] = positionals;
  if (values.help) {
    out(HELP);
    return 0;
  }
  if (!command) {
    err(HELP);
    return 2;
  }
  try {
    if (command === "init") {
      const directory = rest[0];
      if (!directory) throw new UsageError("baton init needs a directory: baton init my-app");
      const created = await init(directory, values.baton ? { baton: values.baton } : {});
      out(
        `Created ${created}. Next:\n  cd ${directory}\n  npm install\n  npm run dev    # or: npm test`,
      );
      return 0;
    }
    // Connected only once the arguments are known to be right.
    const result = await run(() => gatewayApi(values), command, rest, values);
    out(JSON.stringify(result, null, 2));
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      err(`${error.message}\n\n${HELP}`);
      return 2;
    }
    const e = error as { code?: string; message?: string };
    const message = e.message ?? String(error);
    // capnweb reports a refused HTTP batch by its status line: give it the gateway's code.
    const code =
      e.code ??
      (/\b401\b/.test(message) ? "UNAUTHORIZED" : /\b403\b/.test(message) ? "FORBIDDEN" : null);
    err(JSON.stringify({ error: message, code }));
    return 1;
  }
}

type Values = ReturnType<typeof parse>["values"];

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      url: { type: "string" },
      token: { type: "string" },
      baton: { type: "string" },
      workflow: { type: "string" },
      status: { type: "string" },
      "id-prefix": { type: "string" },
      limit: { type: "string" },
      cursor: { type: "string" },
      from: { type: "string" },
      timeout: { type: "string" },
      "dedupe-key": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
}

class UsageError extends Error {}

function gatewayApi(values: Values): BatonApi {
  const url = values.url ?? process.env.BATON_URL;
  if (!url) throw new UsageError("Give the gateway's URL: --url <url> or BATON_URL.");
  const token = values.token ?? process.env.BATON_TOKEN;
  // One HTTP batch per command: works on Node 20, no WebSocket needed.
  return connect<BatonApi>(url, { transport: "batch", ...(token ? { token } : {}) }) as never;
}

async function run(api: () => BatonApi, command: string, rest: string[], values: Values) {
  const id = (at: number) => {
    const value = rest[at];
    if (!value) throw new UsageError(`"${command}" needs an execution id.`);
    return value;
  };
  const most = (count: number, usage: string) => {
    if (rest.length > count) {
      throw new UsageError(`Too many arguments: ${rest.slice(count).join(" ")} (${usage}).`);
    }
  };
  switch (command) {
    case "executions": {
      const [sub] = rest;
      if (!sub)
        throw new UsageError('"executions" needs a subcommand: list, status, journal or result.');
      if (!["list", "status", "journal", "result"].includes(sub)) {
        throw new UsageError(`Unknown: executions ${sub}`);
      }
      if (sub === "list") {
        most(1, "baton executions list [options]");
        return api().list({
          ...(values.workflow ? { workflow: values.workflow } : {}),
          ...(values.status ? { status: values.status as never } : {}),
          ...(values["id-prefix"] ? { idPrefix: values["id-prefix"] } : {}),
          ...(values.limit ? { limit: Number(values.limit) } : {}),
          ...(values.cursor ? { cursor: values.cursor } : {}),
        });
      }
      const target = rest[1];
      if (!target) throw new UsageError(`"executions ${sub}" needs an execution id.`);
      most(2, `baton executions ${sub} <id>`);
      if (sub === "status") return api().status(target);
      if (sub === "journal") {
        return api().journal(target, {
          ...(values.from ? { from: Number(values.from) } : {}),
          ...(values.limit ? { limit: Number(values.limit) } : {}),
        });
      }
      if (sub === "result") {
        return api().result(target, values.timeout ? { timeout: values.timeout as never } : {});
      }
      throw new UsageError(`Unknown: executions ${sub}`);
    }
    case "send-event": {
      const type = rest[1];
      if (!type) throw new UsageError("send-event needs an execution id and an event type.");
      most(3, "baton send-event <id> <type> [<json payload>]");
      let payload: unknown;
      if (rest[2] !== undefined) {
        try {
          payload = JSON.parse(rest[2]);
        } catch {
          throw new UsageError("The payload must be JSON, e.g. '{\"approved\":true}'.");
        }
      }
      return api().sendEvent(
        id(0),
        type,
        payload as never,
        values["dedupe-key"] ? { dedupeKey: values["dedupe-key"] } : {},
      );
    }
    case "cancel":
    case "pause":
    case "resume":
    case "restart": {
      const target = id(0);
      most(1, `baton ${command} <id>`);
      return api()[command](target);
    }
    default:
      throw new UsageError(`Unknown command "${command}".`);
  }
}

// Run as a program (the package's `bin`, often through a symlink), not when imported by a test.
const self = process.argv[1];
if (self && import.meta.url === pathToFileURL(realpathSync(self)).href) {
  process.exitCode = await main(process.argv.slice(2));
}
