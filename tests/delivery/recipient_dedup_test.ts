// Duplicates at the recipient (docs/delivery.md, "Duplicate suppression"): a
// session shows a packet (sender, id) once, however often it is handed to it
// (a retry from the inbox, a second copy after a failover), over real sockets.

import assert from "node:assert/strict";
import type { InboxEntry } from "../../src/store/store.ts";
import { DELIVERED_MAX, DeliveredIds } from "../../src/session/delivered.ts";
import { handoffs, LocalSessions } from "../../src/router.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { TestClient } from "../helpers/client.ts";

function entry(id: string, from = "a@d"): InboxEntry {
  const packet = JSON.stringify({ envelope: { id, type: 1, from, to: "b@d", ack: 1 } });
  return { user: "b@d", id, from, type: 1, ct: Date.now(), packet };
}

/** The ids of the stored packets a login answer carries. */
function storedIds(answer: unknown): string[] | undefined {
  const delay = (answer as { delay?: { packets?: { envelope: { id: string } }[] } }).delay;
  return delay?.packets?.map((p) => p.envelope.id);
}

Deno.test("a packet delivered twice to one session is shown once", async () => {
  await using srv = await startTestServer();
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  const router = srv.server.core.router;
  const first = router.deliver(entry("twice"), true);
  const second = router.deliver(entry("twice"), true);
  assert.equal((await b.nextPacket()).json.envelope.id, "twice");
  await b.ack("twice");
  await Promise.all([first, second]);
  await router.deliver(entry("after"), true);
  // The next packet is the later one: the second copy never came.
  assert.equal((await b.nextPacket()).json.envelope.id, "after");
  await b.nothing();
});

Deno.test("a packet of the login answer is not shown again when it also arrives live", async () => {
  await using srv = await startTestServer();
  await srv.server.core.router.deliver(entry("stored"), true); // b offline: stored
  const login = await TestClient.login(srv.port, "b@d");
  await using b = login.client;
  assert.deepEqual(
    storedIds(login.answer.json),
    ["stored"],
  );
  void srv.server.core.router.deliver(entry("stored"), true);
  await b.nothing();
});

Deno.test("the same id from another sender is another packet for the session", async () => {
  await using srv = await startTestServer();
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  void srv.server.core.router.deliver(entry("same", "a@d"), true);
  void srv.server.core.router.deliver(entry("same", "c@d"), true);
  assert.equal((await b.nextPacket()).json.envelope.from, "a@d");
  assert.equal((await b.nextPacket()).json.envelope.from, "c@d");
});

Deno.test("a new session of the user gets what an earlier session showed", async () => {
  await using srv = await startTestServer();
  {
    await using b = (await TestClient.login(srv.port, "b@d")).client;
    void srv.server.core.router.deliver(entry("again"), true);
    assert.equal((await b.nextPacket()).json.envelope.id, "again");
  }
  // Not acked: the next session gets it from the inbox.
  const login = await TestClient.login(srv.port, "b@d");
  await using _b = login.client;
  const ids = storedIds(login.answer.json);
  assert.deepEqual(ids, ["again"]);
});

/** Acks `id` as b, and returns once b's session has read that ack (packets are read in order). */
async function ackRead(b: TestClient, id: string): Promise<void> {
  await b.ack(id);
  const probe = await b.chat("c@d", "after the ack", { ack: 1 });
  const answer = await b.nextPacket();
  assert.deepEqual([answer.json.envelope.type, answer.json.envelope.id], [3, probe]);
}

/**
 * What a node does with a stored hand-off for b (docs/delivery.md, "Live
 * retry across nodes"): the sending node has `e` in b's inbox and hands it
 * over again, because the answer to its live hand-off was lost.
 */
async function storedHandOff(srv: TestServer, e: InboxEntry): Promise<void> {
  const { router, writer } = srv.server.core;
  const local = new LocalSessions(null);
  local.set(router.local(e.user)!);
  await handoffs(local, writer)(e, true, true);
}

/**
 * Delivers `id` live to b, which reads and acks it; then `again` brings the
 * same packet back to b's session. Nothing more reaches b, and nothing is
 * stored for its next login.
 */
async function shownAckedThen(
  id: string,
  again: (srv: TestServer, e: InboxEntry) => Promise<unknown>,
): Promise<void> {
  await using srv = await startTestServer();
  {
    await using b = (await TestClient.login(srv.port, "b@d")).client;
    const live = srv.server.core.router.deliver(entry(id), true);
    assert.equal((await b.nextPacket()).json.envelope.id, id);
    await ackRead(b, id);
    await live;
    await again(srv, entry(id));
    await b.nothing();
  }
  const login = await TestClient.login(srv.port, "b@d");
  await using _b = login.client;
  assert.equal(storedIds(login.answer.json), undefined);
}

Deno.test("a copy stored after its live delivery was acked is removed, not delivered again at the next login", async () => {
  await shownAckedThen("once", async (srv, e) => {
    await srv.server.core.writer.append(e);
    await storedHandOff(srv, e);
  });
});

Deno.test("a retry on the node of a packet the session showed and its user acked is not written to the inbox", async () => {
  // Without an ack to wait for, a write of the retry would stay in the inbox.
  await shownAckedThen("retried", (srv, e) => srv.server.core.router.deliver(e, true));
});

Deno.test("a stored copy of a packet shown but not acked stays for the next login, once", async () => {
  await using srv = await startTestServer();
  {
    await using b = (await TestClient.login(srv.port, "b@d")).client;
    const live = srv.server.core.router.deliver(entry("unacked"), true);
    assert.equal((await b.nextPacket()).json.envelope.id, "unacked");
    await live; // written once its online grace passed without an ack
    await storedHandOff(srv, entry("unacked"));
    await b.nothing();
  }
  const login = await TestClient.login(srv.port, "b@d");
  await using _b = login.client;
  assert.deepEqual(storedIds(login.answer.json), ["unacked"]);
});

Deno.test("DeliveredIds remembers the last DELIVERED_MAX packets and forgets older ones", () => {
  const d = new DeliveredIds();
  for (let i = 0; i < DELIVERED_MAX; i++) assert.equal(d.seen("a@d", `m${i}`), false);
  for (let i = 0; i < DELIVERED_MAX; i++) assert.equal(d.seen("a@d", `m${i}`), true, `m${i}`);
  assert.equal(d.seen("a@d", "new"), false); // pushes m0 out
  assert.equal(d.seen("a@d", "m0"), false);
  assert.equal(d.seen("a@d", "m2"), true);
  assert.equal(d.seen("b@d", "m2"), false);
});

Deno.test("DeliveredIds answers like a list of the last DELIVERED_MAX packets, across growth and wrap-around", () => {
  const d = new DeliveredIds();
  const last: string[] = [];
  // Few distinct ids, so that repeats hit often, and enough rounds to wrap many times.
  for (let i = 0; i < 20_000; i++) {
    const id = `m${Math.floor(Math.random() * 600)}`;
    const from = i % 3 === 0 ? "c@d" : "a@d";
    const key = `${from} ${id}`;
    const want = last.includes(key);
    assert.equal(d.seen(from, id), want, `step ${i}: ${key}`);
    if (!want) {
      last.push(key);
      if (last.length > DELIVERED_MAX) last.shift();
    }
  }
});
