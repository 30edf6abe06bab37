// Publishing on a Redis Cluster: all of a node's publishes go through one
// cluster node (keyless commands otherwise go to a random one per pipeline,
// and publishes broadcast from different nodes can overtake each other).

import assert from "node:assert/strict";
import { Publisher } from "../../src/cluster/publisher.ts";
import { redisCommand, startRedisCluster } from "../helpers/redis.ts";
import { client } from "./_redis.ts";

/** PUBLISH calls each node has served so far. */
async function publishCalls(ports: number[]): Promise<number[]> {
  return await Promise.all(ports.map(async (port) => {
    const info = String(await redisCommand(port, "INFO", "commandstats"));
    return Number(/cmdstat_publish:calls=(\d+)/.exec(info)?.[1] ?? 0);
  }));
}

Deno.test("every publish of one node goes through the same cluster node, and moves when it dies", async () => {
  await using cluster = await startRedisCluster();
  await using c = await client(cluster.addr);
  const p = new Publisher(c, "n1");
  for (let i = 0; i < 40; i++) await p.publish("sara:chan:x", `m${i}`);
  const calls = await publishCalls(cluster.ports);
  assert.deepEqual(calls.toSorted(), [0, 0, 40], `per node: ${calls}`);
  const pinned = calls.indexOf(40);
  await cluster.nodes[pinned]!.kill();
  // The first publish after the death may fail; then another node takes them.
  await p.publish("sara:chan:x", "probe").catch(() => {});
  for (let i = 0; i < 10; i++) await p.publish("sara:chan:x", `after${i}`);
  const live = cluster.ports.filter((_, i) => i !== pinned);
  const after = await publishCalls(live);
  assert.equal(after.filter((n) => n >= 10).length, 1, `per live node: ${after}`);
});
