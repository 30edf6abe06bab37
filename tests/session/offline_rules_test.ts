// Erlang emsg_server parity (docs/protocol.md §10): offline cap, per-type keep
// policies, and offline delivery as separate packets.

import assert from "node:assert/strict";
import { startTestServer } from "../helpers/server.ts";
import { TestClient } from "../helpers/client.ts";

type Stored = {
  envelope: { id: string; type: number; from: string };
  payload: { content: string };
};
type Delay = { total: number; packets?: Stored[] };

async function sendAll(c: TestClient, to: string, items: { type?: number; text: string }[]) {
  const ids: string[] = [];
  for (const it of items) ids.push(await c.chat(to, it.text, { ack: 1, type: it.type }));
  for (const _ of ids) assert.equal((await c.nextPacket()).json.envelope.type, 3);
  return ids;
}

async function delayOf(port: number, jid: string): Promise<Delay> {
  await using c = await TestClient.connect(port);
  return (await c.login(jid)).json.delay as Delay;
}

Deno.test("offline_max keeps the newest N stored messages per user, in order", async () => {
  await using srv = await startTestServer({ offline_max: 10 });
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  const ids = await sendAll(a, "b@d", Array.from({ length: 15 }, (_, i) => ({ text: `m${i}` })));
  const delay = await delayOf(srv.port, "b@d");
  assert.equal(delay.total, 10);
  assert.deepEqual(delay.packets!.map((p) => p.envelope.id), ids.slice(5));
  assert.equal(srv.server.core.store.dropped.cap, 5);
});

Deno.test("type 100 keeps only the first stored message per sender and recipient", async () => {
  await using srv = await startTestServer();
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  await using c = (await TestClient.login(srv.port, "c@d")).client;
  const fromA = await sendAll(a, "b@d", [
    { type: 100, text: "first" },
    { type: 100, text: "second" },
    { type: 1, text: "chat" },
  ]);
  const fromC = await sendAll(c, "b@d", [{ type: 100, text: "c-first" }, { type: 100, text: "x" }]);
  const delay = await delayOf(srv.port, "b@d");
  assert.deepEqual(delay.packets!.map((p) => p.envelope.id), [fromA[0], fromA[2], fromC[0]]);
});

Deno.test("type 101 keeps only the last stored message per sender and recipient", async () => {
  await using srv = await startTestServer();
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  const ids = await sendAll(a, "b@d", [
    { type: 101, text: "loc1" },
    { type: 1, text: "chat" },
    { type: 101, text: "loc2" },
    { type: 101, text: "loc3" },
  ]);
  const delay = await delayOf(srv.port, "b@d");
  assert.deepEqual(delay.packets!.map((p) => p.payload.content), ["chat", "loc3"]);
  assert.deepEqual(delay.packets!.map((p) => p.envelope.id), [ids[1], ids[3]]);
});

Deno.test("offline_policy from the config replaces the defaults", async () => {
  await using srv = await startTestServer({ offline_policy: { "7": "last" } });
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  await sendAll(a, "b@d", [
    { type: 100, text: "kept-1" },
    { type: 100, text: "kept-2" },
    { type: 7, text: "old" },
    { type: 7, text: "new" },
  ]);
  const delay = await delayOf(srv.port, "b@d");
  assert.deepEqual(delay.packets!.map((p) => p.payload.content), ["kept-1", "kept-2", "new"]);
});

Deno.test("offline_delivery packets: stored messages follow the login answer one by one, each removed by its own ack", async () => {
  await using srv = await startTestServer({ offline_delivery: "packets" });
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  const ids = await sendAll(a, "b@d", [{ text: "1" }, { text: "2" }, { text: "3" }]);
  // An ack-0 packet too: the Java SDK never acks those, so it is done once written.
  await a.chat("b@d", "no-ack");
  await new Promise((r) => setTimeout(r, 50));
  {
    await using b = await TestClient.connect(srv.port);
    const answer = await b.login("b@d");
    assert.deepEqual(answer.json.delay, { total: 0 });
    const got = [];
    for (let i = 0; i < 4; i++) got.push((await b.nextPacket()).json);
    assert.deepEqual(
      got.map((p) => p.payload),
      ["1", "2", "3", "no-ack"].map((content) => ({ content })),
    );
    // Ack only the packets marked ack: 1, and only the first two of them.
    await b.ack(ids[0]!);
    await b.ack(ids[1]!);
    await new Promise((r) => setTimeout(r, 50));
  }
  await using b2 = await TestClient.connect(srv.port);
  await b2.login("b@d");
  const again = await b2.nextPacket();
  assert.equal(again.json.envelope.id, ids[2]);
  await b2.nothing(200);
});
