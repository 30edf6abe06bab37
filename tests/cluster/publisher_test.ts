// Publishing: one PUBLISH per target channel per turn, in order, split when
// large; on a Redis Cluster all of a node's publishes go through one cluster
// node (keyless commands otherwise go to a random one per pipeline, and
// publishes broadcast from different nodes can overtake each other).

import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { decodeBatch, type NodeMessage } from "../../src/cluster/channel.ts";
import { Publisher } from "../../src/cluster/publisher.ts";
import { redisCommand, startRedis, startRedisCluster } from "../helpers/redis.ts";
import { client, until } from "./_redis.ts";

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

/** Subscribes to `channel` on the Redis at `port`; collects every batch it gets. */
async function listen(port: number, channel: string) {
  const sub = new Redis({ host: "127.0.0.1", port, lazyConnect: true });
  await sub.connect();
  await sub.subscribe(channel);
  const batches: string[][] = [];
  sub.on("message", (_ch: string, text: string) => {
    const b = decodeBatch(text);
    assert.ok(b, `malformed batch: ${text.slice(0, 80)}`);
    batches.push(b.messages.map((m) => m.t === "kick" ? m.sid : "?"));
  });
  return { batches, [Symbol.asyncDispose]: async () => void await sub.quit() };
}

const kick = (sid: string): NodeMessage => ({ t: "kick", jid: "u@d", sid });

Deno.test("messages queued in one turn go out as one PUBLISH per target channel, in order", async () => {
  await using redis = await startRedis();
  await using c = await client(redis.addr);
  await using a = await listen(redis.port, "sara:chan:a");
  await using b = await listen(redis.port, "sara:chan:b");
  const p = new Publisher(c, "n1");
  const before = (await publishCalls([redis.port]))[0]!;
  const sent: Promise<number>[] = [];
  for (let i = 0; i < 300; i++) {
    sent.push(p.send("sara:chan:a", kick(`a${i}`)));
    if (i % 60 === 0) sent.push(p.send("sara:chan:b", kick(`b${i}`)));
  }
  // Every message of a batch learns its batch's receiver count.
  assert.deepEqual(new Set(await Promise.all(sent)), new Set([1]));
  assert.equal((await publishCalls([redis.port]))[0]! - before, 2);
  await until("both batches heard", () => a.batches.length === 1 && b.batches.length === 1);
  assert.deepEqual(a.batches[0], Array.from({ length: 300 }, (_, i) => `a${i}`));
  assert.deepEqual(b.batches[0], ["b0", "b60", "b120", "b180", "b240"]);
});

Deno.test("a batch too large for one PUBLISH is split over several, still in send order", async () => {
  await using redis = await startRedis();
  await using c = await client(redis.addr);
  await using a = await listen(redis.port, "sara:chan:a");
  const p = new Publisher(c, "n1");
  const all = Array.from({ length: 1300 }, (_, i) => `m${i}`);
  await Promise.all(all.map((sid) => p.send("sara:chan:a", kick(sid))));
  await until("every message heard", () => a.batches.flat().length === all.length);
  assert.ok(a.batches.length >= 3, `${a.batches.length} batches`);
  assert.ok(a.batches.every((batch) => batch.length <= 512));
  assert.deepEqual(a.batches.flat(), all);
});

Deno.test("a failed PUBLISH fails every message of its batch", async () => {
  await using redis = await startRedis();
  await using c = await client(redis.addr);
  const p = new Publisher(c, "n1");
  await redis.stop();
  const results = await Promise.allSettled([1, 2, 3].map((i) => p.send("ch", kick(`x${i}`))));
  assert.deepEqual(results.map((r) => r.status), ["rejected", "rejected", "rejected"]);
});
