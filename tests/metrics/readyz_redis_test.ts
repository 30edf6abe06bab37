// /readyz of a node on Redis (`dbaddr`): 503 while Redis is down, 200 again
// once it is back, with the node running throughout.

import assert from "node:assert/strict";
import { startRedis } from "../helpers/redis.ts";
import { readyzUntil, startTestServer } from "../helpers/server.ts";

const READYZ_MS = 20_000;

Deno.test("/readyz turns 503 when Redis stops and 200 when it returns", async () => {
  await using redis = await startRedis();
  await using srv = await startTestServer({ dbaddr: redis.addr });
  assert.equal(await readyzUntil(srv.rpcPort, 200, READYZ_MS), "ready\n");
  await redis.kill();
  assert.equal(await readyzUntil(srv.rpcPort, 503, READYZ_MS), "not ready: store unreachable\n");
  // The process itself is still healthy.
  const health = await fetch(`http://127.0.0.1:${srv.rpcPort}/healthz`);
  assert.equal(health.status, 200);
  await health.body?.cancel();
  await redis.restart();
  assert.equal(await readyzUntil(srv.rpcPort, 200, READYZ_MS), "ready\n");
});
