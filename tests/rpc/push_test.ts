// The push API (docs/protocol.md §6) over HTTP RPC and over Thrift: pushed packets go
// exactly the way a client's do (online, offline, group fan-out), bad ones
// are listed with their index and reason, and the rest still go through.

import assert from "node:assert/strict";
import { ConfigError } from "../../src/errors.ts";
import { nodeaddrPort } from "../../src/rpc/thrift_listener.ts";
import { startTestServer } from "../helpers/server.ts";
import { TestClient } from "../helpers/client.ts";
import { CallbackServer } from "../helpers/callback_server.ts";
import { rpc } from "../helpers/rpc_client.ts";
import { thriftProcess, thriftProcessBatch } from "../helpers/thrift_client.ts";

const TOKEN = "push-token";
type Delay = { total: number; packets?: { envelope: Record<string, unknown> }[] };

const push = (port: number, params: unknown, method = "process", token: unknown = TOKEN) =>
  rpc(port, { sn: "p1", service: "emsg_inf_push", method, params, token });

function packet(id: string, extra: Record<string, unknown> = {}) {
  return {
    envelope: { id, type: 1, from: "a@d/pc", to: "b@d", ack: 1, custom: "kept", ...extra },
    payload: { content: `msg ${id}`, attrs: { n: [1, { x: null }] } },
    vsn: "0.0.1",
    extra_top: true,
  };
}

Deno.test("process delivers a pushed packet to an online user exactly as its from would have", async () => {
  await using srv = await startTestServer({ accesstoken: TOKEN });
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  const p = packet("m1");
  const got = await push(srv.rpcPort, { content: JSON.stringify(p) });
  assert.deepEqual(got, {
    status: 200,
    json: { sn: "p1", success: true, entity: { accepted: 1, rejected: [] } },
  });
  const r = (await b.nextPacket()).json;
  assert.match(r.envelope.ct!, /^\d+$/);
  assert.deepEqual(r, { ...p, envelope: { ...p.envelope, ct: r.envelope.ct } });
  await b.ack("m1");
});

Deno.test("process with a packet object stores it for an offline user", async () => {
  await using srv = await startTestServer({ accesstoken: TOKEN });
  const got = await push(srv.rpcPort, { content: packet("m2") });
  assert.deepEqual(got.json.entity, { accepted: 1, rejected: [] });
  const { client: b, answer } = await TestClient.login(srv.port, "b@d");
  await using _b = b;
  const delay = answer.json.delay as Delay;
  assert.deepEqual(delay.packets!.map((p) => [p.envelope.id, p.envelope.custom]), [["m2", "kept"]]);
});

Deno.test("a packet pushed as a JSON object reaches the recipient in the bytes it was written in, big numbers exact", async () => {
  await using srv = await startTestServer({ accesstoken: TOKEN });
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  const payload = '{"big":12345678901234567890123, "neg":-9007199254740993,' +
    '"f":0.1000000000000000055511151231257827,"s":"],{\\"x"}';
  const packetText = (id: string, to: string) =>
    `{"envelope":{"id":"${id}","type":1,"from":"a@d","to":"${to}","ack":1},"payload":${payload}}`;
  // The body is written by hand: JSON.stringify of a parsed copy would round the numbers.
  const send = async (params: string, method: string) => {
    const res = await fetch(`http://127.0.0.1:${srv.rpcPort}/api/`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: `{"sn":"n","service":"emsg_inf_push","method":"${method}","token":"${TOKEN}",` +
        `"params":${params}}`,
    });
    return await res.json();
  };
  const stamped = (text: string, ct: unknown) => text.replace('"ack":1}', `"ack":1,"ct":"${ct}"}`);

  const one = await send(`{ "content" : ${packetText("big1", "b@d")} }`, "process");
  assert.deepEqual(one.entity, { accepted: 1, rejected: [] });
  const got = await b.nextPacket();
  assert.equal(got.text, stamped(packetText("big1", "b@d"), got.json.envelope.ct));

  // In a batch, beside a packet pushed as a string, and stored for an offline user.
  const batch = await send(
    `{"contents":[ ${packetText("big2", "c@d")} ,${JSON.stringify(packetText("big3", "c@d"))},` +
      `${packetText("big4", "c@d")}]}`,
    "process_batch",
  );
  assert.deepEqual(batch.entity, { accepted: 3, rejected: [] });
  const { client: c, answer } = await TestClient.login(srv.port, "c@d");
  await using _c = c;
  const stored = (answer.json.delay as Delay).packets!;
  assert.deepEqual(stored.map((p) => p.envelope.id), ["big2", "big3", "big4"]);
  for (const p of stored) {
    assert.ok(
      answer.text.includes(stamped(packetText(p.envelope.id as string, "c@d"), p.envelope.ct)),
      answer.text,
    );
  }
});

