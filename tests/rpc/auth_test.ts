// Login through the emsg_auth.auth callback (docs/protocol.md §3, §7), whole server
// against a real HTTP backend: accept, refuse, and every way the backend
// can fail, which all answer fail_token; the pwd is never logged.

import assert from "node:assert/strict";
import { startTestServer } from "../helpers/server.ts";
import { TestClient } from "../helpers/client.ts";
import { answer, CallbackServer, deadUrl } from "../helpers/callback_server.ts";
import { CapturedLog } from "../helpers/log_capture.ts";

const PWD = "pwd-that-must-never-be-logged";

/** Logs in `jid` with `pwd` and returns the answer's entity; the client is closed after. */
async function loginEntity(port: number, jid: string, extra: Record<string, unknown>) {
  await using c = await TestClient.connect(port);
  const ans = await c.login(jid, extra);
  return ans.json.entity as { result: string; reason?: string };
}

Deno.test("with enable_auth the login is accepted when the callback answers success true", async () => {
  using log = new CapturedLog();
  await using backend = CallbackServer.start();
  await using srv = await startTestServer(
    { enable_auth: true, callback: backend.url },
    { log: log.log },
  );
  assert.deepEqual(await loginEntity(srv.port, "bob@d/phone", { pwd: PWD }), { result: "ok" });
  const [call] = backend.of("emsg_auth.auth");
  assert.deepEqual(call!.request.params, { uid: "bob", token: PWD });
  assert.equal(backend.calls.length, 1);
  assert.ok(!log.text().includes(PWD), "the pwd reached the log");
});

Deno.test("with enable_auth a login the callback refuses gets fail_token and is closed", async () => {
  using log = new CapturedLog();
  await using backend = CallbackServer.start();
  backend.responder = (req) => answer(req, req.params.token === "right");
  await using srv = await startTestServer(
    { enable_auth: true, callback: backend.url },
    { log: log.log },
  );
  await using c = await TestClient.connect(srv.port);
  const ans = await c.login("bob@d", { pwd: PWD });
  assert.deepEqual(ans.json.entity, { result: "error", reason: "fail_token" });
  assert.equal(ans.json.envelope.type, 0);
  await c.closedByServer();
  assert.deepEqual(await loginEntity(srv.port, "bob@d", { pwd: "right" }), { result: "ok" });
  assert.ok(!log.text().includes(PWD), "the pwd reached the log");
});

Deno.test("success given as the string false refuses and the string true accepts", async () => {
  await using backend = CallbackServer.start();
  await using srv = await startTestServer({ enable_auth: true, callback: backend.url });
  backend.responder = (req) => answer(req, "false");
  assert.equal((await loginEntity(srv.port, "a@d", {})).reason, "fail_token");
  backend.responder = (req) => answer(req, "true");
  assert.equal((await loginEntity(srv.port, "a@d", {})).result, "ok");
});

Deno.test("a login gets fail_token when the auth backend is down", async () => {
  await using srv = await startTestServer({ enable_auth: true, callback: deadUrl() });
  assert.equal((await loginEntity(srv.port, "a@d", {})).reason, "fail_token");
});

Deno.test("a login gets fail_token when the auth backend answers after callback_timeout", async () => {
  await using backend = CallbackServer.start();
  backend.responder = async (req) => {
    await backend.sleep(10_000);
    return answer(req, true);
  };
  await using srv = await startTestServer({
    enable_auth: true,
    callback: backend.url,
    callback_timeout: 1,
  });
  assert.equal((await loginEntity(srv.port, "a@d", {})).reason, "fail_token");
});

Deno.test("a login gets fail_token when the auth backend answers HTML or garbage", async () => {
  await using backend = CallbackServer.start();
  await using srv = await startTestServer({ enable_auth: true, callback: backend.url });
  for (const body of ["<html><h1>Login</h1></html>", "\u0000garbage{", '{"entity":1}']) {
    backend.responder = () => new Response(body, { headers: { "content-type": "text/html" } });
    assert.equal((await loginEntity(srv.port, "a@d", {})).reason, "fail_token", body);
  }
  assert.equal(backend.calls.length, 3);
});

Deno.test("a login without pwd is checked with an empty token", async () => {
  await using backend = CallbackServer.start();
  backend.responder = (req) => answer(req, req.params.token !== "");
  await using srv = await startTestServer({ enable_auth: true, callback: backend.url });
  await using c = await TestClient.connect(srv.port);
  await c.send({ envelope: { id: "l1", type: 0, jid: "a@d" } });
  assert.equal(((await c.nextPacket()).json.entity as { reason: string }).reason, "fail_token");
  assert.deepEqual(backend.calls[0]!.request.params, { uid: "a", token: "" });
});

Deno.test("without enable_auth no auth callback is made and every login is accepted", async () => {
  await using backend = CallbackServer.start();
  backend.responder = (req) => answer(req, false);
  await using srv = await startTestServer({ callback: backend.url });
  assert.equal((await loginEntity(srv.port, "a@d", {})).result, "ok");
  assert.equal(backend.calls.length, 0);
});
