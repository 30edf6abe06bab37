// The node's subscription against real Redis servers: it comes back by itself
// after Redis restarts (reporting the gap: publishes meanwhile are lost), and on a Redis Cluster it moves to another node when
// the one it sat on dies.

import assert from "node:assert/strict";
import { Subscriber } from "../../src/cluster/subscriber.ts";
import { parseDbaddr } from "../../src/store/redis_client.ts";
import { reservePort } from "../helpers/ports.ts";
import { redisCommand, startRedis, startRedisCluster } from "../helpers/redis.ts";
import { quietLog, until } from "./_redis.ts";

/** Publishes `text` on `channel` via `port` until `got` holds it. */
async function publishUntilHeard(port: number, channel: string, text: string, got: string[]) {
  await until(`"${text}" heard`, async () => {
    await redisCommand(port, "PUBLISH", channel, text).catch(() => 0);
    return got.includes(text);
  }, 20_000);
}

Deno.test("a subscription comes back by itself after its Redis restarts, and reports the gap when it drops and when it is back", async () => {
  await using redis = await startRedis();
  const got: string[] = [];
  const gaps: (string | null)[] = [];
  const sub: Subscriber = new Subscriber(
    parseDbaddr(redis.addr),
    "t",
    "ch",
    (t) => got.push(t),
    quietLog(),
    undefined,
    () => gaps.push(sub.address),
  );
  await sub.start();
  try {
    await publishUntilHeard(redis.port, "ch", "before", got);
    assert.deepEqual(gaps, [], "no gap while it listens");
    await redis.kill();
    await until("subscription dropped", () => sub.address === null);
    assert.deepEqual(gaps, [null], "reported when it dropped");
    await redis.restart();
    await publishUntilHeard(redis.port, "ch", "after", got);
    assert.deepEqual(gaps, [null, redis.addr], "and again once it listens again");
  } finally {
    await sub.close();
  }
});

Deno.test("on a Redis Cluster the subscription moves to another node when its node dies", async () => {
  await using cluster = await startRedisCluster();
  const got: string[] = [];
  const target = parseDbaddr(cluster.addr);
  const sub = new Subscriber(target, "t", "ch", (t) => got.push(t), quietLog());
  await sub.start();
  try {
    const first = sub.address!;
    const dead = cluster.nodes.find((n) => n.addr === first)!;
    const other = cluster.nodes.find((n) => n.addr !== first)!;
    await publishUntilHeard(other.port, "ch", "before", got);
    await dead.kill();
    // A PUBLISH to a live node reaches every node's subscribers, even with the cluster down.
    await publishUntilHeard(other.port, "ch", "after", got);
    assert.notEqual(sub.address, first);
  } finally {
    await sub.close();
  }
});

Deno.test("start rejects when no address answers", async () => {
  const port = reservePort();
  const sub = new Subscriber(parseDbaddr(`127.0.0.1:${port}`), "t", "ch", () => {}, quietLog());
  await assert.rejects(() => sub.start(), /cannot subscribe to ch/);
  await sub.close();
});
