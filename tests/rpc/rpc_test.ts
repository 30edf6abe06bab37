// The RPC interface of a running node over real HTTP (docs/protocol.md §6): every
// method with its params errors, the three request forms, CORS, the console
// redirect, a 10 MB body, and the warning when accesstoken is empty.

import assert from "node:assert/strict";
import { startTestServer } from "../helpers/server.ts";
import { TestClient } from "../helpers/client.ts";
import { rpc, type RpcForm } from "../helpers/rpc_client.ts";
import { CapturedLog } from "../helpers/log_capture.ts";

const TOKEN = "rpc-token";

const req = (service: string, method: string, params?: unknown) => ({
  sn: `sn-${method}`,
  service,
  method,
  params,
  token: TOKEN,
});

Deno.test("emsg_session.counter counts this node's sessions in every request form and path", async () => {
  await using srv = await startTestServer({ accesstoken: TOKEN, nodeid: "n07" });
  await using _a = (await TestClient.login(srv.port, "a@d")).client;
  await using _b = (await TestClient.login(srv.port, "b@d")).client;
  for (const form of ["form", "get", "raw"] as RpcForm[]) {
    for (const path of ["/api/", "/"]) {
      const got = await rpc(srv.rpcPort, req("emsg_session", "counter"), form, path);
      assert.deepEqual(got, {
        status: 200,
        json: {
          sn: "sn-counter",
          success: true,
          entity: { counters: [{ node: "n07", count: 2 }] },
        },
      });
    }
  }
});

Deno.test("emsg_session.isonline is true for a logged-in user, by bare or full jid, and false otherwise", async () => {
  await using srv = await startTestServer({ accesstoken: TOKEN });
  await using _a = (await TestClient.login(srv.port, "a@d")).client;
  const online = async (jid: unknown) =>
    (await rpc(srv.rpcPort, req("emsg_session", "isonline", { jid }))).json;
  assert.deepEqual(await online("a@d"), { sn: "sn-isonline", success: true });
  assert.deepEqual(await online("a@d/phone"), { sn: "sn-isonline", success: true });
  assert.deepEqual(await online("b@d"), { sn: "sn-isonline", success: false });
  assert.deepEqual(await online("A@d"), { sn: "sn-isonline", success: false });
});

Deno.test("emsg_session.isonline with a missing or malformed jid answers 1001", async () => {
  await using srv = await startTestServer({ accesstoken: TOKEN });
  for (const params of [undefined, {}, { jid: 12 }, { jid: "nobody" }, "a@d", [1]]) {
    const { json } = await rpc(srv.rpcPort, req("emsg_session", "isonline", params));
    assert.equal(json.success, false);
    assert.equal((json.entity as { errCode: string }).errCode, "1001", JSON.stringify(params));
  }
});

Deno.test("emsg_group.reload drops the cached list and names a missing gid or domain", async () => {
  await using srv = await startTestServer({ accesstoken: TOKEN });
  const store = srv.server.core.store;
  await store.setGroupMembers("group_g1@d", ["a", "b"], 3600);
  await store.setGroupMembers("group_g1@e", ["a", "b"], 3600);
  const ok = await rpc(srv.rpcPort, req("emsg_group", "reload", { gid: "g1", domain: "d" }));
  assert.deepEqual(ok.json, { sn: "sn-reload", success: true });
  assert.equal(await store.groupMembers("group_g1@d"), null);
  assert.deepEqual(await store.groupMembers("group_g1@e"), ["a", "b"]);
  const cases: [unknown, string][] = [
    [{ domain: "d" }, "gid_not_be_empty"],
    [{ gid: "", domain: "d" }, "gid_not_be_empty"],
    [{ gid: 5, domain: "d" }, "gid_not_be_empty"],
    [{ gid: "g1" }, "domain_not_be_empty"],
    [{ gid: "g1", domain: ["d"] }, "domain_not_be_empty"],
    ["g1", "params must be an object"],
  ];
  for (const [params, reason] of cases) {
    const { json } = await rpc(srv.rpcPort, req("emsg_group", "reload", params));
    assert.deepEqual(json, {
      sn: "sn-reload",
      success: false,
      entity: { errCode: "1001", reason },
    });
  }
});

