// /readyz of a node on Redis (`dbaddr`): 503 while Redis is down, 200 again
// once it is back, with the node running throughout.

import assert from "node:assert/strict";
import { startRedis } from "../helpers/redis.ts";
import { startTestServer } from "../helpers/server.ts";

/** Polls /readyz until it answers `status`; returns the body. */
async function readyz(port: number, status: number, ms = 20_000): Promise<string> {
  const deadline = Date.now() + ms;
  for (;;) {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`);
    const body = await res.text();
    if (res.status === status) return body;
    if (Date.now() > deadline) throw new Error(`/readyz still ${res.status} (${body.trim()})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

Deno.test("/readyz turns 503 when Redis stops and 200 when it returns", async () => {
  await using redis = await startRedis();
  await using srv = await startTestServer({ dbaddr: redis.addr });
  assert.equal(await readyz(srv.rpcPort, 200), "ready\n");
  await redis.kill();
  assert.equal(await readyz(srv.rpcPort, 503), "not ready: store unreachable\n");
  // The process itself is still healthy.
  const health = await fetch(`http://127.0.0.1:${srv.rpcPort}/healthz`);
  assert.equal(health.status, 200);
  await health.body?.cancel();
  await redis.restart();
  assert.equal(await readyz(srv.rpcPort, 200), "ready\n");
});
