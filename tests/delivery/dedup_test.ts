// Duplicate suppression (issue 6.3, docs/protocol.md §4): a sender retrying one of its
// last `dedup_ids` ids gets the server ack again, the recipient no second copy.

import assert from "node:assert/strict";
import { startTestServer } from "../helpers/server.ts";
import { TestClient } from "../helpers/client.ts";
import { startFaultyServer, until } from "./_faulty_store.ts";

Deno.test("a retry from a new connection of the same sender is acked again but not delivered twice", async () => {
  await using srv = await startTestServer();
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  let id: string;
  {
    await using a = (await TestClient.login(srv.port, "a@d")).client;
    id = await a.chat("b@d", "once", { ack: 1 });
    assert.equal((await a.nextPacket()).json.envelope.id, id);
  }
  assert.equal((await b.nextPacket()).json.envelope.id, id);
  await using a2 = (await TestClient.login(srv.port, "a@d")).client;
  await a2.chat("b@d", "once", { ack: 1, id });
  const again = await a2.nextPacket();
  assert.deepEqual([again.json.envelope.id, again.json.envelope.type], [id, 3]);
  await b.nothing();
});

Deno.test("only the last dedup_ids ids of a sender are suppressed", async () => {
  await using srv = await startTestServer({ dedup_ids: 3 });
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  {
    await using b = (await TestClient.login(srv.port, "b@d")).client;
    for (const id of ["m1", "m2", "m3", "m4"]) {
      await a.chat("b@d", id, { ack: 1, id });
      assert.equal((await b.nextPacket()).json.envelope.id, id);
      await b.ack(id);
      assert.equal((await a.nextPacket()).json.envelope.id, id);
    }
  }
  // A new session of b: the one above would drop a packet it showed already.
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  await a.chat("b@d", "m4", { ack: 1, id: "m4" }); // among the last 3: suppressed
  assert.equal((await a.nextPacket()).json.envelope.id, "m4");
  await a.chat("b@d", "m1", { ack: 1, id: "m1" }); // pushed out: delivered again
  assert.equal((await b.nextPacket()).json.envelope.id, "m1");
  assert.equal((await a.nextPacket()).json.envelope.id, "m1");
  await b.nothing();
});

Deno.test("the same id from two senders is two messages", async () => {
  await using srv = await startTestServer();
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  await using c = (await TestClient.login(srv.port, "c@d")).client;
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  await a.chat("b@d", "from a", { ack: 1, id: "same" });
  assert.equal((await b.nextPacket()).json.envelope.from, "a@d");
  await c.chat("b@d", "from c", { ack: 1, id: "same" });
  assert.equal((await b.nextPacket()).json.envelope.from, "c@d");
});

Deno.test("a retried group message is acked again and its copies are not sent twice", async () => {
  await using srv = await startTestServer();
  await srv.server.core.store.setGroupMembers("group_g1@d", ["a", "b", "c"], 3600);
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  await using c = (await TestClient.login(srv.port, "c@d")).client;
  const group = { envelope: { id: "g-1", type: 2, from: "a@d", gid: "g1" }, payload: { t: 1 } };
  await a.send(group);
  assert.equal((await a.nextPacket()).json.envelope.id, "g-1");
  assert.equal((await b.nextPacket()).json.envelope.gid, "g1");
  assert.equal((await c.nextPacket()).json.envelope.gid, "g1");
  await a.send(group);
  assert.equal((await a.nextPacket()).json.envelope.id, "g-1");
  await b.nothing();
  await c.nothing();
});

Deno.test("a sender's id reaches the store no earlier than its message (no acked retry of an unkept message)", async () => {
  const { srv, store } = await startFaultyServer();
  await using _srv = srv;
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  // One batch hangs; 600 messages queue behind it and leave in two batches.
  const release = store.gate();
  await a.chat("c@d", "first", { ack: 1, id: "first" });
  await until(() => store.appended("c@d").length === 1, "the first batch");
  const frames = Array.from(
    { length: 600 },
    (_, i) =>
      JSON.stringify({ envelope: { id: `m${i}`, type: 1, from: "a@d", to: "b@d", ack: 1 } }) +
      "\x01",
  ).join("");
  await a.sendRaw(frames);
  await until(() => srv.server.core.writer.backlog >= 600, "600 queued messages");
  release();
  for (let i = 0; i < 601; i++) assert.equal((await a.nextPacket()).json.envelope.type, 3);
  await srv.server.core.writer.drain();
  const appendedIn = new Map<string, number>();
  const sentIn = new Map<string, number>();
  store.batches.forEach((b, i) => {
    for (const e of b.appends) appendedIn.set(e.id, i);
    for (const s of b.sent) sentIn.set(s.id, i);
  });
  assert.equal(sentIn.size, 601);
  for (const [id, i] of sentIn) assert.ok(i >= appendedIn.get(id)!, `${id}: sent in ${i}`);
});
