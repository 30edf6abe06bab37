// Ordering (issue 6.4, docs/protocol.md §12): one sender's messages to one recipient
// arrive in send order, online, offline, across a login and across reconnects.

import assert from "node:assert/strict";
import { startTestServer } from "../helpers/server.ts";
import { TestClient } from "../helpers/client.ts";
import { startFaultyServer, until } from "./_faulty_store.ts";

type Delay = { total: number; packets?: { envelope: { id: string } }[] };
const delayIds = (answer: { json: Record<string, unknown> }) =>
  ((answer.json.delay as Delay).packets ?? []).map((p) => p.envelope.id);

/** Sends `n` acked messages, returns their ids once every server ack is in. */
async function sendAll(a: TestClient, to: string, n: number, tag: string): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    ids.push(await a.chat(to, `${tag}${i}`, { ack: 1, id: `${tag}${i}` }));
  }
  for (let i = 0; i < n; i++) assert.equal((await a.nextPacket()).json.envelope.type, 3);
  return ids;
}

/** Reads live packets (acking each) until `want` distinct ids arrived; returns first receipts. */
async function collect(b: TestClient, first: string[], want: number): Promise<string[]> {
  const seen = new Set(first);
  const order = [...first];
  while (seen.size < want) {
    const id = (await b.nextPacket()).json.envelope.id;
    await b.ack(id);
    if (!seen.has(id)) order.push(id);
    seen.add(id);
  }
  return order;
}

Deno.test("messages from one sender reach an online recipient in send order", async () => {
  await using srv = await startTestServer();
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  const sending = sendAll(a, "b@d", 300, "m");
  assert.deepEqual(await collect(b, [], 300), await sending);
});

Deno.test("stored messages come first in the login answer, then live ones sent during the login, in send order", async () => {
  await using srv = await startTestServer();
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  const stored = await sendAll(a, "b@d", 100, "s");
  await using b = await TestClient.connect(srv.port);
  // The login races with a's next messages: any interleaving must keep order.
  const [answer, live] = await Promise.all([b.login("b@d"), sendAll(a, "b@d", 100, "l")]);
  await b.ack(answer.json.envelope.id);
  assert.deepEqual(await collect(b, delayIds(answer), 200), [...stored, ...live]);
});

Deno.test("a login while a message to that user is still being written gets it before newer ones", async () => {
  const { srv, store } = await startFaultyServer();
  await using _srv = srv;
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  const release = store.gate();
  const first = await a.chat("b@d", "on its way in", { ack: 1 });
  await until(() => store.appended("b@d").includes(first), "the batch holding the message");
  await using b = await TestClient.connect(srv.port);
  const answer = b.login("b@d");
  await until(() => srv.server.core.router.local("b@d") !== undefined, "b's login");
  release();
  const ids = delayIds(await answer);
  const second = await a.chat("b@d", "live", { ack: 1 });
  assert.deepEqual(await collect(b, ids, 2), [first, second]);
});

Deno.test("messages left unacked at a disconnect come back in order before newer ones", async () => {
  await using srv = await startTestServer();
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  const b = (await TestClient.login(srv.port, "b@d")).client;
  const early = await sendAll(a, "b@d", 10, "e");
  const got: string[] = [];
  for (let i = 0; i < 10; i++) got.push((await b.nextPacket()).json.envelope.id);
  assert.deepEqual(got, early);
  for (const id of early.slice(0, 5)) await b.ack(id);
  await b.close();
  const late = await sendAll(a, "b@d", 5, "t");
  await using b2 = await TestClient.connect(srv.port);
  assert.deepEqual(delayIds(await b2.login("b@d")), [...early.slice(5), ...late]);
});