Deno.test("process_batch refuses bad packets by index and still delivers the rest, in order", async () => {
  await using srv = await startTestServer({ accesstoken: TOKEN });
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  const contents = [
    JSON.stringify(packet("ok1")),
    JSON.stringify({ envelope: { id: "n1", type: 1, from: "a@d" } }), // no to
    '{"envelope":{"id":"bad json"', // malformed JSON
    packet("t1", { type: "chat" }), // a type that is not an integer
    packet("ok2", { type: 99 }), // unknown but an integer: routed like type 1
    42,
    packet("o1", { type: 0 }), // login packets cannot be pushed
    packet("s1", { type: 3, to: "server_ack" }), // nobody acks for a user
    packet("f1", { from: "not a jid" }),
    packet("i1", { id: 7 }),
    { payload: {} }, // no envelope
    packet("ok3", { to: "b@d/phone" }),
  ];
  const got = await push(srv.rpcPort, { contents }, "process_batch");
  assert.deepEqual(got.json, {
    sn: "p1",
    success: false,
    entity: {
      accepted: 3,
      rejected: [
        { index: 1, reason: "bad_to" },
        { index: 2, reason: "bad_packet" },
        { index: 3, reason: "bad_packet" },
        { index: 5, reason: "bad_packet" },
        { index: 6, reason: "bad_packet" },
        { index: 7, reason: "bad_packet" },
        { index: 8, reason: "bad_from" },
        { index: 9, reason: "bad_packet" },
        { index: 10, reason: "bad_packet" },
      ],
    },
  });
  const ids = [];
  for (let i = 0; i < 3; i++) ids.push((await b.nextPacket()).json.envelope.id);
  assert.deepEqual(ids, ["ok1", "ok2", "ok3"]);
  await b.nothing(100);
});

Deno.test("a pushed group message fans out to the members other than its from", async () => {
  await using backend = CallbackServer.start();
  backend.groups.set("g", ["a", "b", "c"]);
  await using srv = await startTestServer({ accesstoken: TOKEN, callback: backend.url });
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  const content = { envelope: { id: "g1", type: 2, from: "a@d", gid: "g" }, payload: { t: 1 } };
  const got = await push(srv.rpcPort, { content });
  assert.deepEqual(got.json.entity, { accepted: 1, rejected: [] });
  const copy = (await b.nextPacket()).json;
  assert.deepEqual([copy.envelope.from, copy.envelope.gid, copy.envelope.ack], ["a@d", "g", 1]);
  assert.notEqual(copy.envelope.id, "g1");
  const { client: c, answer } = await TestClient.login(srv.port, "c@d");
  await using _c = c;
  assert.equal((answer.json.delay as Delay).total, 1);
  await a.nothing(100); // the pushing backend, not a's session, sent it
});

Deno.test("pushed group messages get the same notices a client would", async () => {
  await using backend = CallbackServer.start();
  backend.groups.set("g", ["bobby", "c"]);
  await using srv = await startTestServer({ accesstoken: TOKEN, callback: backend.url });
  const contents = [
    { envelope: { id: "1", type: 2, from: "bob@d", gid: "g" } },
    { envelope: { id: "2", type: 2, from: "bob@d" } },
  ];
  const got = await push(srv.rpcPort, { contents }, "process_batch");
  assert.deepEqual((got.json.entity as { rejected: unknown }).rejected, [
    { index: 0, reason: "no_permission" },
    { index: 1, reason: "group_notfound" },
  ]);
});

