// Several nodes in one process joined through a real Redis (sharing one
// store): every feature works whichever node each user is on.

import assert from "node:assert/strict";
import { sessionKey } from "../../src/cluster/keys.ts";
import { TestClient } from "../helpers/client.ts";
import { type RedisServer, startRedis } from "../helpers/redis.ts";
import { rpc } from "../helpers/rpc_client.ts";
import { client, uniqueNode, until } from "./_redis.ts";
import { startNodes, TOKEN } from "./_nodes.ts";

type Delay = { total: number; packets?: { envelope: Record<string, unknown> }[] };

let redis: RedisServer;
Deno.test.beforeAll(async () => {
  redis = await startRedis();
});
Deno.test.afterAll(() => redis.stop());

const login = async (port: number, jid: string) => (await TestClient.login(port, jid)).client;

Deno.test("a 1:1 message with ack reaches a user on another node and is acked to its sender", async () => {
  await using c = await startNodes(redis.addr, 2, uniqueNode());
  const [n1, n2] = c.nodes as [typeof c.nodes[0], typeof c.nodes[0]];
  await using a = await login(n1.port, "a@d");
  await using b = await login(n2.port, "b@d");
  const id = await a.chat("b@d", "hello", { ack: 1 });
  const got = (await b.nextPacket()).json;
  assert.equal(got.envelope.id, id);
  assert.equal(got.envelope.from, "a@d");
  assert.deepEqual(got.payload, { content: "hello" });
  const ack = (await a.nextPacket()).json;
  assert.deepEqual([ack.envelope.id, ack.envelope.type], [id, 3]);
  await b.ack(id);
  // Acked on n2: the entry is gone, so a new login (on n1) finds nothing stored.
  await b.close();
  await until("b offline", async () => (await rpcOnline(n1.rpcPort, "b@d")) === false);
  await n2.server.core.writer.drain();
  const { client: b2, answer } = await TestClient.login(n1.port, "b@d");
  await using _b2 = b2;
  assert.deepEqual(answer.json.delay, { total: 0 });
});

Deno.test("a message without ack reaches a user on another node and is not stored", async () => {
  await using c = await startNodes(redis.addr, 2, uniqueNode());
  const [n1, n2] = c.nodes as [typeof c.nodes[0], typeof c.nodes[0]];
  await using a = await login(n1.port, "a@d");
  await using b = await login(n2.port, "b@d");
  const id = await a.chat("b@d", "typing", { type: 1 });
  assert.equal((await b.nextPacket()).json.envelope.id, id);
  await b.close();
  await until("b offline", async () => (await rpcOnline(n1.rpcPort, "b@d")) === false);
  await c.nodes[1]!.server.core.writer.drain();
  assert.deepEqual(await c.store.inbox("b@d"), []);
});

Deno.test("a login on another node kicks the older session there", async () => {
  await using c = await startNodes(redis.addr, 2, uniqueNode());
  const [n1, n2] = c.nodes as [typeof c.nodes[0], typeof c.nodes[0]];
  await using old = await login(n1.port, "u@d");
  await using fresh = await login(n2.port, "u@d");
  const before = await old.closedByServer();
  assert.deepEqual(before.map((r) => r.kind), ["kill"]);
  assert.equal(fresh.closed, false);
  await until("n1 forgot u", () => n1.server.core.router.local("u@d") === undefined);
  // The kicked session's logout did not remove the newer entry.
  await using r = await client(redis.addr);
  assert.equal(JSON.parse((await r.get(sessionKey("u@d")))!).node, n2.config.nodeid);
  await using v = await login(n1.port, "v@d");
  const id = await v.chat("u@d", "still here", { ack: 1 });
  assert.equal((await fresh.nextPacket()).json.envelope.id, id);
});

Deno.test("messages stored while the recipient was away come at its login on another node", async () => {
  await using c = await startNodes(redis.addr, 2, uniqueNode());
  const [n1, n2] = c.nodes as [typeof c.nodes[0], typeof c.nodes[0]];
  await using a = await login(n1.port, "a@d");
  // b was on n2 and got one message it never acked, then left.
  const b = await login(n2.port, "b@d");
  const first = await a.chat("b@d", "one", { ack: 1 });
  assert.equal((await b.nextPacket()).json.envelope.id, first);
  await b.close();
  await until("b offline", async () => (await rpcOnline(n1.rpcPort, "b@d")) === false);
  const second = await a.chat("b@d", "two", { ack: 1 });
  const third = await a.chat("b@d", "three"); // no ack asked: stored all the same
  const acks = [(await a.nextPacket()).json, (await a.nextPacket()).json];
  assert.deepEqual(acks.map((p) => p.envelope.id), [first, second]);
  await until("three stored", async () => (await c.store.inbox("b@d")).length === 3);
  const { client: b2, answer } = await TestClient.login(n1.port, "b@d");
  await using _b2 = b2;
  const ids = (answer.json.delay as Delay).packets!.map((p) => p.envelope.id);
  assert.deepEqual(ids, [first, second, third]);
});

