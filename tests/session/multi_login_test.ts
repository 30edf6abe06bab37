// multi_login on one node: several sessions per user, one per resource
// (docs/multi-login.md). The same behaviours across two nodes
// on Redis are in tests/cluster/multi_login_nodes_test.ts.

import assert from "node:assert/strict";
import { TestClient } from "../helpers/client.ts";
import { startTestServer } from "../helpers/server.ts";
import { Scrape } from "../metrics/_prom.ts";
import { rpc } from "../helpers/rpc_client.ts";
import * as m from "./_multi_login.ts";

const TOKEN = "multi-token";

function on(name: string, scenario: (t: m.Topology) => Promise<void>) {
  Deno.test(`multi_login, one node: ${name}`, async () => {
    await using srv = await startTestServer({ multi_login: true, accesstoken: TOKEN });
    await scenario({ nodes: [srv], token: TOKEN });
  });
}

for (const [name, scenario] of m.SCENARIOS) on(name, scenario);

Deno.test("multi_login: max_sessions bounds a user's sessions", async () => {
  await using srv = await startTestServer({ multi_login: true, max_sessions: 2 });
  await using r1 = (await TestClient.login(srv.port, "b@d/1")).client;
  await using r2 = (await TestClient.login(srv.port, "b@d/2")).client;
  await using _r3 = (await TestClient.login(srv.port, "b@d/3")).client;
  assert.deepEqual((await r1.closedByServer()).map((r) => r.kind), ["kill"]);
  assert.equal(r2.closed, false);
  assert.equal(srv.server.core.router.online, 2);
});

Deno.test('multi_login: a login without a resource is the resource ""', async () => {
  await using srv = await startTestServer({ multi_login: true });
  const bare = (await TestClient.login(srv.port, "b@d")).client;
  await using _p = (await TestClient.login(srv.port, "b@d/phone")).client;
  assert.equal(srv.server.core.router.online, 2, "a resource and no resource are two sessions");
  await using _b = (await TestClient.login(srv.port, "b@d/")).client;
  assert.deepEqual((await bare.closedByServer()).map((r) => r.kind), ["kill"]);
});

Deno.test("multi_login: /metrics counts sessions and users apart", async () => {
  await using srv = await startTestServer({ multi_login: true });
  await using _a = (await TestClient.login(srv.port, "a@d/1")).client;
  await using _b1 = (await TestClient.login(srv.port, "b@d/1")).client;
  await using _b2 = (await TestClient.login(srv.port, "b@d/2")).client;
  const s = await Scrape.of(srv.rpcPort);
  assert.equal(s.get("sara_sessions_online"), 3);
  assert.equal(s.get("sara_users_online"), 2);
});

Deno.test("multi_login off: a second resource of a user still replaces the first", async () => {
  await using srv = await startTestServer();
  const phone = (await TestClient.login(srv.port, "b@d/phone")).client;
  await using _d = (await TestClient.login(srv.port, "b@d/desk")).client;
  assert.deepEqual((await phone.closedByServer()).map((r) => r.kind), ["kill"]);
  const s = await Scrape.of(srv.rpcPort);
  assert.equal(s.get("sara_sessions_online"), 1);
  assert.equal(s.get("sara_users_online"), 1);
});

Deno.test("multi_login off: emsg_session.kick names the one session, by resource or not", async () => {
  await using srv = await startTestServer({ accesstoken: TOKEN });
  const t = { nodes: [srv], token: TOKEN };
  await using phone = (await TestClient.login(srv.port, "b@d/phone")).client;
  const [only] = await m.sessionsOf(t, "b@d");
  assert.deepEqual([only?.resource, only?.node], ["phone", srv.config.nodeid]);
  const kick = (params: unknown) =>
    rpc(srv.rpcPort, { sn: "1", service: "emsg_session", method: "kick", params, token: TOKEN });
  assert.deepEqual((await kick({ uid: "b@d", resource: "desk" })).json.entity, { kicked: 0 });
  assert.equal(phone.closed, false);
  assert.deepEqual((await kick({ uid: "b@d", resource: "phone" })).json.entity, { kicked: 1 });
  assert.deepEqual((await phone.closedByServer()).map((r) => r.kind), ["kill"]);
  assert.equal((await kick({ uid: "b@d", resource: 7 })).json.success, false);
});
