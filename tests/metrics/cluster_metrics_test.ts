// Cross-node metrics of two nodes on one Redis: the sender's node counts its
// publish, the recipient's node the message it received; each node exposes
// only its own numbers.

import assert from "node:assert/strict";
import { TestClient } from "../helpers/client.ts";
import { startRedis } from "../helpers/redis.ts";
import { startTestServer } from "../helpers/server.ts";
import { Scrape } from "./_prom.ts";

Deno.test("a message to a user on another node is a publish on one node and a receipt on the other", async () => {
  await using redis = await startRedis();
  await using n1 = await startTestServer({ nodeid: "n1", dbaddr: redis.addr });
  await using n2 = await startTestServer({ nodeid: "n2", dbaddr: redis.addr });
  await using b = (await TestClient.login(n2.port, "b@d")).client;
  await using a = (await TestClient.login(n1.port, "a@d")).client;
  const before = [await Scrape.of(n1.rpcPort), await Scrape.of(n2.rpcPort)] as const;
  await a.chat("b@d", "across", { ack: 1 });
  assert.equal((await a.nextPacket()).json.envelope.type, 3);
  assert.equal((await b.nextPacket()).json.envelope.from, "a@d");
  const after = [await Scrape.of(n1.rpcPort), await Scrape.of(n2.rpcPort)] as const;
  const grew = (i: 0 | 1, name: string, match: Record<string, string> = {}) =>
    after[i].get(name, match) - before[i].get(name, match);
  assert.ok(grew(0, "sara_cluster_publishes_total", { result: "ok" }) >= 1);
  assert.equal(grew(0, "sara_cluster_publishes_total", { result: "failed" }), 0);
  assert.equal(grew(1, "sara_cluster_received_total"), 1);
  assert.equal(grew(0, "sara_cluster_received_total"), 0);
  // In on the sender's node, out on the recipient's.
  assert.equal(grew(0, "sara_messages_in_total", { type: "1" }), 1);
  assert.equal(grew(1, "sara_messages_out_total", { type: "1" }), 1);
  assert.equal(grew(0, "sara_messages_out_total", { type: "1" }), 0);
  assert.equal(after[0].get("sara_sessions_online"), 1);
  assert.equal(after[1].get("sara_sessions_online"), 1);
});
