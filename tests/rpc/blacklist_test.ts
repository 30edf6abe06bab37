// Blacklist over RPC (docs/protocol.md §10): append/remove/fetch authorised by the
// user's own login token or the accesstoken, enforced on every delivery path.

import assert from "node:assert/strict";
import { startTestServer } from "../helpers/server.ts";
import { TestClient } from "../helpers/client.ts";
import { rpc } from "../helpers/rpc_client.ts";
import { answer, CallbackServer } from "../helpers/callback_server.ts";

type Json = { success: boolean; entity?: unknown };

/** A user-authorised call: form POST to "/", as the Java SDK does. */
async function bl(port: number, method: string, params: Record<string, unknown>, token?: string) {
  const req = { sn: "s1", service: "emsg_black_list", method, params, token };
  const r = await rpc(port, req, "form", "/");
  assert.equal(r.status, 200);
  return r.json as Json;
}

const errCode = (j: Json) => (j.entity as { errCode: string }).errCode;

Deno.test("a blocked sender cannot reach the blocker online or offline; the other way still works; remove restores delivery", async () => {
  await using srv = await startTestServer();
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  {
    await using b = (await TestClient.login(srv.port, "b@d")).client;
    assert.deepEqual(await bl(srv.rpcPort, "append", { from: "a@d", to: "b@d", pwd: "pwd" }), {
      sn: "s1",
      success: true,
    });
    // Online: a still gets its server ack, b gets nothing.
    const id = await a.chat("b@d/x", "blocked", { ack: 1 });
    assert.equal((await a.nextPacket()).json.envelope.id, id);
    await b.nothing(200);
    // b can still write to a.
    const back = await b.chat("a@d", "hi a", { ack: 1 });
    assert.equal((await a.nextPacket()).json.envelope.id, back);
  }
  // Offline: not stored either.
  const off = await a.chat("b@d", "offline blocked", { ack: 1 });
  assert.equal((await a.nextPacket()).json.envelope.id, off);
  {
    await using b = await TestClient.connect(srv.port);
    const ans = await b.login("b@d");
    assert.deepEqual((ans.json.delay as { total: number }).total, 0);
    assert.deepEqual(await bl(srv.rpcPort, "remove", { from: "a@d", to: "b@d", pwd: "x" }), {
      sn: "s1",
      success: true,
    });
    const ok = await a.chat("b@d", "welcome back", { ack: 1 });
    assert.equal((await b.nextPacket()).json.envelope.id, ok);
  }
});

Deno.test("group copies from a blocked sender are neither delivered nor stored", async () => {
  await using cb = CallbackServer.start();
  cb.groups.set("g1", ["a", "b", "c"]);
  await using srv = await startTestServer({ callback: cb.url });
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  await using c = (await TestClient.login(srv.port, "c@d")).client;
  assert.equal((await bl(srv.rpcPort, "append", { from: "a@d", to: "b@d" })).success, true);
  await a.send({ envelope: { id: "g-1", type: 2, from: "a@d", gid: "g1" }, payload: "hey" });
  assert.equal((await a.nextPacket()).json.envelope.id, "g-1");
  assert.equal((await c.nextPacket()).json.envelope.gid, "g1");
  await using b = await TestClient.connect(srv.port);
  assert.deepEqual((await b.login("b@d")).json.delay, { total: 0 });
});

Deno.test("fetch lists blocked jids oldest first, paginated, and is empty for a user with no list", async () => {
  await using srv = await startTestServer();
  for (const j of ["x@d", "y@d/res", "z@d"]) {
    assert.equal((await bl(srv.rpcPort, "append", { from: j, to: "o@d" })).success, true);
  }
  const all = await bl(srv.rpcPort, "fetch", { to: "o@d" });
  assert.equal(all.success, true);
  const rows = all.entity as { jid: string; ct: string }[];
  assert.deepEqual(rows.map((r) => r.jid), ["x@d", "y@d", "z@d"]);
  assert.ok(rows.every((r) => /^\d+$/.test(r.ct)));
  const page = await bl(srv.rpcPort, "fetch", { to: "o@d", offset: 1, limit: 1 });
  assert.deepEqual((page.entity as { jid: string }[]).map((r) => r.jid), ["y@d"]);
  assert.deepEqual((await bl(srv.rpcPort, "fetch", { to: "empty@d" })).entity, []);
});