Deno.test("a group message fans out to members on every node", async () => {
  await using c = await startNodes(redis.addr, 3, uniqueNode());
  await c.store.setGroupMembers("group_g1@d", ["a", "b", "c", "d"], 3600);
  const [n1, n2, n3] = c.nodes as [typeof c.nodes[0], typeof c.nodes[0], typeof c.nodes[0]];
  await using a = await login(n1.port, "a@d");
  await using b = await login(n2.port, "b@d");
  await using cc = await login(n3.port, "c@d");
  await a.send({
    envelope: { id: "g-1", type: 2, from: "a@d", gid: "g1" },
    payload: { content: "hi all" },
  });
  assert.equal((await a.nextPacket()).json.envelope.id, "g-1");
  for (const m of [b, cc]) {
    const p = (await m.nextPacket()).json;
    assert.deepEqual([p.envelope.type, p.envelope.gid, p.envelope.from], [2, "g1", "a@d"]);
    await m.ack(p.envelope.id);
  }
  await a.nothing(200);
  // d is offline: its copy is stored.
  const { client: d, answer } = await TestClient.login(n2.port, "d@d");
  await using _d = d;
  assert.equal((answer.json.delay as Delay).total, 1);
});

Deno.test("counter and isonline on any node see the sessions of every live node", async () => {
  await using c = await startNodes(redis.addr, 3, uniqueNode("c"));
  const [n1, n2, n3] = c.nodes as [typeof c.nodes[0], typeof c.nodes[0], typeof c.nodes[0]];
  await using _a = await login(n1.port, "a@d");
  await using _b = await login(n1.port, "b@d");
  await using _c = await login(n2.port, "c@d");
  const want = [
    { node: n1.config.nodeid, count: 2 },
    { node: n2.config.nodeid, count: 1 },
    { node: n3.config.nodeid, count: 0 },
  ];
  for (const n of c.nodes) {
    const got = await rpc(n.rpcPort, {
      sn: "1",
      service: "emsg_session",
      method: "counter",
      token: TOKEN,
    });
    assert.deepEqual(got.json.entity, { counters: want });
  }
  assert.equal(await rpcOnline(n3.rpcPort, "a@d"), true);
  assert.equal(await rpcOnline(n3.rpcPort, "c@d"), true);
  assert.equal(await rpcOnline(n2.rpcPort, "a@d"), true);
  assert.equal(await rpcOnline(n1.rpcPort, "z@d"), false);
  // A stopped node is no longer counted, and its users are offline.
  await n2.stop();
  const after = await rpc(n1.rpcPort, {
    sn: "2",
    service: "emsg_session",
    method: "counter",
    token: TOKEN,
  });
  assert.deepEqual(after.json.entity, { counters: [want[0], want[2]] });
  assert.equal(await rpcOnline(n1.rpcPort, "c@d"), false);
});

Deno.test("a push API call on a third node reaches users on the other nodes", async () => {
  await using c = await startNodes(redis.addr, 3, uniqueNode());
  const [n1, n2, n3] = c.nodes as [typeof c.nodes[0], typeof c.nodes[0], typeof c.nodes[0]];
  await using a = await login(n1.port, "a@d");
  await using b = await login(n2.port, "b@d");
  const contents = ["a@d", "b@d"].map((to, i) => ({
    envelope: { id: `p${i}`, type: 1, from: "sys@d", to, ack: 1 },
    payload: { content: "pushed" },
  }));
  const got = await rpc(n3.rpcPort, {
    sn: "p",
    service: "emsg_inf_push",
    method: "process_batch",
    params: { contents },
    token: TOKEN,
  });
  assert.deepEqual(got.json.entity, { accepted: 2, rejected: [] });
  assert.equal((await a.nextPacket()).json.envelope.id, "p0");
  assert.equal((await b.nextPacket()).json.envelope.id, "p1");
});

Deno.test("a blacklist change made on one node applies at once to the owner's session on another", async () => {
  await using c = await startNodes(redis.addr, 2, uniqueNode());
  const [n1, n2] = c.nodes as [typeof c.nodes[0], typeof c.nodes[0]];
  await using a = await login(n1.port, "a@d");
  await using b = await login(n2.port, "b@d");
  // Sends one message to b; true when b got it (then acks it).
  const delivered = async (text: string) => {
    await a.chat("b@d", text, { ack: 1 });
    await a.nextPacket(); // the server ack comes either way
    try {
      const p = await b.nextPacket(300);
      await b.ack(p.json.envelope.id);
      return true;
    } catch {
      return false;
    }
  };
  await n1.server.core.router.notifyBlocked("b@d", "a@d", true);
  // The change travels over pub/sub: messages sent after it landed are dropped.
  await until("block applied", async () => !(await delivered("probe")));
  await n1.server.core.router.notifyBlocked("b@d", "a@d", false);
  await until("unblock applied", () => delivered("again"));
});

async function rpcOnline(port: number, jid: string): Promise<boolean> {
  const got = await rpc(port, {
    sn: "o",
    service: "emsg_session",
    method: "isonline",
    params: { jid },
    token: TOKEN,
  });
  if (typeof got.json.entity === "object") {
    throw new Error(`isonline failed: ${JSON.stringify(got.json)}`);
  }
  return got.json.success;
}
