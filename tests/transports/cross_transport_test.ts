// Clients on different transports talk through the one session core
// (docs/protocol.md §1, §3, §4): chat with server and client acks, kick, offline delivery.

import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { type Envelope, TestClient } from "../helpers/client.ts";
import { WsTestClient } from "../helpers/ws_client.ts";
import { makeCerts, type TestCerts } from "../helpers/certs.ts";

/** What the chat checks need of a client, whatever its transport. */
interface Peer {
  jid: string;
  chat(to: string, content: string, opts?: { ack?: number }): Promise<string>;
  ack(id: string): Promise<void>;
  nextPacket(): Promise<{ text: string; json: { envelope: Envelope; payload?: unknown } }>;
}

function startAll(certs: TestCerts): Promise<TestServer> {
  return startTestServer({
    enable_ws: true,
    enable_tls: true,
    enable_wss: true,
    certfile: certs.certfile,
    keyfile: certs.keyfile,
  });
}

/** Polls the store until `user`'s inbox holds exactly `ids` (client acks commit in batches). */
async function inboxBecomes(srv: TestServer, user: string, ids: string[]): Promise<void> {
  let now: string[] = [];
  for (let i = 0; i < 100; i++) {
    now = (await srv.server.core.store.inbox(user)).map((e) => e.id);
    if (JSON.stringify(now) === JSON.stringify(ids)) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.deepEqual(now, ids, `inbox of ${user}`);
}

/** a -> b and b -> a with ack 1: delivery, server ack to the sender, client ack clears the inbox. */
async function chatBothWays(srv: TestServer, a: Peer, b: Peer): Promise<void> {
  for (const [from, to] of [[a, b], [b, a]] as const) {
    const before = Date.now();
    const id = await from.chat(to.jid, `hi from ${from.jid}`, { ack: 1 });
    const got = await to.nextPacket();
    assert.ok(!got.text.includes("\x01"));
    assert.equal(got.json.envelope.id, id);
    assert.equal(got.json.envelope.from, from.jid);
    assert.equal(got.json.envelope.ack, 1);
    assert.ok(Number(got.json.envelope.ct) >= before);
    assert.deepEqual(got.json.payload, { content: `hi from ${from.jid}` });
    const sack = await from.nextPacket();
    assert.deepEqual(Object.keys(sack.json), ["envelope", "vsn"]);
    assert.equal(sack.json.envelope.id, id);
    assert.equal(sack.json.envelope.type, 3);
    assert.equal(typeof sack.json.envelope.ct, "string");
    // Kept until the recipient's ack, whatever transport that comes over.
    await inboxBecomes(srv, to.jid, [id]);
    await to.ack(id);
    await inboxBecomes(srv, to.jid, []);
  }
}

Deno.test("WS and TCP clients chat both ways with server acks and client acks", async () => {
  await using srv = await startTestServer({ enable_ws: true });
  await using ws = (await WsTestClient.login(srv.wsPort, "web@d")).client;
  await using tcp = (await TestClient.login(srv.port, "desk@d")).client;
  await chatBothWays(srv, ws, tcp);
});

Deno.test("TLS and WS clients chat both ways with server acks and client acks", async () => {
  await using certs = await makeCerts();
  await using srv = await startAll(certs);
  await using tls = (await TestClient.loginTls(srv.tlsPort, certs.cert, "app@d")).client;
  await using ws = (await WsTestClient.login(srv.wsPort, "web@d")).client;
  await chatBothWays(srv, tls, ws);
});

Deno.test("WSS and TCP clients chat both ways with server acks and client acks", async () => {
  await using certs = await makeCerts();
  await using srv = await startAll(certs);
  await using wss = (await WsTestClient.login(srv.wssPort, "web@d", { caCert: certs.cert })).client;
  await using tcp = (await TestClient.login(srv.port, "desk@d")).client;
  await chatBothWays(srv, wss, tcp);
});

Deno.test("a TCP login of the same user kicks the WS session with the text \\03", async () => {
  await using srv = await startTestServer({ enable_ws: true });
  await using ws = (await WsTestClient.login(srv.wsPort, "u@d")).client;
  await using tcp = (await TestClient.login(srv.port, "u@d")).client;
  assert.deepEqual(await ws.closedByServer(), [{ kind: "kill" }]);
  // The newer session is the one that receives.
  await using other = (await TestClient.login(srv.port, "o@d")).client;
  const id = await other.chat("u@d", "to the new one");
  assert.equal((await tcp.nextPacket()).json.envelope.id, id);
});

Deno.test("a WSS login of the same user kicks the TLS session with 0x03 0x01", async () => {
  await using certs = await makeCerts();
  await using srv = await startAll(certs);
  const tls = await TestClient.connectTls(srv.tlsPort, certs.cert);
  await using _tls = tls;
  await tls.login("u@d");
  await using wss = (await WsTestClient.login(srv.wssPort, "u@d", { caCert: certs.cert })).client;
  assert.deepEqual(await tls.closedByServer(), [{ kind: "kill" }]);
  assert.equal(wss.closed, false);
});

Deno.test("messages stored while a user was offline arrive at a login over WSS", async () => {
  await using certs = await makeCerts();
  await using srv = await startAll(certs);
  await using tcp = (await TestClient.login(srv.port, "a@d")).client;
  const ids = [];
  for (let i = 0; i < 3; i++) ids.push(await tcp.chat("b@d", `m${i}`, { ack: 1 }));
  for (const id of ids) assert.equal((await tcp.nextPacket()).json.envelope.id, id);
  {
    const { client, answer } = await WsTestClient.login(srv.wssPort, "b@d", {
      caCert: certs.cert,
    });
    await using _c = client;
    assert.ok(!answer.text.includes("\x01"));
    const delay = answer.json.delay as { total: number; packets: { envelope: Envelope }[] };
    assert.equal(delay.total, 3);
    assert.deepEqual(delay.packets.map((p) => p.envelope.id), ids);
    assert.deepEqual(delay.packets.map((p) => p.envelope.from), ["a@d", "a@d", "a@d"]);
    await client.ack(answer.json.envelope.id);
    await inboxBecomes(srv, "b@d", []);
  }
  const { client: again, answer } = await WsTestClient.login(srv.wssPort, "b@d", {
    caCert: certs.cert,
  });
  await using _again = again;
  assert.deepEqual(answer.json.delay, { total: 0 });
});
