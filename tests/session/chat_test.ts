// 1:1 chat over TCP: routing, server acks, client acks, ct stamping, from checks.

import assert from "node:assert/strict";
import { startTestServer } from "../helpers/server.ts";
import { TestClient } from "../helpers/client.ts";

Deno.test("two logged-in users chat both ways with server acks and stamped ct", async () => {
  await using srv = await startTestServer();
  await using a = (await TestClient.login(srv.port, "a@d/phone")).client;
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  const before = Date.now();
  const id = await a.chat("b@d", "hi", { ack: 1, from: "a@d/phone" });
  const got = await b.nextPacket();
  assert.equal(got.json.envelope.id, id);
  assert.equal(got.json.envelope.from, "a@d/phone");
  assert.equal(got.json.envelope.ack, 1);
  assert.deepEqual(got.json.payload, { content: "hi" });
  assert.equal(typeof got.json.envelope.ct, "string");
  assert.ok(Number(got.json.envelope.ct) >= before);
  await b.ack(id);
  const sack = await a.nextPacket();
  assert.deepEqual(Object.keys(sack.json), ["envelope", "vsn"]);
  assert.equal(sack.json.envelope.id, id);
  assert.equal(sack.json.envelope.type, 3);
  assert.equal(typeof sack.json.envelope.ct, "string");

  const back = await b.chat("a@d", "hello", { ack: 1 });
  assert.equal((await a.nextPacket()).json.envelope.id, back);
  assert.equal((await b.nextPacket()).json.envelope.id, back);
});

Deno.test("unknown fields of a forwarded packet are preserved", async () => {
  await using srv = await startTestServer();
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  await a.send({
    envelope: { id: "x1", type: 7, from: "a@d", to: "b@d", custom: [1, { z: null }] },
    payload: { deep: { list: [1, 2, "3"] } },
    extra: "kept",
    vsn: "9.9",
  });
  const got = await b.nextPacket();
  assert.deepEqual(got.json.envelope.custom, [1, { z: null }]);
  assert.deepEqual(got.json.payload, { deep: { list: [1, 2, "3"] } });
  assert.equal(got.json.extra, "kept");
  assert.equal(got.json.vsn, "9.9");
});

Deno.test("a packet without ack gets no server ack", async () => {
  await using srv = await startTestServer();
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  await a.chat("b@d", "typing", { type: 3 });
  await b.nextPacket();
  await a.nothing();
});

Deno.test("a spoofed from is refused with bad_from and not routed", async () => {
  await using srv = await startTestServer();
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  const id = await a.chat("b@d", "spoof", { ack: 1, from: "c@d" });
  const n = await a.nextPacket();
  assert.deepEqual(n.json, {
    envelope: { id, type: 4 },
    entity: { result: "sys_notify", reason: "bad_from" },
    vsn: "0.0.1",
  });
  await b.nothing();
});

Deno.test("a malformed to is refused with bad_to", async () => {
  await using srv = await startTestServer();
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  const id = await a.chat("not a jid", "x", { ack: 1 });
  const n = await a.nextPacket();
  assert.equal(n.json.envelope.id, id);
  assert.equal((n.json.entity as { reason: string }).reason, "bad_to");
});

Deno.test("an envelope without id or type gets bad_packet and the session stays open", async () => {
  await using srv = await startTestServer();
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  await a.send({ envelope: { type: 1, from: "a@d", to: "b@d" } });
  assert.deepEqual((await a.nextPacket()).json.entity, {
    result: "sys_notify",
    reason: "bad_packet",
  });
  await a.send({ envelope: { id: "i", from: "a@d", to: "b@d" } });
  const n = await a.nextPacket();
  assert.equal((n.json.entity as { reason: string }).reason, "bad_packet");
  assert.equal(n.json.envelope.id, "i");
  const id = await a.chat("b@d", "still here");
  assert.equal((await b.nextPacket()).json.envelope.id, id);
});

Deno.test("a non-JSON packet after login gets bad_packet and the connection closes", async () => {
  await using srv = await startTestServer();
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  await a.sendRaw("this is not json\x01");
  const rest = await a.closedByServer();
  assert.equal(rest.length, 1);
  const r = rest[0]!;
  assert.ok(r.kind === "packet");
  assert.equal((r.json.entity as { reason: string }).reason, "bad_packet");
});

Deno.test("a duplicate id from the same sender is acked again but delivered once", async () => {
  await using srv = await startTestServer();
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  await a.chat("b@d", "once", { ack: 1, id: "dup-1" });
  assert.equal((await b.nextPacket()).json.envelope.id, "dup-1");
  await b.ack("dup-1");
  assert.equal((await a.nextPacket()).json.envelope.id, "dup-1");
  await a.chat("b@d", "once", { ack: 1, id: "dup-1" });
  const again = await a.nextPacket();
  assert.equal(again.json.envelope.id, "dup-1");
  assert.equal(again.json.envelope.type, 3);
  await b.nothing();
});
