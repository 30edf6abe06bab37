// A whole node on the Redis store: offline storage, delay delivery, ack
// removal and restart persistence, and what a sender sees while Redis is away.

import assert from "node:assert/strict";
import { userKeys } from "../../src/store/redis_keys.ts";
import { TestClient } from "../helpers/client.ts";
import { redisCommand, startRedis } from "../helpers/redis.ts";
import { startTestServer } from "../helpers/server.ts";

type Delay = { total: number; packets?: { envelope: { id: string } }[] };

/** Entries Redis holds for `user` (read straight from Redis, not through sara). */
async function stored(port: number, user: string): Promise<number> {
  return Number(await redisCommand(port, "ZCARD", userKeys(user).order));
}

/** Polls `check` until it holds (a write on its way), failing after `ms`. */
async function until(check: () => Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

Deno.test("a node on Redis stores messages for an offline user, delivers them after a node restart, and the ack removes them", async () => {
  await using redis = await startRedis();
  const ids: string[] = [];
  {
    await using srv = await startTestServer({ dbaddr: redis.addr });
    await using a = (await TestClient.login(srv.port, "a@d")).client;
    for (let i = 0; i < 3; i++) ids.push(await a.chat("b@d", `m${i}`, { ack: 1 }));
    // Server acks name their message and need not come in send order
    // (docs/protocol.md §4); the inbox order is checked at b's login below.
    const acks: string[] = [];
    for (const _ of ids) {
      const ack = (await a.nextPacket()).json.envelope;
      assert.equal(ack.type, 3);
      acks.push(ack.id);
    }
    assert.deepEqual(acks.sort(), [...ids].sort());
  }
  // Held by Redis, not by the node (whose data dir is gone with it).
  assert.equal(await stored(redis.port, "b@d"), 3);

  await using srv2 = await startTestServer({ dbaddr: redis.addr });
  const { client: b, answer } = await TestClient.login(srv2.port, "b@d");
  await using _b = b;
  const delay = answer.json.delay as Delay;
  assert.equal(delay.total, 3);
  assert.deepEqual(delay.packets!.map((p) => p.envelope.id), ids);
  await b.ack(answer.json.envelope.id);
  await until(async () => await stored(redis.port, "b@d") === 0, "ack removal");
  await b.close();
  await using b2 = await TestClient.connect(srv2.port);
  assert.deepEqual((await b2.login("b@d")).json.delay, { total: 0 });
});

Deno.test("while Redis is down a sender gets store_error for every message and no ack; once Redis is back, sends succeed on the same node", async () => {
  await using redis = await startRedis({ appendfsync: "always" });
  await using srv = await startTestServer({ dbaddr: redis.addr });
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  const first = await a.chat("b@d", "before", { ack: 1 });
  assert.equal((await a.nextPacket()).json.envelope.type, 3);

  await redis.kill();
  const failed: string[] = [];
  for (let i = 0; i < 3; i++) failed.push(await a.chat("b@d", `during ${i}`, { ack: 1 }));
  for (const id of failed) {
    const p = (await a.nextPacket()).json;
    assert.equal(p.envelope.id, id);
    assert.equal(p.envelope.type, 4, JSON.stringify(p));
    assert.equal((p.entity as { reason: string }).reason, "store_error");
  }

  await redis.restart();
  // The node reconnects by itself; the client resends the refused messages
  // as SDKs do: same ids, oldest first (docs/protocol.md §12).
  await until(async () => {
    await a.chat("b@d", "during 0", { ack: 1, id: failed[0] });
    const p = (await a.nextPacket()).json.envelope;
    assert.equal(p.id, failed[0]);
    return p.type === 3;
  }, "the first refused message acked after Redis restarted");
  for (const [i, id] of failed.entries()) {
    if (i === 0) continue;
    await a.chat("b@d", `during ${i}`, { ack: 1, id });
    assert.deepEqual([(await a.nextPacket()).json.envelope.type], [3], id);
  }
  const after = await a.chat("b@d", "after", { ack: 1 });
  assert.deepEqual(
    [(await a.nextPacket()).json.envelope].map((e) => [e.id, e.type]),
    [[after, 3]],
  );
  assert.ok(!a.closed, "the sender's session survived the outage");

  await using b = await TestClient.connect(srv.port);
  const delay = (await b.login("b@d")).json.delay as Delay;
  // Exactly the acked messages, in send order: nothing acked lost, nothing refused stored twice.
  assert.deepEqual(delay.packets!.map((p) => p.envelope.id), [first, ...failed, after]);
});
