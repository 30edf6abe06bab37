// Opening a session (docs/protocol.md §3, §8): answers, every failure reason, timeouts,
// single login per user, heartbeats.

import assert from "node:assert/strict";
import { startTestServer } from "../helpers/server.ts";
import { TestClient } from "../helpers/client.ts";

async function failure(port: number, raw: string) {
  await using c = await TestClient.connect(port);
  await c.sendRaw(raw);
  const rest = await c.closedByServer();
  assert.equal(rest.length, 1, "exactly one answer before the close");
  const r = rest[0]!;
  assert.ok(r.kind === "packet");
  return r.json;
}

Deno.test("login answers ok with an empty delay and the request id", async () => {
  await using srv = await startTestServer();
  await using c = await TestClient.connect(srv.port);
  await c.send({ envelope: { id: "L1", type: 0, jid: "u@d/res", pwd: "x" }, vsn: "0.0.1" });
  const a = await c.nextPacket();
  assert.deepEqual(a.json, {
    envelope: { id: "L1", type: 0 },
    entity: { result: "ok" },
    delay: { total: 0 },
    vsn: "0.0.1",
  });
});

Deno.test("login fails with fail_packet on non-JSON and closes", async () => {
  await using srv = await startTestServer();
  const a = await failure(srv.port, "garbage{{\x01");
  assert.equal(a.envelope.type, 0);
  assert.equal(typeof a.envelope.id, "string");
  assert.deepEqual(a.entity, { result: "error", reason: "fail_packet" });
});

Deno.test("login fails with fail_packet when the envelope is missing", async () => {
  await using srv = await startTestServer();
  const a = await failure(srv.port, '{"payload":{}}\x01');
  assert.deepEqual(a.entity, { result: "error", reason: "fail_packet" });
});

Deno.test("login fails with fail_packet on a malformed jid", async () => {
  await using srv = await startTestServer();
  const a = await failure(srv.port, '{"envelope":{"id":"L","type":0,"jid":"no-at-sign"}}\x01');
  assert.deepEqual(a, {
    envelope: { id: "L", type: 0 },
    entity: { result: "error", reason: "fail_packet" },
  });
});

Deno.test("login fails with fail_type when the first packet is not type 0", async () => {
  await using srv = await startTestServer();
  const a = await failure(
    srv.port,
    '{"envelope":{"id":"M","type":1,"from":"a@d","to":"b@d"}}\x01',
  );
  assert.deepEqual(a, {
    envelope: { id: "M", type: 0 },
    entity: { result: "error", reason: "fail_type" },
  });
});

Deno.test("login fails with fail_param when jid is missing or not a string", async () => {
  await using srv = await startTestServer();
  for (
    const env of ['{"id":"L","type":0}', '{"id":"L","type":0,"jid":5}', '{"type":0,"jid":"a@d"}']
  ) {
    const a = await failure(srv.port, `{"envelope":${env}}\x01`);
    assert.deepEqual(a.entity, { result: "error", reason: "fail_param" }, env);
  }
});

Deno.test("a connection that sends nothing gets timeout and is closed", async () => {
  await using srv = await startTestServer({ login_timeout: 1 });
  await using c = await TestClient.connect(srv.port);
  const rest = await c.closedByServer(4000);
  const r = rest[0]!;
  assert.ok(r.kind === "packet");
  assert.deepEqual(r.json.entity, { result: "error", reason: "timeout" });
});

Deno.test("a heartbeat before login is ignored and answered after it", async () => {
  await using srv = await startTestServer();
  await using c = await TestClient.connect(srv.port);
  await c.sendRaw(Uint8Array.of(2, 1));
  await c.nothing(200);
  await c.login("h@d");
  await c.sendRaw(Uint8Array.of(2, 1));
  assert.equal((await c.next()).kind, "heartbeat");
});

Deno.test("a logged-in session idle past idle_timeout is closed without a kill", async () => {
  await using srv = await startTestServer({ idle_timeout: 1 });
  await using c = (await TestClient.login(srv.port, "idle@d")).client;
  const rest = await c.closedByServer(5000);
  assert.deepEqual(rest, []);
});

Deno.test("a second login of the same user kills the first session", async () => {
  await using srv = await startTestServer();
  await using old = (await TestClient.login(srv.port, "k@d/one")).client;
  await using neu = (await TestClient.login(srv.port, "k@d/two")).client;
  const rest = await old.closedByServer();
  assert.deepEqual(rest, [{ kind: "kill" }]);
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  const id = await b.chat("k@d", "to the new one");
  assert.equal((await neu.nextPacket()).json.envelope.id, id);
});

Deno.test("packets split across reads, several per read and NUL padding are all understood", async () => {
  await using srv = await startTestServer();
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  await using a = await TestClient.connect(srv.port);
  const login = JSON.stringify({ envelope: { id: "L", type: 0, jid: "a@d" } }) + "\x01";
  const m = (id: string) =>
    JSON.stringify({ envelope: { id, type: 1, from: "a@d", to: "b@d" } }) + "\x01";
  const all = login + m("1") + "\x01" + m("2") + m("3") + "\0\0\0";
  for (const part of [all.slice(0, 7), all.slice(7, 60), all.slice(60)]) {
    await a.sendRaw(part);
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal((await a.nextPacket()).json.envelope.type, 0);
  for (const id of ["1", "2", "3"]) assert.equal((await b.nextPacket()).json.envelope.id, id);
});

Deno.test("a packet over max_packet closes the connection before more is buffered", async () => {
  await using srv = await startTestServer({ max_packet: 1024 });
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  await a.sendRaw("{" + "x".repeat(4096));
  const rest = await a.closedByServer();
  const r = rest[0]!;
  assert.ok(r.kind === "packet");
  assert.equal((r.json.entity as { reason: string }).reason, "packet_too_large");
  const id = await b.chat("b@d", "others unaffected", { ack: 1 });
  assert.equal((await b.nextPacket()).json.envelope.id, id);
});

Deno.test("garbage bytes and a disconnect mid-packet leave other sessions working", async () => {
  await using srv = await startTestServer();
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  {
    await using g = await TestClient.connect(srv.port);
    await g.sendRaw(crypto.getRandomValues(new Uint8Array(300)).map((x) => (x === 1 ? 7 : x)));
    await g.sendRaw('{"envelope":{"id":"L","ty');
  }
  const id = await b.chat("b@d", "still alive", { ack: 1 });
  assert.equal((await b.nextPacket()).json.envelope.id, id);
});
