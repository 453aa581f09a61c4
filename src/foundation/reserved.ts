import { BatonError } from "./errors.ts";

/**
 * Prefixes of the lock names and checkpoint scopes Baton keeps for itself: workflow concurrency
 * limits (`concurrency:`), StateManager state and locks (`state:`), resume-token shards
 * (`resume-tokens:`), and anything Baton adds later (`baton:`). The public clients, the gateway
 * and `BatonService` refuse them with `FORBIDDEN`, so no caller of the public API can create,
 * hold, read or overwrite them.
 */
export const RESERVED_PREFIXES: readonly string[] = [
  "baton:",
  "concurrency:",
  "state:",
  "resume-tokens:",
];

/** True if `name` is one of Baton's own lock names or checkpoint scopes. */
export function isReserved(name: string): boolean {
  return RESERVED_PREFIXES.some((prefix) => name.startsWith(prefix));
}

/**
 * Passed by Baton's own code (StateManager, resume tokens) to a client that may reach reserved
 * names. Not exported by the package: a user's client never has it.
 */
export const RESERVED_ACCESS: unique symbol = Symbol("baton.reserved-access");

/**
 * `name` unless it is reserved (and `access` is not {@link RESERVED_ACCESS}).
 *
 * @throws BatonError `FORBIDDEN` for a reserved name.
 */
export function checkNotReserved(name: string, what: string, access?: symbol): string {
  if (access !== RESERVED_ACCESS && isReserved(name)) {
    throw new BatonError(
      "FORBIDDEN",
      `${what} "${name}" is reserved: names starting with ${RESERVED_PREFIXES.map((p) => `"${p}"`).join(", ")} are Baton's own. Choose another name.`,
      { name },
    );
  }
  return name;
}