Deno.test("fetch of a 100,000-entry list is bounded to 1000 rows a page", async () => {
  await using srv = await startTestServer();
  const store = srv.server.core.store;
  for (let i = 0; i < 100_000; i++) await store.block("big@d", `u${i}@d`, i);
  const first = await bl(srv.rpcPort, "fetch", { to: "big@d", limit: 5000 });
  const rows = first.entity as { jid: string }[];
  assert.equal(rows.length, 1000);
  assert.equal(rows[0]!.jid, "u0@d");
  const last = await bl(srv.rpcPort, "fetch", { to: "big@d", offset: 99_500 });
  assert.equal((last.entity as unknown[]).length, 500);
});

Deno.test("blacklist bad input: missing or malformed jids, blocking yourself, removing what is not there", async () => {
  await using srv = await startTestServer();
  assert.equal(errCode(await bl(srv.rpcPort, "append", { to: "b@d" })), "1001");
  assert.equal(errCode(await bl(srv.rpcPort, "append", { from: "a@d" })), "1001");
  assert.equal(errCode(await bl(srv.rpcPort, "append", { from: "not-a-jid", to: "b@d" })), "1001");
  assert.equal(errCode(await bl(srv.rpcPort, "append", { from: "b@d/r", to: "b@d" })), "1001");
  assert.equal(errCode(await bl(srv.rpcPort, "fetch", { to: "b@d", limit: -1 })), "1001");
  assert.equal(errCode(await bl(srv.rpcPort, "nosuch", { to: "b@d" })), "1002");
  assert.deepEqual(await bl(srv.rpcPort, "remove", { from: "never@d", to: "b@d" }), {
    sn: "s1",
    success: true,
  });
});

Deno.test("the pwd is checked through the auth callback; the accesstoken also authorises", async () => {
  await using cb = CallbackServer.start();
  cb.responder = (req) => answer(req, req.params.token === "good");
  await using srv = await startTestServer({
    callback: cb.url,
    enable_auth: true,
    accesstoken: "backend-secret",
  });
  const ok = await bl(srv.rpcPort, "append", { from: "a@d", to: "b@d", pwd: "good" });
  assert.equal(ok.success, true);
  const auth = cb.of("emsg_auth.auth").at(-1)!;
  assert.deepEqual(auth.request.params, { uid: "b", token: "good" });
  const bad = await bl(srv.rpcPort, "append", { from: "c@d", to: "b@d", pwd: "bad" });
  assert.equal(errCode(bad), "2000");
  const backend = await bl(srv.rpcPort, "fetch", { to: "b@d" }, "backend-secret");
  assert.deepEqual((backend.entity as { jid: string }[]).map((r) => r.jid), ["a@d"]);
  // Other services still need the accesstoken itself.
  const other = await rpc(srv.rpcPort, {
    sn: "1",
    service: "emsg_session",
    method: "isonline",
    params: { jid: "b@d" },
    token: "good",
  });
  assert.equal((other.json.entity as { errCode: string }).errCode, "1003");
});

Deno.test("wrong blacklist pwds count as failed logins: after 10 even the right pwd is refused, on the RPC and at login", async () => {
  await using cb = CallbackServer.start();
  cb.responder = (req) => answer(req, req.params.token === "right");
  await using srv = await startTestServer({ callback: cb.url, enable_auth: true });
  const fetchAs = (pwd: string) => bl(srv.rpcPort, "fetch", { to: "v@d", pwd });
  assert.equal((await fetchAs("right")).success, true);
  for (let i = 0; i < 10; i++) assert.equal(errCode(await fetchAs(`guess${i}`)), "2000");
  const asked = cb.of("emsg_auth.auth").length;
  assert.equal(errCode(await fetchAs("right")), "2000");
  assert.equal(cb.of("emsg_auth.auth").length, asked, "a throttled pwd is not even checked");
  // The same user's login is throttled too: guessing over RPC gains nothing.
  await using c = await TestClient.connect(srv.port);
  const login = await c.login("v@d", { pwd: "right" });
  assert.deepEqual(login.json.entity, { result: "error", reason: "fail_token" });
});
