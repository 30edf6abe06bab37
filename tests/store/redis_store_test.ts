// The store contract against one Redis and a 3-master Redis Cluster, plus what
// only Redis has: outages, AOF persistence, hash-tag slots, key TTLs, dbpool.

import assert from "node:assert/strict";
import { StoreError } from "../../src/errors.ts";
import { parseDbaddr } from "../../src/store/redis_client.ts";
import { groupKey, userKeys } from "../../src/store/redis_keys.ts";
import { RedisStore } from "../../src/store/redis_store.ts";
import type { InboxEntry, OfflineRules } from "../../src/store/store.ts";
import {
  type RedisCluster,
  redisCommand,
  type RedisServer,
  startRedis,
  startRedisCluster,
} from "../helpers/redis.ts";
import { reservePort } from "../helpers/ports.ts";
import { storeContract } from "./store_contract.ts";

let single: RedisServer | undefined;
let cluster: RedisCluster | undefined;

Deno.test.beforeAll(async () => {
  [single, cluster] = await Promise.all([startRedis(), startRedisCluster()]);
});

Deno.test.afterAll(async () => {
  await Promise.all([single?.stop(), cluster?.stop()]);
});

const RULES: OfflineRules = {
  expire: 3600,
  max: 100,
  maxBytes: 1 << 20,
  policy: {},
  dedupIds: 10,
};

/** A store on `addr` (emptied first through `ports`), closed by `await using`. */
async function open(addr: string, ports: number[], rules = RULES, pool = 16) {
  for (const p of ports) await redisCommand(p, "FLUSHALL");
  const s = await RedisStore.open(parseDbaddr(addr), rules, { pool, connectionName: "sara-test" });
  return Object.assign(s, { [Symbol.asyncDispose]: () => s.close() });
}

storeContract("RedisStore on one Redis", (rules) => open(single!.addr, [single!.port], rules), {
  sharedDedup: true,
});
storeContract(
  "RedisStore on a Redis Cluster",
  (rules) => open(cluster!.addr, cluster!.ports, rules),
  {
    sharedDedup: true,
  },
);

let seq = 0;
function entry(user: string, from = "a@d"): InboxEntry {
  const id = `r${++seq}`;
  return { user, id, from, type: 1, ct: Date.now(), packet: JSON.stringify({ envelope: { id } }) };
}

const appends = (...es: InboxEntry[]) => ({ appends: es, removes: [], sent: [] });
const ids = async (s: RedisStore, user: string) => (await s.inbox(user)).map((e) => e.id);

