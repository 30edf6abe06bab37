// Typed wrapper over ioredis Lua commands (EVALSHA, falling back to EVAL
// after a SCRIPT FLUSH or a Redis restart): the cluster layer's
// compare-and-set steps each run as one script on one key.

import type { RedisClient } from "../store/redis_client.ts";

/** Runs the script with its keys first, then its arguments. */
export type Script = (...keysThenArgs: (string | number)[]) => Promise<unknown>;

/** Defines `lua` on `client` under `name`, taking `keys` keys. */
export function defineScript(client: RedisClient, name: string, keys: number, lua: string): Script {
  client.defineCommand(name, { numberOfKeys: keys, lua });
  // defineCommand adds an untyped method of that name.
  const method = (client as unknown as Record<string, Script>)[name]!;
  return (...args) => method.apply(client, args);
}
