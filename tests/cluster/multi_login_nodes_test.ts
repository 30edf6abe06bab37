// multi_login across two nodes on one real Redis (the Redis store and the
// cluster registry): device i of a user logs in on node i % 2, so every
// behaviour of tests/session/multi_login_test.ts also crosses nodes.

import assert from "node:assert/strict";
import { devicesKey } from "../../src/cluster/keys.ts";
import { type RedisServer, startRedis } from "../helpers/redis.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import * as m from "../session/_multi_login.ts";
import { client, uniqueNode } from "./_redis.ts";

const TOKEN = "multi-cluster";

let redis: RedisServer;
Deno.test.beforeAll(async () => {
  redis = await startRedis();
});
Deno.test.afterAll(() => redis.stop());

async function twoNodes(): Promise<m.Topology & AsyncDisposable> {
  // A fresh Redis database state per test: users of one test never meet another's.
  await using r = await client(redis.addr);
  await r.flushall();
  const prefix = uniqueNode();
  const nodes: TestServer[] = [];
  const config = { multi_login: true, dbaddr: redis.addr, accesstoken: TOKEN };
  nodes.push(await startTestServer({ ...config, nodeid: `${prefix}1` }));
  nodes.push(await startTestServer({ ...config, nodeid: `${prefix}2` }));
  return {
    nodes,
    token: TOKEN,
    async [Symbol.asyncDispose]() {
      for (const n of nodes) await n[Symbol.asyncDispose]();
    },
  };
}

function on(name: string, scenario: (t: m.Topology) => Promise<void>) {
  Deno.test(`multi_login, two nodes on Redis: ${name}`, async () => {
    await using t = await twoNodes();
    await scenario(t);
  });
}

for (const [name, scenario] of m.SCENARIOS) on(name, scenario);

Deno.test("multi_login, two nodes: the registry keeps one hash field per resource", async () => {
  await using t = await twoNodes();
  await using r = await client(redis.addr);
  await using _p = (await m.device(t, 0, "b@d/phone")).client;
  const desk = (await m.device(t, 1, "b@d/desk")).client;
  await m.untilSessions(t, "b@d", 2);
  const hash = await r.hgetall(devicesKey("b@d"));
  assert.deepEqual(Object.keys(hash).sort(), ["desk", "phone"]);
  assert.equal(JSON.parse(hash.desk!).node, t.nodes[1]!.config.nodeid);
  await desk.close();
  await m.untilSessions(t, "b@d", 1);
  assert.deepEqual(Object.keys(await r.hgetall(devicesKey("b@d"))), ["phone"]);
});
