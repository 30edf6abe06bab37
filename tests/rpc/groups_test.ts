// Group chat (docs/protocol.md §5) with members from the emsg_group.get_user_list
// callback: fan-out to online and offline members, the one-hour cache and its
// reload, and the notices for bad groups and non-members.

import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { TestClient } from "../helpers/client.ts";
import { answer, CallbackServer, deadUrl, type Responder } from "../helpers/callback_server.ts";
import { rpc } from "../helpers/rpc_client.ts";

type Delay = { total: number; packets?: Record<string, unknown>[] };

async function groupMsg(c: TestClient, gid: string | undefined, content: string, id?: string) {
  const envelope: Record<string, unknown> = { id: id ?? crypto.randomUUID(), type: 2, from: c.jid };
  if (gid !== undefined) envelope.gid = gid;
  await c.send({ envelope, payload: { content, attrs: { k: [1, 2] } }, vsn: "0.0.1" });
  return envelope.id as string;
}

async function setup(members: Record<string, unknown[]>, extra = {}) {
  const backend = CallbackServer.start();
  for (const [gid, users] of Object.entries(members)) backend.groups.set(gid, users);
  const srv = await startTestServer({ callback: backend.url, ...extra });
  return {
    backend,
    srv,
    async [Symbol.asyncDispose]() {
      await srv[Symbol.asyncDispose]();
      await backend.close();
    },
  };
}

Deno.test("a group message reaches online and offline members as copies with fresh ids, the sender gets one ack", async () => {
  await using env = await setup({ g1: ["alice", "bob", "carol"] }, {
    enable_offline_callback: true,
  });
  const { srv, backend } = env;
  await using alice = (await TestClient.login(srv.port, "alice@d")).client;
  await using bob = (await TestClient.login(srv.port, "bob@d")).client;
  const id = await groupMsg(alice, "g1", "hello group");

  const ack = await alice.nextPacket();
  assert.deepEqual(Object.keys(ack.json.envelope).sort(), ["ct", "id", "type"]);
  assert.equal(ack.json.envelope.id, id);
  assert.equal(ack.json.envelope.type, 3);

  const copy = (await bob.nextPacket()).json;
  assert.notEqual(copy.envelope.id, id);
  assert.deepEqual({ ...copy, envelope: { ...copy.envelope, id: "?", ct: "?" } }, {
    envelope: { id: "?", type: 2, from: "alice@d", to: "bob@d", gid: "g1", ack: 1, ct: "?" },
    payload: { content: "hello group", attrs: { k: [1, 2] } },
    vsn: "0.0.1",
  });
  assert.match(copy.envelope.ct!, /^\d+$/);
  await bob.ack(copy.envelope.id);

  // carol was offline: her copy is stored, and the backend is told.
  const [offline] = await backend.waitFor("user_message.offline", 1);
  assert.equal((offline!.request.params.envelope as { to: string }).to, "carol@d");
  assert.equal(offline!.request.params.total, 1);
  const { client: carol, answer: login } = await TestClient.login(srv.port, "carol@d");
  await using _carol = carol;
  const stored = (login.json.delay as Delay).packets!;
  assert.equal(stored.length, 1);
  const carolCopy = stored[0]!.envelope as Record<string, unknown>;
  assert.equal(carolCopy.to, "carol@d");
  assert.equal(carolCopy.gid, "g1");
  assert.notEqual(carolCopy.id, id);
  assert.notEqual(carolCopy.id, copy.envelope.id);

  // The sender gets nothing more: no second ack, no copy of its own message.
  await alice.nothing();
  assert.deepEqual(backend.of("emsg_group.get_user_list").map((c) => c.request.params), [
    { gid: "g1" },
  ]);
});

Deno.test("members are cached for the hour: no second callback until emsg_group.reload", async () => {
  await using env = await setup({ g1: ["alice", "bob"] }, { accesstoken: "T" });
  const { srv, backend } = env;
  await using alice = (await TestClient.login(srv.port, "alice@d")).client;
  await using bob = (await TestClient.login(srv.port, "bob@d")).client;
  const send = async (text: string) => {
    await groupMsg(alice, "g1", text);
    await alice.nextPacket();
    return (await bob.nextPacket()).json.payload;
  };
  assert.deepEqual(await send("1"), { content: "1", attrs: { k: [1, 2] } });
  assert.deepEqual(await srv.server.core.store.groupMembers("group_g1@d"), ["alice", "bob"]);
  await send("2");
  assert.equal(backend.of("emsg_group.get_user_list").length, 1);

  const reload = await rpc(srv.rpcPort, {
    sn: "r1",
    service: "emsg_group",
    method: "reload",
    params: { gid: "g1", domain: "d" },
    token: "T",
  });
  assert.deepEqual(reload, { status: 200, json: { sn: "r1", success: true } });
  assert.equal(await srv.server.core.store.groupMembers("group_g1@d"), null);
  backend.groups.set("g1", ["alice", "bob", "carol"]);
  await send("3");
  assert.equal(backend.of("emsg_group.get_user_list").length, 2);
  assert.deepEqual(await srv.server.core.store.groupMembers("group_g1@d"), [
    "alice",
    "bob",
    "carol",
  ]);
});

