// Shared bits of the cluster unit tests: a quiet logger, a Redis client for
// an address, unique node ids, and polling for a condition.

import { Logger } from "../../src/log.ts";
import { connectRedis, parseDbaddr, type RedisClient } from "../../src/store/redis_client.ts";

/** A logger that writes nothing (SARA_TEST_LOGLEVEL=3 shows the lines). */
export function quietLog(): Logger {
  const level = Number(Deno.env.get("SARA_TEST_LOGLEVEL") ?? -1);
  return new Logger({ level, format: "text", file: "", stdout: level >= 0 });
}

/** A command client of `addr` ("h:p" or a cluster list); closed by the caller. */
export async function client(addr: string): Promise<RedisClient & AsyncDisposable> {
  const c = await connectRedis(parseDbaddr(addr), "sara-test");
  return Object.assign(c, {
    async [Symbol.asyncDispose]() {
      await c.quit().catch(() => c.disconnect());
    },
  });
}

let serial = 0;

/** A nodeid no other test of this run uses. */
export function uniqueNode(prefix = "t"): string {
  return `${prefix}${Date.now().toString(36)}${(serial++).toString(36)}`;
}

/** Polls `f` until it returns true; throws after `ms` naming `what`. */
export async function until(what: string, f: () => Promise<boolean> | boolean, ms = 15_000) {
  const deadline = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