Deno.test("the same pushed id twice is delivered once", async () => {
  await using srv = await startTestServer({ accesstoken: TOKEN });
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  const contents = [packet("dup"), packet("dup")];
  const got = await push(srv.rpcPort, { contents }, "process_batch");
  assert.deepEqual(got.json.entity, { accepted: 2, rejected: [] });
  assert.equal((await b.nextPacket()).json.envelope.id, "dup");
  await b.nothing(100);
});

Deno.test("push params of the wrong type answer 1001 and a wrong token 1003", async () => {
  await using srv = await startTestServer({ accesstoken: TOKEN });
  const cases: [unknown, string][] = [
    [{}, "process"],
    [{ content: 5 }, "process"],
    [{ content: null }, "process"],
    ["text", "process"],
    [{ contents: "[]" }, "process_batch"],
    [{ contents: { 0: "x" } }, "process_batch"],
  ];
  for (const [params, method] of cases) {
    const { json } = await push(srv.rpcPort, params, method);
    assert.equal((json.entity as { errCode: string }).errCode, "1001", JSON.stringify(params));
  }
  const wrong = await push(srv.rpcPort, { content: packet("x") }, "process", "nope");
  assert.deepEqual(wrong.json.entity, { errCode: "1003", reason: "wrong token" });
  const empty = await push(srv.rpcPort, { contents: [] }, "process_batch");
  assert.deepEqual(empty.json, { sn: "p1", success: true, entity: { accepted: 0, rejected: [] } });
});

Deno.test("Thrift process with the right licence delivers and answers success", async () => {
  await using srv = await startTestServer({ accesstoken: TOKEN });
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  const answer = await thriftProcess(srv.thriftPort, TOKEN, "sn1", JSON.stringify(packet("t1")));
  assert.equal(answer, "success");
  const r = (await b.nextPacket()).json;
  assert.deepEqual([r.envelope.id, r.payload], ["t1", packet("t1").payload]);
});

Deno.test("Thrift process_batch delivers the good packets and names the bad ones", async () => {
  await using srv = await startTestServer({ accesstoken: TOKEN });
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  const contents = [JSON.stringify(packet("a1")), "{broken", JSON.stringify(packet("a2"))];
  const answer = await thriftProcessBatch(srv.thriftPort, TOKEN, "sn2", contents);
  assert.equal(answer, "rejected 1 of 3: 1:bad_packet");
  assert.equal((await b.nextPacket()).json.envelope.id, "a1");
  assert.equal((await b.nextPacket()).json.envelope.id, "a2");
  assert.equal(await thriftProcessBatch(srv.thriftPort, TOKEN, "sn3", []), "success");
});

Deno.test("Thrift push with a wrong licence, or while accesstoken is empty, is refused", async () => {
  await using srv = await startTestServer({ accesstoken: TOKEN });
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  const content = JSON.stringify(packet("w1"));
  assert.equal(await thriftProcess(srv.thriftPort, "wrong", "s", content), "wrong licence");
  assert.equal(await thriftProcess(srv.thriftPort, "", "s", content), "wrong licence");
  await b.nothing(100);

  await using open = await startTestServer({ accesstoken: "" });
  assert.equal(
    await thriftProcess(open.thriftPort, "", "s", content),
    "set accesstoken to enable push",
  );
});

Deno.test("the Thrift port comes from nodeaddr", () => {
  assert.equal(nodeaddrPort("localhost:4281"), 4281);
  assert.equal(nodeaddrPort("[::1]:4290"), 4290);
  assert.equal(nodeaddrPort("127.0.0.1:0"), 0);
  for (const bad of ["localhost", "h:", "h:x", "h:70000", "h:-1"]) {
    assert.throws(() => nodeaddrPort(bad), ConfigError, bad);
  }
});