Deno.test("the cache is per domain: the same gid in another domain asks again", async () => {
  await using env = await setup({ g1: ["alice", "bob"] });
  const { srv, backend } = env;
  for (const domain of ["d", "e"]) {
    await using alice = (await TestClient.login(srv.port, `alice@${domain}`)).client;
    await groupMsg(alice, "g1", "x");
    assert.equal((await alice.nextPacket()).json.envelope.type, 3);
  }
  assert.equal(backend.of("emsg_group.get_user_list").length, 2);
});

async function expectNotice(srv: TestServer, jid: string, gid: string | undefined, reason: string) {
  await using c = (await TestClient.login(srv.port, jid)).client;
  const id = await groupMsg(c, gid, "x");
  const r = await c.nextPacket();
  assert.equal(r.json.envelope.id, id);
  assert.equal(r.json.envelope.type, 4);
  assert.deepEqual(r.json.entity, { result: "sys_notify", reason });
  await c.nothing(100);
}

Deno.test("a group message without gid gets group_notfound", async () => {
  await using env = await setup({});
  await expectNotice(env.srv, "alice@d", undefined, "group_notfound");
  await expectNotice(env.srv, "alice@d", "", "group_notfound");
  assert.equal(env.backend.calls.length, 0);
});

Deno.test("a group the backend does not know gets group_notfound", async () => {
  await using env = await setup({});
  await expectNotice(env.srv, "alice@d", "nope", "group_notfound");
  assert.equal(env.backend.of("emsg_group.get_user_list").length, 1);
});

Deno.test("a group of one member gets group_too_small and nothing is delivered", async () => {
  await using env = await setup({ solo: ["alice"] });
  await expectNotice(env.srv, "alice@d", "solo", "group_too_small");
});

Deno.test("membership is an exact match: bob may not post into a group of bobby", async () => {
  await using env = await setup({ g: ["bobby", "carol", "xbob", "bob2"] });
  const { srv } = env;
  await using bobby = (await TestClient.login(srv.port, "bobby@d")).client;
  await expectNotice(srv, "bob@d", "g", "no_permission");
  await bobby.nothing(100);
  await using carol = await TestClient.connect(srv.port);
  assert.deepEqual((await carol.login("carol@d")).json.delay, { total: 0 });
});

Deno.test("group members given as numeric uids are matched as their decimal text", async () => {
  await using env = await setup({ g: [1001, "1002"] });
  const { srv } = env;
  await using a = (await TestClient.login(srv.port, "1001@d")).client;
  await using b = (await TestClient.login(srv.port, "1002@d")).client;
  await groupMsg(a, "g", "hi");
  assert.equal((await a.nextPacket()).json.envelope.type, 3);
  assert.equal((await b.nextPacket()).json.envelope.from, "1001@d");
});

const failures: [string, Responder | null][] = [
  ["is down", null],
  ["answers HTML", () => new Response("<html></html>")],
  ["answers success false", (req) => answer(req, false)],
  ["answers users that is not an array", (req) => answer(req, true, { users: "alice,bob" })],
];
for (const [what, respond] of failures) {
  Deno.test(`a group lookup whose backend ${what} gets group_notfound and is not cached`, async () => {
    await using backend = CallbackServer.start();
    if (respond !== null) backend.responder = respond;
    await using srv = await startTestServer({
      callback: respond === null ? deadUrl() : backend.url,
    });
    await expectNotice(srv, "alice@d", "g", "group_notfound");
    assert.equal(await srv.server.core.store.groupMembers("group_g@d"), null);
  });
}

Deno.test("a group lookup in progress holds back only its sender's later messages, in order", async () => {
  await using env = await setup({});
  const { srv, backend } = env;
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  backend.responder = async (req) => {
    await gate;
    return answer(req, true, { users: ["alice", "bob"] });
  };
  await using alice = (await TestClient.login(srv.port, "alice@d")).client;
  await using bob = (await TestClient.login(srv.port, "bob@d")).client;
  await using carol = (await TestClient.login(srv.port, "carol@d")).client;
  await groupMsg(alice, "g", "group first");
  await alice.chat("bob@d", "direct second");
  await backend.waitFor("emsg_group.get_user_list", 1);
  // carol is not held up by alice's lookup.
  await carol.chat("bob@d", "from carol");
  assert.deepEqual((await bob.nextPacket()).json.payload, { content: "from carol" });
  release();
  const order = [(await bob.nextPacket()).json, (await bob.nextPacket()).json];
  assert.deepEqual(order.map((p) => (p.payload as { content: string }).content), [
    "group first",
    "direct second",
  ]);
});
