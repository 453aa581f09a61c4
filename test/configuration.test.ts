import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { executions, locks } from "../src/index.ts";
import { expectBatonError, uniqueName } from "./helpers.ts";
import { greet } from "./workflows.ts";

describe("a misconfigured Worker gets errors that name the fix", () => {
  it("an actor class bound without new_sqlite_classes", async () => {
    const error = await expectBatonError(
      env.KvBacked.getByName(uniqueName("kv")).status(),
      "CONFIGURATION_ERROR",
      /new_sqlite_classes/,
    );
    expect(error.message).toMatch(/\[\[migrations\]\]/);
    expect(error.message).toMatch(/KvBackedExecutions/);
  });

  it("a binding of another class given to a client", async () => {
    const wrong = executions(env.Locks as never);
    await expectBatonError(
      wrong.start(greet, { name: "W" }, { id: uniqueName("w") }) as Promise<unknown>,
      "CONFIGURATION_ERROR",
      /not an ExecutionActor.*class_name/,
    );
    await expectBatonError(
      locks(env.TestExecutions as never).acquire(uniqueName("l"), { owner: "o", ttl: "1m" }),
      "CONFIGURATION_ERROR",
      /not a LockActor/,
    );
  });

  it("a workflow started by a name that is not registered", async () => {
    const id = uniqueName("unregistered");
    await expectBatonError(
      env.TestExecutions.getByName(id).start("no-such-flow", {}, { id }),
      "UNKNOWN_WORKFLOW",
      /Add it to the class's `workflows` list/,
    );
  });
});