Deno.test("over HTTP: wrong token 1003, unknown service 1003, unknown method 1002, bad body 1000", async () => {
  await using srv = await startTestServer({ accesstoken: TOKEN });
  const code = async (body: unknown) =>
    ((await rpc(srv.rpcPort, body)).json.entity as { errCode: string }).errCode;
  assert.equal(await code({ ...req("emsg_session", "counter"), token: "wrong" }), "1003");
  assert.equal(await code(req("emsg_nope", "counter")), "1003");
  assert.equal(await code(req("emsg_session", "nope")), "1002");
  const res = await fetch(`http://127.0.0.1:${srv.rpcPort}/api/`, {
    method: "POST",
    body: new URLSearchParams({ body: "{oops" }),
  });
  assert.equal(res.status, 200);
  assert.equal((await res.json()).entity.errCode, "1000");
});

Deno.test("over HTTP: CORS preflight and the redirect of a plain GET / to the console", async () => {
  await using srv = await startTestServer({ accesstoken: TOKEN });
  const base = `http://127.0.0.1:${srv.rpcPort}`;
  const pre = await fetch(`${base}/api/`, {
    method: "OPTIONS",
    headers: { origin: "http://app.example", "access-control-request-method": "POST" },
  });
  await pre.body?.cancel();
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get("access-control-allow-origin"), "*");
  const root = await fetch(`${base}/`, { redirect: "manual" });
  await root.body?.cancel();
  assert.equal(root.status, 302);
  assert.equal(root.headers.get("location"), "/console/");
});

Deno.test("over HTTP: a 10 MB body, streamed or announced, gets 413 and the node keeps serving", async () => {
  await using srv = await startTestServer({ accesstoken: TOKEN });
  const url = `http://127.0.0.1:${srv.rpcPort}/api/`;
  const big = new Uint8Array(10 * 1024 * 1024).fill(0x61);
  const announced = await fetch(url, { method: "POST", body: big });
  assert.equal(announced.status, 413);
  assert.equal((await announced.json()).entity.errCode, "1000");

  let sent = 0;
  const chunk = new Uint8Array(64 * 1024).fill(0x61);
  const streamed = new ReadableStream<Uint8Array>({
    pull(ctl) {
      if (sent >= big.length) return ctl.close();
      sent += chunk.length;
      ctl.enqueue(chunk);
    },
  });
  // Without Content-Length the server must stop at the limit while reading.
  const res = await fetch(url, { method: "POST", body: streamed }).catch((err) => err);
  if (res instanceof Response) {
    assert.equal(res.status, 413);
    await res.body?.cancel();
  } else {
    // The server may close the connection before the client finished sending.
    assert.ok(sent < big.length, `the whole body was sent: ${res}`);
  }
  const after = await rpc(srv.rpcPort, req("emsg_session", "counter"));
  assert.equal(after.json.success, true);
});

Deno.test("an empty accesstoken opens RPC with one startup warning and refuses push", async () => {
  using log = new CapturedLog();
  await using srv = await startTestServer({ accesstoken: "" }, { log: log.log });
  const counter = await rpc(srv.rpcPort, { sn: 1, service: "emsg_session", method: "counter" });
  assert.equal(counter.json.success, true);
  const push = await rpc(srv.rpcPort, {
    sn: 2,
    service: "emsg_inf_push",
    method: "process",
    params: { content: { envelope: { id: "x", type: 1, from: "a@d", to: "b@d" } } },
  });
  assert.deepEqual(push.json, {
    sn: 2,
    success: false,
    entity: { errCode: "1003", reason: "set accesstoken to enable push" },
  });
  assert.equal(log.text().match(/accesstoken is empty/g)?.length, 1);
});

Deno.test("the rpc and thrift push listeners are started and named in the log", async () => {
  using log = new CapturedLog();
  await using srv = await startTestServer({ accesstoken: TOKEN }, { log: log.log });
  assert.ok(srv.rpcPort > 0 && srv.thriftPort > 0);
  assert.match(log.text(), new RegExp(`rpc start on \\[127\\.0\\.0\\.1:${srv.rpcPort}\\]`));
  assert.match(
    log.text(),
    new RegExp(`thrift push start on \\[127\\.0\\.0\\.1:${srv.thriftPort}\\]`),
  );
  assert.ok(!log.text().includes(TOKEN));
});
