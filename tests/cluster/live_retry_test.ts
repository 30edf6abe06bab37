// Live delivery across nodes while Redis is away (docs/delivery.md, "Live
// retry across nodes"): two nodes in this process share a store (the
// embedded one, which keeps working) and reach each other through a real
// Redis that is killed and restarted. What is acked meanwhile reaches the
// recipient, who stays logged in, in send order and once, without a login.

import assert from "node:assert/strict";
import { TestClient } from "../helpers/client.ts";
import { startRedis } from "../helpers/redis.ts";
import { uniqueNode, until } from "./_redis.ts";
import { startNodes } from "./_nodes.ts";

const login = async (port: number, jid: string) => (await TestClient.login(port, jid)).client;

Deno.test("messages acked while Redis is down reach the recipient on another node in order once it is back, without a new login", async () => {
  await ackedWhileRedisIsDownArriveLive(false, "b@d");
});

// The multi_login fan-out (docs/multi-login.md, "Faults in a cluster"): the
// recipient's sessions cannot be listed while Redis is away.
Deno.test("multi_login: messages acked while Redis is down reach the recipient's device on another node in order once it is back, without a new login", async () => {
  await ackedWhileRedisIsDownArriveLive(true, "b@d/phone");
});

async function ackedWhileRedisIsDownArriveLive(multi: boolean, recipient: string) {
  await using redis = await startRedis({ appendfsync: "always" });
  const config = { multi_login: multi };
  await using c = await startNodes(redis.addr, 2, uniqueNode("r"), { config });
  const [n1, n2] = c.nodes as [typeof c.nodes[0], typeof c.nodes[0]];
  await using a = await login(n1.port, "a@d");
  await using b = await login(n2.port, recipient);
  const first = await a.chat("b@d", "before", { ack: 1 });
  assert.equal((await b.nextPacket()).json.envelope.id, first);
  await b.ack(first);
  assert.equal((await a.nextPacket()).json.envelope.id, first);

  await redis.kill();
  // Neither the lookup nor the publish can work now: stored, acked, queued.
  const during: string[] = [];
  for (let i = 1; i <= 5; i++) {
    during.push(await a.chat("b@d", `during ${i}`, { ack: 1 }));
    const ack = (await a.nextPacket(10_000)).json.envelope;
    assert.deepEqual([ack.id, ack.type], [during.at(-1), 3]);
  }
  await redis.restart();
  const after = await a.chat("b@d", "after", { ack: 1 });

  const got: string[] = [];
  while (got.length < 6) {
    const p = (await b.nextPacket(15_000)).json.envelope;
    if (p.type === 1) got.push(p.id as string);
    await b.ack(p.id as string);
  }
  assert.deepEqual(got, [...during, after]);
  await b.nothing(500);
  await until("retries counted", () => n1.server.core.router.retried >= 5);
}