/** Rejects if `p` has not settled within `ms` (a hang fails the test instead of stalling it). */
async function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`not settled within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Retries `fn` until it resolves (Redis reconnecting); the last error after `ms`. */
async function eventually<T>(fn: () => Promise<T>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

Deno.test("RedisStore: with Redis killed, commit and inbox reject with StoreError at once; the same store works again after restart", async () => {
  await using redis = await startRedis({ appendfsync: "always" });
  await using s = await open(redis.addr, [redis.port]);
  const [e1, e2, e3] = [entry("u@d"), entry("u@d"), entry("u@d")];
  await s.commit(appends(e1));
  await redis.kill();
  const err = await within(s.commit(appends(e2)).catch((e) => e), 10_000);
  assert.ok(err instanceof StoreError, String(err));
  assert.match(err.message, /commit/);
  await assert.rejects(within(s.inbox("u@d"), 10_000), StoreError);
  await assert.rejects(within(s.ping(), 10_000), StoreError);
  await redis.restart();
  await eventually(() => s.commit(appends(e3)));
  assert.deepEqual(await ids(s, "u@d"), [e1.id, e3.id]);
  await s.ping();
});

Deno.test("RedisStore: with a Redis Cluster master killed, commits to its users reject with StoreError; the same store works again after it restarts", async () => {
  await using c = await startRedisCluster({ appendfsync: "always" });
  await using s = await open(c.addr, c.ports);
  const users = Array.from({ length: 30 }, (_, i) => `c${i}@d`);
  await s.commit(appends(...users.map((u) => entry(u))));
  // A user whose keys live on node 0 (any other node answers MOVED, which rejects).
  let victim = "";
  for (const u of users) {
    if (await redisCommand(c.ports[0]!, "EXISTS", userKeys(u).inbox).catch(() => 0) === 1) {
      victim = u;
      break;
    }
  }
  assert.ok(victim, "no user on node 0");
  await c.nodes[0]!.kill();
  const err = await within(s.commit(appends(entry(victim))).catch((e) => e), 10_000);
  assert.ok(err instanceof StoreError, String(err));
  await c.nodes[0]!.restart();
  const e = entry(victim);
  await eventually(() => s.commit(appends(e)), 20_000);
  const got = await ids(s, victim);
  assert.equal(got.length, 2);
  assert.equal(got[1], e.id);
});

Deno.test("RedisStore: inboxes, blacklists and sent ids survive a Redis crash with appendfsync always", async () => {
  await using redis = await startRedis({ appendfsync: "always" });
  const es = [entry("u@d"), entry("u@d")];
  {
    await using s = await open(redis.addr, [redis.port]);
    await s.commit({ appends: es, removes: [], sent: [{ from: "a@d", id: "s1" }] });
    await s.block("u@d", "bad@d", 7);
  }
  await redis.kill();
  await redis.restart();
  const s2 = await RedisStore.open(parseDbaddr(redis.addr), RULES, {
    pool: 4,
    connectionName: "sara-test",
  });
  try {
    assert.deepEqual(await s2.inbox("u@d"), es);
    assert.equal(await s2.blocks("u@d", "bad@d"), true);
    assert.deepEqual(await s2.recentIds("a@d"), ["s1"]);
  } finally {
    await s2.close();
  }
});

Deno.test("RedisStore: every key of one user lands in one Redis Cluster slot, even with braces in the jid", async () => {
  await using s = await open(cluster!.addr, cluster!.ports);
  for (const user of ["u@d", "}we{ird%@d"]) {
    const e = entry(user, "x@d");
    // One script touches all five keys: a cross-slot key would fail it.
    await s.commit({ appends: [e], removes: [], sent: [{ from: user, id: "sent1" }] });
    await s.block(user, "bad@d", 1);
    assert.deepEqual(await ids(s, user), [e.id]);
    const slots = new Set<unknown>();
    for (const key of Object.values(userKeys(user))) {
      slots.add(await redisCommand(cluster!.ports[0]!, "CLUSTER", "KEYSLOT", key));
    }
    assert.equal(slots.size, 1, `${user}: ${[...slots]}`);
  }
  assert.notEqual(userKeys("a}b@d").inbox, userKeys("a%7Db@d").inbox);
});

Deno.test("RedisStore: inbox keys carry a TTL past offline_expire, group keys their cache ttl, blacklists none", async () => {
  await using s = await open(single!.addr, [single!.port]);
  await s.commit({ appends: [entry("u@d")], removes: [], sent: [{ from: "u@d", id: "x" }] });
  await s.block("u@d", "bad@d", 1);
  await s.setGroupMembers("group_g@d", ["a", "b"], 60);
  const k = userKeys("u@d");
  const pttl = async (key: string) => Number(await redisCommand(single!.port, "PTTL", key));
  for (const key of [k.inbox, k.order]) {
    const ttl = await pttl(key);
    assert.ok(ttl > RULES.expire * 1000 && ttl <= RULES.expire * 1000 + 3600_000, `${key} ${ttl}`);
  }
  assert.ok((await pttl(k.sent)) > 0);
  assert.equal(await pttl(k.blacklist), -1);
  const g = await pttl(groupKey("group_g@d"));
  assert.ok(g > 0 && g <= 60_000, String(g));
  assert.equal(groupKey("group_g@d"), "sara:group_g@d");
});

Deno.test("RedisStore: an id already in the inbox is kept once, so a retried commit adds nothing", async () => {
  await using s = await open(single!.addr, [single!.port]);
  const e = entry("u@d");
  assert.equal((await s.commit(appends(e))).get("u@d"), 1);
  assert.equal((await s.commit(appends(e, entry("u@d")))).get("u@d"), 2);
  assert.equal((await ids(s, "u@d"))[0], e.id);
  assert.equal((await s.inbox("u@d")).length, 2);
});

Deno.test("RedisStore: dbpool bounds the store operations in flight; the rest wait their turn", async () => {
  await using s = await open(single!.addr, [single!.port], RULES, 2);
  const ops = [
    s.commit(appends(entry("u@d"))),
    s.block("u@d", "x@d", 1),
    s.blocks("u@d", "x@d"),
    s.inbox("u@d"),
    s.recentIds("u@d"),
  ];
  assert.deepEqual(s.load, { active: 2, waiting: 3 });
  const [, , blocked, inbox] = await Promise.all(ops);
  assert.equal(blocked, true);
  assert.equal((inbox as InboxEntry[]).length, 1);
  assert.deepEqual(s.load, { active: 0, waiting: 0 });
});

Deno.test("RedisStore.open rejects with StoreError naming the address when Redis is not there", async () => {
  const port = reservePort();
  const err = await RedisStore.open(parseDbaddr(`127.0.0.1:${port}`), RULES, {
    pool: 1,
    connectionName: "sara-test",
  }).catch((e) => e);
  assert.ok(err instanceof StoreError, String(err));
  assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
});
