// Store-then-ack (issue 6.1, docs/protocol.md §4, §12): the server ack waits for the
// inbox commit or the recipient's ack, whichever is first; a failed write is
// answered with store_error, never with an ack.

import assert from "node:assert/strict";
import { TestClient } from "../helpers/client.ts";
import { startFaultyServer, until } from "./_faulty_store.ts";

type Delay = { total: number; packets?: { envelope: { id: string } }[] };
const delayIds = (answer: { json: Record<string, unknown> }) =>
  ((answer.json.delay as Delay).packets ?? []).map((p) => p.envelope.id);

function storeError(id: string) {
  return {
    envelope: { id, type: 4 },
    entity: { result: "sys_notify", reason: "store_error" },
    vsn: "0.0.1",
  };
}

Deno.test("the server ack to an offline recipient's message waits for the inbox commit", async () => {
  const { srv, store } = await startFaultyServer();
  await using _srv = srv;
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  const release = store.gate();
  const id = await a.chat("b@d", "held", { ack: 1 });
  await until(() => store.appended("b@d").includes(id), "the batch holding the message");
  await a.nothing();
  release();
  const ack = await a.nextPacket();
  assert.equal(ack.json.envelope.id, id);
  assert.equal(ack.json.envelope.type, 3);
});

Deno.test("a store that fails the write makes the server answer store_error instead of the ack", async () => {
  const { srv, store } = await startFaultyServer();
  await using _srv = srv;
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  store.failing = true;
  const id = await a.chat("b@d", "lost?", { ack: 1 });
  assert.deepEqual((await a.nextPacket()).json, storeError(id));
  await a.nothing();
});

Deno.test("a failed write to an online recipient is answered with store_error too", async () => {
  const { srv, store } = await startFaultyServer();
  await using _srv = srv;
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  store.failing = true;
  const id = await a.chat("b@d", "live", { ack: 1 });
  // Delivery does not wait for the write; the ack would have.
  assert.equal((await b.nextPacket()).json.envelope.id, id);
  assert.deepEqual((await a.nextPacket()).json, storeError(id));
});

Deno.test("a retry of a message whose write failed is stored and acked once the store is back", async () => {
  const { srv, store } = await startFaultyServer();
  await using _srv = srv;
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  store.failing = true;
  const id = await a.chat("b@d", "retry me", { ack: 1 });
  assert.deepEqual((await a.nextPacket()).json, storeError(id));
  store.failing = false;
  await a.chat("b@d", "retry me", { ack: 1, id });
  const ack = await a.nextPacket();
  assert.deepEqual([ack.json.envelope.id, ack.json.envelope.type], [id, 3]);
  await using b = await TestClient.connect(srv.port);
  assert.deepEqual(delayIds(await b.login("b@d")), [id]);
});

Deno.test("a retry of a message still being written is acked only once the write is done", async () => {
  const { srv, store } = await startFaultyServer();
  await using _srv = srv;
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  const release = store.gate();
  const id = await a.chat("b@d", "twice", { ack: 1 });
  await until(() => store.appended("b@d").includes(id), "the batch holding the message");
  await a.chat("b@d", "twice", { ack: 1, id });
  await a.nothing();
  release();
  assert.equal((await a.nextPacket()).json.envelope.id, id);
  assert.equal((await a.nextPacket()).json.envelope.id, id);
  await using b = await TestClient.connect(srv.port);
  assert.deepEqual(delayIds(await b.login("b@d")), [id]);
});

Deno.test("delivery does not wait for the write, and a recipient's ack alone earns the server ack", async () => {
  const { srv, store } = await startFaultyServer();
  await using _srv = srv;
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  // A first batch hangs in the store; the next message queues behind it.
  const release = store.gate();
  const first = await a.chat("c@d", "stuck", { ack: 1 });
  await until(() => store.appended("c@d").includes(first), "the first batch");
  const id = await a.chat("b@d", "fast", { ack: 1 });
  assert.equal((await b.nextPacket()).json.envelope.id, id);
  await b.ack(id);
  const ack = await a.nextPacket();
  assert.deepEqual([ack.json.envelope.id, ack.json.envelope.type], [id, 3]);
  release();
  assert.equal((await a.nextPacket()).json.envelope.id, first);
  // Acked before its batch left: never written at all.
  await srv.server.core.writer.drain();
  assert.ok(!store.appended("b@d").includes(id));
  await b.close();
  await using b2 = await TestClient.connect(srv.port);
  assert.deepEqual((await b2.login("b@d")).json.delay, { total: 0 });
});

Deno.test("an ack that overtakes the inbox write still removes the entry (no ghost redelivery)", async () => {
  const { srv, store } = await startFaultyServer();
  await using _srv = srv;
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  const b = (await TestClient.login(srv.port, "b@d")).client;
  const release = store.gate();
  const id = await a.chat("b@d", "race", { ack: 1 });
  assert.equal((await b.nextPacket()).json.envelope.id, id);
  // The batch holding the entry is in the store already; the ack comes now.
  await until(() => store.appended("b@d").includes(id), "the batch holding the message");
  await b.ack(id);
  await b.close();
  release();
  assert.equal((await a.nextPacket()).json.envelope.id, id);
  await using b2 = await TestClient.connect(srv.port);
  assert.deepEqual((await b2.login("b@d")).json.delay, { total: 0 });
});

Deno.test("after a store_error, newer messages to that recipient are refused until the refused one comes again, so the inbox keeps send order", async () => {
  const { srv, store } = await startFaultyServer();
  await using _srv = srv;
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  store.failing = true;
  const m1 = await a.chat("b@d", "first", { ack: 1 });
  assert.deepEqual((await a.nextPacket()).json, storeError(m1));
  store.failing = false;
  // Sent before a's client saw the notice, say: refused unwritten, as the
  // store would have stored it ahead of m1's resend.
  const m2 = await a.chat("b@d", "second", { ack: 1 });
  assert.deepEqual((await a.nextPacket()).json, storeError(m2));
  assert.ok(!store.appended("b@d").includes(m2));
  // Another recipient is not held up.
  const other = await a.chat("c@d", "elsewhere", { ack: 1 });
  assert.equal((await a.nextPacket()).json.envelope.id, other);
  // Out of turn (m1 first): refused again.
  await a.chat("b@d", "second", { ack: 1, id: m2 });
  assert.deepEqual((await a.nextPacket()).json, storeError(m2));
  for (const [id, text] of [[m1, "first"], [m2, "second"]]) {
    await a.chat("b@d", text!, { ack: 1, id });
    assert.deepEqual([(await a.nextPacket()).json.envelope.id], [id]);
  }
  await using b = await TestClient.connect(srv.port);
  assert.deepEqual(delayIds(await b.login("b@d")), [m1, m2]);
});

Deno.test("messages queued behind a write that fails fail with it, unwritten", async () => {
  const { srv, store } = await startFaultyServer();
  await using _srv = srv;
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  const release = store.gate();
  const m1 = await a.chat("b@d", "first", { ack: 1 });
  await until(() => store.appended("b@d").includes(m1), "the batch holding the first");
  const m2 = await a.chat("b@d", "second", { ack: 1 });
  await a.nothing(100);
  store.failing = true;
  release();
  assert.deepEqual((await a.nextPacket()).json, storeError(m1));
  assert.deepEqual((await a.nextPacket()).json, storeError(m2));
  assert.deepEqual(store.appended("b@d"), [m1]);
});
