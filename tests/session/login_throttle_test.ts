// Failed logins are throttled per user and per remote address, and logged at
// most once a second with a count (SECURITY.md).

import assert from "node:assert/strict";
import { LoginThrottle } from "../../src/session/login_throttle.ts";
import { CapturedLog } from "../helpers/log_capture.ts";
import { startTestServer } from "../helpers/server.ts";
import { TestClient } from "../helpers/client.ts";
import { mintToken } from "../helpers/token.ts";

const SECRET = "throttle-test-secret";

/** "ok" or the failure reason of one login over a fresh connection. */
async function reasonOf(port: number, jid: string, pwd: string): Promise<string> {
  await using c = await TestClient.connect(port);
  const entity = (await c.login(jid, { pwd })).json.entity as { result: string; reason?: string };
  return entity.result === "ok" ? "ok" : String(entity.reason);
}

Deno.test("after 10 wrong tokens a minute even a valid token of that user is refused with fail_token, and the refusals are logged once a second with a count", async () => {
  using captured = new CapturedLog();
  await using srv = await startTestServer({ auth_secret: SECRET }, { log: captured.log });
  const good = await mintToken(SECRET, { sub: "x" });
  // The valid token works before any failure.
  assert.equal(await reasonOf(srv.port, "x@d/phone", good), "ok");
  for (let i = 0; i < 10; i++) {
    assert.equal(await reasonOf(srv.port, "x@d", `guess${i}`), "fail_token");
  }
  assert.equal(await reasonOf(srv.port, "x@d/phone", good), "fail_token");
  const lines = captured.text().split("\n").filter((l) => l.includes("failed logins"));
  assert.ok(lines.length >= 1 && lines.length < 11, lines.join("\n"));
  const counted = lines.reduce((n, l) => n + Number(/(\d+) failed logins/.exec(l)![1]), 0);
  assert.ok(counted <= 11, String(counted));
  // Not one INFO line per refusal.
  assert.doesNotMatch(captured.text(), /INFO.*session closed: login_failed/);
});

Deno.test("the throttle counts per user and per address, and its delay doubles", () => {
  let now = 0;
  const t = new LoginThrottle(new CapturedLog().log, () => now);
  for (let i = 0; i < 10; i++) t.failed("u@d", `10.0.0.${i}:5000`);
  // The user is throttled from anywhere; another user from a fresh address is not.
  assert.equal(t.delay("u@d", "10.9.9.9:1"), 250);
  assert.equal(t.delay("v@d", "10.9.9.9:1"), 0);
  for (let i = 0; i < 10; i++) t.failed(`w${i}@d`, "[::1]:4000");
  // The address is throttled for every user.
  assert.equal(t.delay("v@d", "[::1]:4001"), 250);
  t.failed("v@d", "[::1]:4001");
  assert.equal(t.delay("z@d", "[::1]:9"), 500);
  // A minute later everything is forgiven.
  now += 60_000;
  assert.equal(t.delay("u@d", "10.9.9.9:1"), 0);
  assert.equal(t.delay("v@d", "[::1]:4001"), 0);
});
