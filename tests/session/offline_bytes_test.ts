// offline_max_bytes (SECURITY.md, docs/configuration.md): a user's stored
// packets are capped in UTF-8 bytes, newest kept, on the embedded store and on
// Redis alike.

import assert from "node:assert/strict";
import type { Config } from "../../src/config/config.ts";
import { userKeys } from "../../src/store/redis_keys.ts";
import { TestClient } from "../helpers/client.ts";
import { redisCommand, startRedis } from "../helpers/redis.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

type Delay = { total: number; packets?: { envelope: { id: string } }[] };

// 500 two-byte characters: about 1,150 bytes a packet but about 650 UTF-16
// units, so 3 fit in CAP by bytes while 5 would fit by characters.
const TEXT = "é".repeat(500);
const CAP = 3700;

async function send(a: TestClient, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push(await a.chat("b@d", TEXT, { ack: 1 }));
  for (const id of ids) assert.deepEqual((await a.nextPacket()).json.envelope.id, id);
  return ids;
}

/** Logs b in, returns the stored ids, acks them and waits until the store has none. */
async function drain(srv: TestServer): Promise<string[]> {
  await using b = await TestClient.connect(srv.port);
  const answer = await b.login("b@d");
  const delay = answer.json.delay as Delay;
  await b.ack(answer.json.envelope.id);
  const deadline = Date.now() + 10_000;
  while ((await srv.server.core.store.inbox("b@d")).length > 0) {
    if (Date.now() > deadline) throw new Error("ack removal: not within 10 s");
    await new Promise((r) => setTimeout(r, 20));
  }
  return (delay.packets ?? []).map((p) => p.envelope.id);
}

async function capKeepsNewest(overrides: Partial<Config>) {
  await using srv = await startTestServer({ offline_max_bytes: CAP, ...overrides });
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  const ids = await send(a, 10);
  assert.deepEqual(await drain(srv), ids.slice(7));
  assert.equal(srv.server.core.store.dropped.cap, 7);
  // Acked entries left the byte count: three new ones fit again, none dropped.
  const again = await send(a, 3);
  assert.deepEqual(await drain(srv), again);
  assert.equal(srv.server.core.store.dropped.cap, 7);
}

Deno.test("offline_max_bytes keeps the newest stored messages whose UTF-8 bytes fit, in order, on the embedded store", async () => {
  await capKeepsNewest({});
});

Deno.test("offline_max_bytes keeps the newest stored messages whose UTF-8 bytes fit, in order, on Redis", async () => {
  await using redis = await startRedis();
  await capKeepsNewest({ dbaddr: redis.addr });
});

Deno.test("on Redis an inbox stored without a byte count is counted before the cap applies", async () => {
  await using redis = await startRedis();
  await using srv = await startTestServer({ dbaddr: redis.addr, offline_max_bytes: CAP });
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  await send(a, 3);
  // As an inbox written before offline_max_bytes existed.
  assert.equal(await redisCommand(redis.port, "HDEL", userKeys("b@d").policy, "#bytes"), 1);
  const newer = await send(a, 3);
  assert.deepEqual(await drain(srv), newer);
});
