// A node on a Redis Cluster (one replica per master, cluster-require-full-coverage
// no) while a master is down: /readyz says so and recovers on its own after the
// promotion, logins that need the dead master get store_error (not fail_token)
// and the others go on.

import assert from "node:assert/strict";
import { userKeys } from "../../src/store/redis_keys.ts";
import { TestClient } from "../helpers/client.ts";
import { startRedisCluster } from "../helpers/redis.ts";
import { readyzUntil, startTestServer } from "../helpers/server.ts";

const READYZ_MS = 15_000;

Deno.test("/readyz turns 503 while a Redis Cluster master is down and 200 once its replica took over, without a restart", async () => {
  await using c = await startRedisCluster({ replicas: 1, fullCoverage: false });
  await using srv = await startTestServer({ dbaddr: c.addr });
  assert.equal(await readyzUntil(srv.rpcPort, 200, READYZ_MS), "ready\n");
  const victim = await c.masterOf("x");
  const replica = await c.replicaOf(victim);
  await victim.kill();
  // The other masters still answer pings: only the slot map says one is missing.
  assert.equal(await readyzUntil(srv.rpcPort, 503, READYZ_MS), "not ready: store unreachable\n");
  await c.waitPromoted(replica);
  assert.equal(await readyzUntil(srv.rpcPort, 200, READYZ_MS), "ready\n");
  const metrics = await (await fetch(`http://127.0.0.1:${srv.rpcPort}/metrics`)).text();
  assert.match(metrics, /^sara_store_retries_total\{result="ok"\} \d+$/m);
});

Deno.test("with a Redis Cluster master and its replica down, a login that needs it gets store_error and a login on another master succeeds", async () => {
  await using c = await startRedisCluster({ replicas: 1, fullCoverage: false });
  await using srv = await startTestServer({ dbaddr: c.addr });
  const users = Array.from({ length: 40 }, (_, i) => `l${i}@d`);
  const victim = await c.masterOf(userKeys(users[0]!).inbox);
  const replica = await c.replicaOf(victim);
  const owners = await Promise.all(users.map((u) => c.masterOf(userKeys(u).inbox)));
  const down = users.find((_, i) => owners[i] === victim)!;
  const up = users.find((_, i) => owners[i] !== victim)!;
  await Promise.all([victim.kill(), replica.kill()]);
  await using refused = await TestClient.connect(srv.port);
  const answer = (await refused.login(down)).json;
  assert.deepEqual(answer.entity, { result: "error", reason: "store_error" });
  await using ok = await TestClient.connect(srv.port);
  assert.deepEqual((await ok.login(up)).json.entity, { result: "ok" });
});
