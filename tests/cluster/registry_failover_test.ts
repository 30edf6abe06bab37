// The session registry on a Redis Cluster with one replica per master while
// a master is killed and its replica takes over: a lookup that locates a
// user's session while the master is down is retried by the store's retry
// rule (docs/cluster.md, "Retry rule") and finds the session on the promoted
// replica, instead of failing at once.

import assert from "node:assert/strict";
import { sessionKey } from "../../src/cluster/keys.ts";
import { Registry } from "../../src/cluster/registry.ts";
import { redisCommand, startRedisCluster } from "../helpers/redis.ts";
import { client, quietLog, uniqueNode } from "./_redis.ts";

const USERS = Array.from({ length: 60 }, (_, i) => `r${i}@d`);

Deno.test("Registry on a Redis Cluster: lookups made while a master is killed find the sessions once its replica is promoted", async () => {
  await using c = await startRedisCluster({ replicas: 1 });
  await using redis = await client(c.addr);
  const r = new Registry(redis, uniqueNode("n"), quietLog(), () => Promise.resolve());
  for (const u of USERS) await r.register(u, `s-${u}`, "tcp");
  const victim = await c.masterOf(sessionKey(USERS[0]!));
  const owners = await Promise.all(USERS.map((u) => c.masterOf(sessionKey(u))));
  const moved = USERS.filter((_, i) => owners[i] === victim);
  const replica = await c.replicaOf(victim);
  // Its replica has every entry (replication is asynchronous).
  await redisCommand(victim.port, "WAIT", "1", "5000");
  await victim.kill();
  // All in one turn, as the router locates the recipients of a batch. The
  // replica takes over 1 s later (no wait for the failure detection): by
  // then ioredis' own few redirections (about 100 ms apart) have given up,
  // and the promotion falls within the retry window (2 s) of the rule.
  const lookups = Promise.allSettled(moved.map(async (u) => (await r.lookup(u))?.sid));
  await new Promise((resolve) => setTimeout(resolve, 1000));
  await redisCommand(replica.port, "CLUSTER", "FAILOVER", "TAKEOVER");
  const found = (await lookups).map((x) => x.status === "fulfilled" ? x.value : String(x.reason));
  assert.deepEqual(found, moved.map((u) => `s-${u}`));
});
