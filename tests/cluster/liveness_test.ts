// Node liveness against a real Redis: one live instance per nodeid, take-over
// of a dead instance's key, renewal after a lapse, who counts as alive, and
// the grace that keeps a node alive through a Redis outage.

import assert from "node:assert/strict";
import { hostname } from "node:os";
import { ConfigError } from "../../src/errors.ts";
import { Liveness, type LivenessTiming, readHolder } from "../../src/cluster/liveness.ts";
import { channelOf, nodeKey, NODES_KEY } from "../../src/cluster/keys.ts";
import { Redis } from "ioredis";
import { redisCommand, type RedisServer, startRedis } from "../helpers/redis.ts";
import type { RedisClient } from "../../src/store/redis_client.ts";
import { client, quietLog, uniqueNode, until } from "./_redis.ts";

// Fast timing so that a lapse takes a second, not ten.
const FAST: LivenessTiming = { ttlMs: 1200, graceMs: 3000, renewMs: 300, cacheMs: 100, pollMs: 50 };

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
    assert(await c.pttl(nodeKey(id)) <= FAST.ttlMs + FAST.graceMs);
  } finally {
    await live.stop();
  }
});

Deno.test("a renewal after the key lapsed claims it again and reports it", async () => {
  await using c = await client(redis.addr);
  const id = uniqueNode();
  let reclaimed = 0;
  const live = await Liveness.claim(c, id, quietLog(), FAST, () => reclaimed++);
  try {
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

/**
 * Node a's view of node b, whose key `leave` wrote and nobody renews: alive
 * at first, then dead and no longer listed.
 */
async function seenDeadUnrenewed(leave: (c: RedisClient, b: string) => Promise<unknown>) {
  await using c = await client(redis.addr);
  const a = uniqueNode("a"), b = uniqueNode("b");
  const la = await Liveness.claim(c, a, quietLog(), FAST);
  try {
    await leave(c, b);
    assert.equal(await la.isAlive(b), true);
    await until("b seen dead", async () => !(await la.isAlive(b)));
    assert(!(await la.liveNodes()).includes(b));
  } finally {
    await la.stop();
  }
}

Deno.test("a node that stops renewing counts as dead once its key lapses", async () => {
  // b as a SIGKILLed node leaves it: a key nobody renews.
  await seenDeadUnrenewed(async (c, b) => {
    await c.hset(nodeKey(b), { token: "t", host: "h", pid: "1", since: "x", seq: "0" });
    await c.pexpire(nodeKey(b), 500);
    await c.sadd(NODES_KEY, b);
  });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Leaves the key of a node that renewed `ago` ms ago (by Redis' clock) and then died. */
async function staleKey(c: RedisClient, node: string, ago: number, host = "h") {
  const [sec, usec] = await c.time();
  const at = Number(sec) * 1000 + Math.floor(Number(usec) / 1000) - ago;
  await c.hset(nodeKey(node), { token: "t", host, pid: "1", since: "x", seq: "4", at });
  await c.pexpire(nodeKey(node), 60_000);
  await c.sadd(NODES_KEY, node);
}

/** Nodes a and b claimed on clients of their own of `r`; disposing stops both, then the clients. */
async function twoNodes(r: RedisServer) {
  const ca = await client(r.addr);
  const cb = await client(r.addr);
  const a = uniqueNode("a");
  const la = await Liveness.claim(ca, a, quietLog(), FAST);
  const lb = await Liveness.claim(cb, uniqueNode("b"), quietLog(), FAST);
  return {
    a,
    lb,
    async [Symbol.asyncDispose]() {
      await la.stop();
      await lb.stop();
      await cb[Symbol.asyncDispose]();
      await ca[Symbol.asyncDispose]();
    },
  };
}

Deno.test("a node stays alive for its peers through a Redis outage longer than the TTL and shorter than the grace", async () => {
  await using r = await startRedis();
  await using nodes = await twoNodes(r);
  const { a, lb } = nodes;
  assert.equal(await lb.isAlive(a), true);
  await r.kill();
  await sleep(FAST.ttlMs + 300);
  await r.restart();
  // Every answer b gets once Redis is back says a is alive (none may say dead).
  const answers: boolean[] = [];
  const end = Date.now() + FAST.ttlMs + FAST.renewMs;
  while (Date.now() < end) {
    await lb.isAlive(a).then((alive) => answers.push(alive), () => {});
    await sleep(20);
  }
  assert(answers.length > 0, "no answer after the restart");
  assert.deepEqual(answers.filter((x) => !x), [], `${answers.length} answers`);
});

Deno.test("a node that stopped renewing is dead after the TTL when no outage excuses it", async () => {
  await seenDeadUnrenewed((c, b) => staleKey(c, b, FAST.ttlMs - 400));
});

Deno.test("a node that cannot renew but still listens on its channel stays alive within the grace", async () => {
  await using c = await client(redis.addr);
  const a = uniqueNode("a"), b = uniqueNode("b");
  const la = await Liveness.claim(c, a, quietLog(), FAST);
  const sub = new Redis({ host: "127.0.0.1", port: redis.port, lazyConnect: true });
  try {
    await sub.connect();
    await sub.subscribe(channelOf(b));
    await staleKey(c, b, FAST.ttlMs + 500);
    assert.equal(await la.isAlive(b), true);
    await sub.quit();
    await until("b seen dead once it stopped listening", async () => !(await la.isAlive(b)));
  } finally {
    sub.disconnect();
    await la.stop();
  }
});

Deno.test("claim takes over a key of another host that stopped renewing, before it lapses", async () => {
  await using c = await client(redis.addr);
  const id = uniqueNode();
  await staleKey(c, id, 0, "elsewhere");
  const live = await Liveness.claim(c, id, quietLog(), FAST);
  try {
    assert.equal((await readHolder(c, nodeKey(id)))?.token, live.token);
  } finally {
    await live.stop();
  }
});

/**
 * Node b has seen node a alive; then every command on their Redis waits (as
 * for the slots of a master failing over) while `check` runs. `paused`
 * resolves once Redis answers again.
 */
async function whileRedisWaits(
  check: (lb: Liveness, a: string, paused: Promise<string>) => Promise<void>,
) {
  await using r = await startRedis();
  await using nodes = await twoNodes(r);
  const { a, lb } = nodes;
  assert.equal(await lb.isAlive(a), true);
  await sleep(FAST.cacheMs + 50);
  await redisCommand(r.port, "CLIENT", "PAUSE", "3000", "ALL");
  const paused = redisCommand(r.port, "PING").then(() => "redis answered");
  await check(lb, a, paused);
  await paused;
}

Deno.test("a liveness check Redis is slow to answer gets the last answer instead of waiting for Redis", async () => {
  await whileRedisWaits(async (lb, a, paused) => {
    const first = await Promise.race([lb.isAlive(a).then((v) => `alive ${v}`), paused]);
    assert.equal(first, "alive true");
  });
});

Deno.test("once Redis has left a node's check unanswered for the slow limit, later checks get the last answer without waiting", async () => {
  await whileRedisWaits(async (lb, a) => {
    // The first caller waits out the slow limit, then gets the last answer.
    assert.equal(await lb.isAlive(a), true);
    // Redis still does not answer: a later caller (past the cache, so a new check) waits no more.
    await sleep(FAST.cacheMs + 50);
    const timerDueNow = new Promise<string>((resolve) => setTimeout(() => resolve("waited"), 0));
    const second = await Promise.race([lb.isAlive(a).then((v) => `alive ${v}`), timerDueNow]);
    assert.equal(second, "alive true");
  });
});
