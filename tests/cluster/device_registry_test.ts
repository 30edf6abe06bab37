// The multi_login registry against a real Redis: one hash field per
// resource, eviction of the oldest beyond max_sessions by one script (kicks
// named by node and sid), ghost cleanup after a restart and restore of what
// Redis lost, each for one field only.

import assert from "node:assert/strict";
import { devicesKey } from "../../src/cluster/keys.ts";
import { Registry } from "../../src/cluster/registry.ts";
import { type RedisServer, startRedis } from "../helpers/redis.ts";
import { client, quietLog, uniqueNode } from "./_redis.ts";

let redis: RedisServer;
Deno.test.beforeAll(async () => {
  redis = await startRedis();
});
Deno.test.afterAll(() => redis.stop());

type Kick = [node: string, jid: string, sid: string];

function registry(c: Registry["client"], node: string, kicks: Kick[], max = 2): Registry {
  return new Registry(c, node, quietLog(), (n, jid, sid) => {
    kicks.push([n, jid, sid]);
    return Promise.resolve();
  }, { maxSessions: max });
}

Deno.test("same resource replaces its field; beyond max the oldest field goes, on any node", async () => {
  await using c = await client(redis.addr);
  const n1 = uniqueNode("n"), n2 = uniqueNode("n");
  const k1: Kick[] = [], k2: Kick[] = [];
  const r1 = registry(c, n1, k1), r2 = registry(c, n2, k2);
  const jid = `${uniqueNode("u")}@d`;
  await r1.register(`${jid}/phone`, "s1", "tcp");
  await r2.register(`${jid}/phone`, "s2", "tcp");
  assert.deepEqual(k2, [[n1, jid, "s1"]], "the same resource elsewhere is kicked");
  await new Promise((r) => setTimeout(r, 5));
  await r1.register(`${jid}/desk`, "s3", "tcp");
  await new Promise((r) => setTimeout(r, 5));
  await r1.register(`${jid}/tab`, "s4", "tcp");
  assert.deepEqual(k1, [[n2, jid, "s2"]], "the oldest (phone on n2) is evicted");
  const devices = (await r1.devices(jid)).map((d) => [d.resource, d.node, d.sid]).sort();
  assert.deepEqual(devices, [["desk", n1, "s3"], ["tab", n1, "s4"]]);
});

Deno.test("unregister, ghost cleanup and restore touch only their own field", async () => {
  await using c = await client(redis.addr);
  const n1 = uniqueNode("n"), n2 = uniqueNode("n");
  const r1 = registry(c, n1, [], 5), r2 = registry(c, n2, [], 5);
  const jid = `${uniqueNode("u")}@d`;
  await r1.register(`${jid}/a`, "s1", "tcp");
  await r2.register(`${jid}/b`, "s2", "tcp");
  await r1.unregister(`${jid}/b`, "s1"); // wrong sid for that field: nothing goes
  assert.equal((await r1.devices(jid)).length, 2);
  // Redis loses the hash: each node puts back its own field only.
  await c.del(devicesKey(jid));
  await r1.restore();
  assert.deepEqual((await r1.devices(jid)).map((d) => d.resource), ["a"]);
  await r2.restore();
  assert.equal((await r1.devices(jid)).length, 2);
  // n1 restarts: its earlier life's field goes, n2's stays.
  assert.equal(await registry(c, n1, [], 5).clearGhosts(), 1);
  assert.deepEqual((await r2.devices(jid)).map((d) => [d.resource, d.node]), [["b", n2]]);
});
