// Signed-token login (`auth_secret`, SECURITY.md): an HS256 JWT whose `sub` is
// the jid's user logs in without a callback; anything else goes to the auth
// callback when enable_auth is on, and is refused otherwise.

import assert from "node:assert/strict";
import { startTestServer } from "../helpers/server.ts";
import { TestClient } from "../helpers/client.ts";
import { answer, CallbackServer } from "../helpers/callback_server.ts";
import { mintToken } from "../helpers/token.ts";
import { TokenVerifier } from "../../src/session/token.ts";

const SECRET = "test-secret-0123456789";

async function loginResult(port: number, jid: string, pwd?: string) {
  await using c = await TestClient.connect(port);
  const ans = await c.login(jid, pwd === undefined ? {} : { pwd });
  return ans.json.entity as { result: string; reason?: string };
}

Deno.test("a token signed with auth_secret for bob logs bob in over TCP, and does not log in alice", async () => {
  await using srv = await startTestServer({ auth_secret: SECRET });
  const bob = await mintToken(SECRET, { sub: "bob", exp: Math.floor(Date.now() / 1000) + 3600 });
  assert.deepEqual(await loginResult(srv.port, "bob@example.com/phone", bob), { result: "ok" });
  assert.deepEqual(await loginResult(srv.port, "alice@example.com", bob), {
    result: "error",
    reason: "fail_token",
  });
});

Deno.test("with auth_secret and no enable_auth, expired, early, unsigned, wrongly signed or absent tokens get fail_token", async () => {
  await using srv = await startTestServer({ auth_secret: SECRET });
  const now = Math.floor(Date.now() / 1000);
  const refused = [
    await mintToken(SECRET, { sub: "bob", exp: now - 120 }),
    await mintToken(SECRET, { sub: "bob", nbf: now + 120 }),
    await mintToken("another-secret", { sub: "bob" }),
    await mintToken(SECRET, { sub: "bob" }, "none"),
    (await mintToken(SECRET, { sub: "bob" })).split(".").slice(0, 2).join(".") + ".",
    "not a token",
    undefined,
  ];
  for (const pwd of refused) {
    assert.deepEqual(await loginResult(srv.port, "bob@d", pwd), {
      result: "error",
      reason: "fail_token",
    }, String(pwd));
  }
  // Within the 60 s leeway both ways.
  const skewed = await mintToken(SECRET, { sub: "bob", exp: now - 30, nbf: now + 30 });
  assert.deepEqual(await loginResult(srv.port, "bob@d", skewed), { result: "ok" });
});

Deno.test("with auth_secret and enable_auth, a signed token skips the callback and any other pwd goes to it", async () => {
  await using backend = CallbackServer.start();
  backend.responder = (req) => answer(req, req.params.token === "callback-ok");
  await using srv = await startTestServer({
    auth_secret: SECRET,
    enable_auth: true,
    callback: backend.url,
  });
  const token = await mintToken(SECRET, { sub: "bob" });
  assert.deepEqual(await loginResult(srv.port, "bob@d", token), { result: "ok" });
  assert.equal(backend.of("emsg_auth.auth").length, 0);
  assert.deepEqual(await loginResult(srv.port, "bob@d", "callback-ok"), { result: "ok" });
  assert.deepEqual(await loginResult(srv.port, "bob@d", "wrong"), {
    result: "error",
    reason: "fail_token",
  });
  assert.equal(backend.of("emsg_auth.auth").length, 2);
});

Deno.test("TokenVerifier refuses a sub that is not a string and claims that are not numbers", async () => {
  const v = new TokenVerifier(SECRET);
  assert.equal(await v.verify(await mintToken(SECRET, { sub: ["bob"] }), "bob"), false);
  assert.equal(await v.verify(await mintToken(SECRET, { sub: "bob", exp: "never" }), "bob"), false);
  assert.equal(await v.verify(await mintToken(SECRET, { sub: "bob" }), "bob"), true);
});
