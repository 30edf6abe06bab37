// The load tool's protocol client against a fake server over a real socket.

import assert from "node:assert/strict";
import { BenchConn } from "../../src/bench/conn.ts";
import { LocalPorts } from "../../src/bench/local_ports.ts";
import { sourcePortRange } from "../../src/bench/system.ts";
import { ackPacket, chatPacket } from "../../src/bench/packets.ts";
import { intField, stringField } from "../../src/bench/scan.ts";
import { FakeServer } from "./fake_server.ts";
import { until } from "./helpers.ts";

async function loggedIn(server: FakeServer, jid: string): Promise<BenchConn> {
  const conn = await BenchConn.connect({ host: "127.0.0.1", port: server.port });
  const answer = await conn.login(jid, "pw", `login-${jid}`);
  assert.ok(answer.ok, answer.reason);
  return conn;
}

async function closed(conns: BenchConn[]): Promise<void> {
  for (const c of conns) c.close();
  await until(() => conns.every((c) => c.closed), "connections to close");
}

Deno.test("login resolves with delay.total and the stored packets of the answer", async () => {
  const stored = [{ envelope: { id: "m1", type: 1 } }, { envelope: { id: "m2", type: 1 } }];
  const server = new FakeServer({ delay: new Map([["u@d", stored]]) });
  const conn = await BenchConn.connect({ host: "127.0.0.1", port: server.port });
  const answer = await conn.login("u@d", "pw", "L1");
  assert.deepEqual([answer.ok, answer.total, answer.packets], [true, 2, stored]);
  assert.deepEqual(JSON.parse(server.packets[0]!).envelope, {
    id: "L1",
    type: 0,
    jid: "u@d",
    pwd: "pw",
  });
  await closed([conn]);
  await server.close();
});

Deno.test("login resolves not ok with the server's failure reason", async () => {
  const server = new FakeServer({ refuse: "fail_token" });
  const conn = await BenchConn.connect({ host: "127.0.0.1", port: server.port });
  const answer = await conn.login("u@d", "bad", "L1");
  assert.deepEqual([answer.ok, answer.reason], [false, "fail_token"]);
  await until(() => conn.closed, "the refused connection to close");
  await server.close();
});

Deno.test("login rejects when the server closes before answering", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept().then((c) => c.close());
  const conn = await BenchConn.connect({
    host: "127.0.0.1",
    port: (listener.addr as Deno.NetAddr).port,
  });
  await assert.rejects(() => conn.login("u@d", "pw", "L1"), /closed before the login answer/);
  await accepted;
  listener.close();
});

Deno.test("a sent message reaches its recipient and the server ack comes back", async () => {
  const server = new FakeServer();
  const a = await loggedIn(server, "a@d");
  const b = await loggedIn(server, "b@d");
  const atA: string[] = [];
  const atB: string[] = [];
  a.onPacket = (p) => atA.push(p);
  b.onPacket = (p) => {
    atB.push(p);
    b.send(ackPacket(stringField(p, "id")!, b.jid));
  };
  a.send(chatPacket("0.1", "a@d", "b@d", "0.1.xx"));
  await until(() => atA.length === 1 && atB.length === 1, "delivery and server ack");
  assert.deepEqual([intField(atA[0]!, "type"), stringField(atA[0]!, "id")], [3, "0.1"]);
  assert.deepEqual([intField(atB[0]!, "type"), stringField(atB[0]!, "content")], [1, "0.1.xx"]);
  await until(() => server.packets.some((p) => p.includes("server_ack")), "the client ack");
  const ack = JSON.parse(server.packets.find((p) => p.includes("server_ack"))!);
  assert.deepEqual(ack.envelope, { id: "0.1", type: 3, from: "b@d", to: "server_ack" });
  await closed([a, b]);
  await server.close();
});

Deno.test("packets queued in one turn arrive whole and in order", async () => {
  const server = new FakeServer();
  const a = await loggedIn(server, "a@d");
  const b = await loggedIn(server, "b@d");
  const ids: string[] = [];
  b.onPacket = (p) => ids.push(stringField(p, "id")!);
  const sent = Array.from({ length: 200 }, (_, i) => `0.${i}`);
  for (const id of sent) a.send(chatPacket(id, "a@d", "b@d", `${id}.${"x".repeat(500)}`));
  await until(() => ids.length === sent.length, "all 200 messages");
  assert.deepEqual(ids, sent);
  await closed([a, b]);
  await server.close();
});

Deno.test("a heartbeat after login is answered and counted", async () => {
  const server = new FakeServer();
  const a = await loggedIn(server, "a@d");
  a.heartbeat();
  a.heartbeat();
  await until(() => a.heartbeats === 2, "two heartbeat replies");
  await closed([a]);
  await server.close();
});

Deno.test("a kill from the server marks the replaced connection killed", async () => {
  const server = new FakeServer();
  const first = await loggedIn(server, "a@d");
  const second = await loggedIn(server, "a@d");
  await until(() => first.closed, "the replaced connection to close");
  assert.deepEqual([first.killed, second.killed], [true, false]);
  await closed([second]);
  await server.close();
});

Deno.test("connect binds the given source address", async () => {
  const server = new FakeServer();
  const conn = await BenchConn.connect({
    host: "127.0.0.1",
    port: server.port,
    localAddress: "127.0.0.2",
  });
  await until(() => server.remotes.length === 1, "the server to accept");
  assert.deepEqual(server.remotes, ["127.0.0.2"]);
  await closed([conn]);
  await server.close();
});

Deno.test("with a source address, the source port comes from the tool's range", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  const conn = await BenchConn.connect({
    host: "127.0.0.1",
    port: (listener.addr as Deno.NetAddr).port,
    localAddress: "127.0.0.2",
  });
  const socket = await accepted;
  const remote = socket.remoteAddr as Deno.NetAddr;
  const [lo, hi] = sourcePortRange();
  assert.equal(remote.hostname, "127.0.0.2");
  assert.ok(remote.port >= lo && remote.port <= hi, `port ${remote.port} not in ${lo}-${hi}`);
  conn.destroy();
  socket.close();
  listener.close();
});

Deno.test("a source port found taken is replaced by the next one", async () => {
  const server = new FakeServer();
  // A listener holds the first port of a two-port range on the same address,
  // and the range's turn is set so that the connection tries that port first.
  const blocker = Deno.listen({ hostname: "127.0.0.3", port: 0 });
  const taken = (blocker.addr as Deno.NetAddr).port;
  const ports = new LocalPorts(taken, taken + 1);
  while (ports.take("127.0.0.3") !== taken + 1);
  const conn = await BenchConn.connect({
    host: "127.0.0.1",
    port: server.port,
    localAddress: "127.0.0.3",
    ports,
  });
  await until(() => server.remotes.length === 1, "the server to accept");
  blocker.close();
  await closed([conn]);
  await server.close();
});
