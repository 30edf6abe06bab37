// Node liveness against a real Redis: one live instance per nodeid, take-over
// of a dead instance's key, renewal after a lapse, and who counts as alive.

import assert from "node:assert/strict";
import { hostname } from "node:os";
import { ConfigError } from "../../src/errors.ts";
import { Liveness, type LivenessTiming, readHolder } from "../../src/cluster/liveness.ts";
import { nodeKey, NODES_KEY } from "../../src/cluster/keys.ts";
import { type RedisServer, startRedis } from "../helpers/redis.ts";
import { client, quietLog, uniqueNode, until } from "./_redis.ts";

// Fast timing so that a lapse takes a second, not ten.
const FAST: LivenessTiming = { ttlMs: 1200, renewMs: 300, cacheMs: 100, pollMs: 50 };

let redis: RedisServer;
Deno.test.beforeAll(async () => {
  redis = await startRedis();
});
Deno.test.afterAll(() => redis.stop());

Deno.test("claim refuses a nodeid whose key another live instance keeps renewing", async () => {
  await using c = await client(redis.addr);
  const id = uniqueNode();
  const first = await Liveness.claim(c, id, quietLog(), FAST);
  try {
    const err = await Liveness.claim(c, id, quietLog(), FAST).then(() => null, (e) => e);
    assert(err instanceof ConfigError, String(err));
    assert(err.message.includes(`nodeid "${id}" is already running`), err.message);
    assert(err.message.includes(`pid ${Deno.pid} on ${hostname()}`), err.message);
    // The refused start left the first instance's key alone.
    assert.equal((await readHolder(c, nodeKey(id)))?.token, first.token);
  } finally {
    await first.stop();
  }
});

Deno.test("claim takes over a key of another host once it lapses unrenewed", async () => {
  await using c = await client(redis.addr);
  const id = uniqueNode();
  await c.hset(nodeKey(id), { token: "old", host: "elsewhere", pid: "1", since: "x", seq: "7" });
  await c.pexpire(nodeKey(id), 800);
  const live = await Liveness.claim(c, id, quietLog(), FAST);
  try {
    const h = await readHolder(c, nodeKey(id));
    assert.equal(h?.token, live.token);
    assert.equal(h?.pid, String(Deno.pid));
  } finally {
    await live.stop();
  }
});

Deno.test("claim takes over before the TTL when the holder's process on this host is gone", async () => {
  await using c = await client(redis.addr);
  const id = uniqueNode();
  // A pid that surely ran and exited on this host.
  const child = new Deno.Command("true").spawn();
  await child.status;
  await c.hset(nodeKey(id), {
    token: "old",
    host: hostname(),
    pid: String(child.pid),
    since: "x",
    seq: "3",
  });
  await c.pexpire(nodeKey(id), 60_000);
  const live = await Liveness.claim(c, id, quietLog(), FAST);
  try {
    assert.equal((await readHolder(c, nodeKey(id)))?.token, live.token);
    // Taken over, not lapsed: the fresh key has our TTL, not what was left of the old one.
    assert(await c.pttl(nodeKey(id)) <= FAST.ttlMs);
  } finally {
    await live.stop();
  }
});

Deno.test("a renewal after the key lapsed claims it again and reports it", async () => {
  await using c = await client(redis.addr);
  const id = uniqueNode();
  const live = await Liveness.claim(c, id, quietLog(), FAST);
  try {
    let reclaimed = 0;
    live.onReclaimed = () => reclaimed++;
    await c.del(nodeKey(id)); // as if Redis lost it
    await until("liveness re-claimed", () => reclaimed === 1);
    assert.equal((await readHolder(c, nodeKey(id)))?.token, live.token);
  } finally {
    await live.stop();
  }
});

Deno.test("liveNodes lists live nodes only and a stopped node is dead at once", async () => {
  await using c = await client(redis.addr);
  const a = uniqueNode("a"), b = uniqueNode("b");
  const la = await Liveness.claim(c, a, quietLog(), FAST);
  const lb = await Liveness.claim(c, b, quietLog(), FAST);
  try {
    const nodes = await la.liveNodes();
    assert(nodes.includes(a) && nodes.includes(b), nodes.join());
    assert.equal(await la.isAlive(b), true);
    await lb.stop();
    assert.equal(await c.exists(nodeKey(b)), 0);
    await until("b seen dead", async () => !(await la.isAlive(b)));
    assert(!(await la.liveNodes()).includes(b));
  } finally {
    await la.stop();
    await lb.stop();
  }
});

Deno.test("a node that stops renewing counts as dead once its key lapses", async () => {
  await using c = await client(redis.addr);
  const a = uniqueNode("a"), b = uniqueNode("b");
  const la = await Liveness.claim(c, a, quietLog(), FAST);
  try {
    // b as a SIGKILLed node leaves it: a key nobody renews.
    await c.hset(nodeKey(b), { token: "t", host: "h", pid: "1", since: "x", seq: "0" });
    await c.pexpire(nodeKey(b), 500);
    await c.sadd(NODES_KEY, b);
    assert.equal(await la.isAlive(b), true);
    await until("b seen dead", async () => !(await la.isAlive(b)));
    assert(!(await la.liveNodes()).includes(b));
  } finally {
    await la.stop();
  }
});
