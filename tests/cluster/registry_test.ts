// The session registry against a real Redis: kick of a session on another
// node, unregister only of the session named, ghost cleanup after a restart,
// and restore of entries Redis lost.

import assert from "node:assert/strict";
import { nodeSessionsKey, sessionKey } from "../../src/cluster/keys.ts";
import { Registry } from "../../src/cluster/registry.ts";
import { type RedisServer, startRedis } from "../helpers/redis.ts";
import { client, quietLog, uniqueNode } from "./_redis.ts";

let redis: RedisServer;
Deno.test.beforeAll(async () => {
  redis = await startRedis();
});
Deno.test.afterAll(() => redis.stop());

type Kick = [node: string, jid: string, sid: string];

function registry(c: Registry["client"], node: string, kicks: Kick[] = []): Registry {
  return new Registry(c, node, quietLog(), (n, jid, sid) => {
    kicks.push([n, jid, sid]);
    return Promise.resolve();
  });
}

Deno.test("a login on another node replaces the entry and kicks the older session there", async () => {
  await using c = await client(redis.addr);
  const n1 = uniqueNode("n"), n2 = uniqueNode("n");
  const kicks1: Kick[] = [], kicks2: Kick[] = [];
  const r1 = registry(c, n1, kicks1), r2 = registry(c, n2, kicks2);
  const jid = `${uniqueNode("u")}@d`;
  await r1.register(jid, "s1", "tcp");
  assert.deepEqual(kicks1, []);
  await r2.register(jid, "s2", "ws");
  assert.deepEqual(kicks2, [[n1, jid, "s1"]]);
  const e = await r1.lookup(jid);
  assert.equal(e?.node, n2);
  assert.equal(e?.sid, "s2");
  assert.equal(e?.transport, "ws");
});

Deno.test("a re-login on the same node kicks nobody remotely", async () => {
  await using c = await client(redis.addr);
  const kicks: Kick[] = [];
  const r = registry(c, uniqueNode("n"), kicks);
  const jid = `${uniqueNode("u")}@d`;
  await r.register(jid, "s1", "tcp");
  await r.register(jid, "s2", "tcp");
  assert.deepEqual(kicks, []);
});

Deno.test("unregister removes the entry only while it names that session", async () => {
  await using c = await client(redis.addr);
  const n1 = uniqueNode("n"), n2 = uniqueNode("n");
  const r1 = registry(c, n1), r2 = registry(c, n2);
  const jid = `${uniqueNode("u")}@d`;
  await r1.register(jid, "s1", "tcp");
  await r2.register(jid, "s2", "tcp");
  await r1.unregister(jid, "s1"); // the kicked session's logout
  assert.equal((await r2.lookup(jid))?.sid, "s2");
  assert.equal(await r1.count(n1), 0);
  assert.equal(await r2.count(n2), 1);
  await r2.unregister(jid, "s2");
  assert.equal(await r2.lookup(jid), null);
  assert.equal(await r2.count(n2), 0);
});

Deno.test("a logout issued while its login is still registering leaves no entry behind", async () => {
  await using c = await client(redis.addr);
  const n = uniqueNode("n");
  const r = registry(c, n);
  const jid = `${uniqueNode("u")}@d`;
  // The client hung up during its login: both steps are issued back to back.
  await Promise.all([r.register(jid, "s1", "tcp"), r.unregister(jid, "s1")]);
  assert.equal(await r.lookup(jid), null);
  assert.equal(await r.count(n), 0);
});

Deno.test("clearGhosts deletes what this node registered before, but not re-logins elsewhere", async () => {
  await using c = await client(redis.addr);
  const n1 = uniqueNode("n"), n2 = uniqueNode("n");
  const before = registry(c, n1), other = registry(c, n2);
  const [a, b, moved] = ["a", "b", "m"].map((u) => `${u}${uniqueNode("u")}@d`) as [
    string,
    string,
    string,
  ];
  await before.register(a, "s-a", "tcp");
  await before.register(b, "s-b", "tcp");
  await before.register(moved, "s-m", "tcp");
  await other.register(moved, "s-m2", "tcp");
  // n1 was SIGKILLed: its entries stay. The restarted n1 clears them.
  const restarted = registry(c, n1);
  assert.equal(await restarted.clearGhosts(), 2);
  assert.equal(await restarted.lookup(a), null);
  assert.equal(await restarted.lookup(b), null);
  assert.equal((await restarted.lookup(moved))?.node, n2);
  assert.equal(await c.exists(nodeSessionsKey(n1)), 0);
});

Deno.test("restore puts back an entry Redis lost, never over a newer login elsewhere", async () => {
  await using c = await client(redis.addr);
  const n1 = uniqueNode("n"), n2 = uniqueNode("n");
  const r1 = registry(c, n1), r2 = registry(c, n2);
  const lost = `${uniqueNode("l")}@d`, moved = `${uniqueNode("m")}@d`;
  await r1.register(lost, "s1", "tcp");
  await c.del(sessionKey(lost), nodeSessionsKey(n1));
  // Lost too, then the user logged in on n2 (whose kick did not reach n1).
  await r1.register(moved, "s3", "tcp");
  await c.del(sessionKey(moved));
  await r2.register(moved, "s4", "tcp");
  await r1.restore();
  assert.equal((await r1.lookup(lost))?.sid, "s1");
  assert.equal(await r1.count(n1), 2);
  assert.equal((await r1.lookup(moved))?.sid, "s4");
});

Deno.test("lookup reads an unreadable entry as none", async () => {
  await using c = await client(redis.addr);
  const r = registry(c, uniqueNode("n"));
  const jid = `${uniqueNode("u")}@d`;
  await c.set(sessionKey(jid), "not json");
  assert.equal(await r.lookup(jid), null);
});

Deno.test("lookups made in one turn share one MGET and each gets its own user's entry, in order", async () => {
  await using c = await client(redis.addr);
  const r = registry(c, uniqueNode("n"));
  const jids = Array.from({ length: 50 }, (_, i) => `${uniqueNode("u")}${i}@d`);
  for (const [i, jid] of jids.entries()) if (i % 2 === 0) await r.register(jid, `s${i}`, "tcp");
  const mgets = async () =>
    Number(/cmdstat_mget:calls=(\d+)/.exec(await c.info("commandstats"))?.[1] ?? 0);
  const before = await mgets();
  const order: number[] = [];
  const found = await Promise.all(
    jids.map((jid, i) => r.lookup(jid).then((e) => (order.push(i), e?.sid ?? null))),
  );
  assert.equal(await mgets() - before, 1);
  assert.deepEqual(found, jids.map((_, i) => i % 2 === 0 ? `s${i}` : null));
  assert.deepEqual(order, jids.map((_, i) => i));
});
