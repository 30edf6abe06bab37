// Protected mode and blacklist proof (SECURITY.md). Tests may only send
// traffic to loopback, so a non-loopback client is simulated by handing the
// RPC handler a Request with a non-loopback remote address (what the RPC
// listener passes it); loopback traffic goes over real sockets.

import assert from "node:assert/strict";
import { startTestServer } from "../helpers/server.ts";
import { TestClient } from "../helpers/client.ts";
import { rpc } from "../helpers/rpc_client.ts";
import { mintToken } from "../helpers/token.ts";
import { isLoopback } from "../../src/rpc/loopback.ts";
import { rpcHandler, type RpcOptions } from "../../src/rpc/http.ts";
import { blacklistService } from "../../src/rpc/blacklist.ts";
import { LoginThrottle } from "../../src/session/login_throttle.ts";
import { metricsPage } from "../../src/rpc/metrics_page.ts";
import { Metrics } from "../../src/metrics/metrics.ts";
import { silentLogger } from "../../src/log.ts";
import { SqliteStore } from "../../src/store/sqlite_store.ts";
import { openSurfaces } from "../../src/config/warnings.ts";
import { defaultConfig } from "../../src/config/config.ts";
import { CapturedLog } from "../helpers/log_capture.ts";

const REMOTE = { remoteAddr: { hostname: "203.0.113.7", port: 40000 } };
const LOCAL = { remoteAddr: { hostname: "127.0.0.1", port: 40000 } };

Deno.test("isLoopback() is true for 127.0.0.0/8, ::1 and mapped 127.x, false for every other address", () => {
  for (const a of ["127.0.0.1", "127.255.3.4", "::1", "[::1]", "::ffff:127.0.0.1"]) {
    assert.equal(isLoopback(a), true, a);
  }
  for (
    const a of [
      "0.0.0.0",
      "10.0.0.1",
      "203.0.113.7",
      "::",
      "::ffff:10.0.0.1",
      "128.0.0.1",
      "localhost",
      "127.0.0.256",
    ]
  ) {
    assert.equal(isLoopback(a), false, a);
  }
});

async function handlerWith(opts: Partial<RpcOptions>, openLogin = true) {
  const dir = await Deno.makeTempDir();
  const store = await SqliteStore.open(dir, {
    expire: 60,
    max: 10,
    maxBytes: 1 << 20,
    policy: {},
    dedupIds: 0,
  });
  const handler = rpcHandler({
    services: {
      emsg_black_list: blacklistService({
        store,
        auth: () => Promise.resolve(true),
        openLogin,
        logins: new LoginThrottle(silentLogger()),
        notify: () => Promise.resolve(),
      }),
    },
    accesstoken: "",
    maxBody: 1 << 20,
    log: silentLogger(),
    pages: [metricsPage(new Metrics())],
    protectedMode: true,
    ...opts,
  });
  return {
    handler,
    async [Symbol.asyncDispose]() {
      await store.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

const blacklistAppend = () =>
  new Request("http://sara/", {
    method: "POST",
    body: JSON.stringify({
      sn: 1,
      service: "emsg_black_list",
      method: "append",
      params: { from: "mallory@d", to: "victim@d" },
    }),
  });

Deno.test("protected mode (simulated non-loopback remote address): RPC and /metrics get 403 with a one-line reason, /healthz does not", async () => {
  await using h = await handlerWith({});
  const api = await h.handler(blacklistAppend(), REMOTE);
  assert.equal(api.status, 403);
  const text = await api.text();
  assert.match(text, /^sara: protected mode: [^\n]+\n$/);
  const metrics = await h.handler(new Request("http://sara/metrics"), REMOTE);
  assert.equal(metrics.status, 403);
  await metrics.body?.cancel();
  const console = await h.handler(new Request("http://sara/console/"), REMOTE);
  assert.equal(console.status, 403);
  await console.body?.cancel();
  // The same from loopback is served.
  const local = await h.handler(new Request("http://sara/metrics"), LOCAL);
  assert.equal(local.status, 200);
  await local.body?.cancel();
});

Deno.test("protected_mode false (simulated non-loopback remote address) serves /metrics, but the blacklist still needs proof", async () => {
  await using h = await handlerWith({ protectedMode: false });
  const metrics = await h.handler(new Request("http://sara/metrics"), REMOTE);
  assert.equal(metrics.status, 200);
  await metrics.body?.cancel();
  const bl = await (await h.handler(blacklistAppend(), REMOTE)).json();
  assert.equal(bl.success, false);
  assert.equal(bl.entity.errCode, "1003");
  assert.match(bl.entity.reason, /accesstoken/);
  // From loopback, with nothing configured, it is allowed as before.
  const local = await (await h.handler(blacklistAppend(), LOCAL)).json();
  assert.equal(local.success, true);
});

Deno.test("a blacklist change for bob over RPC needs bob's own signed token: alice's token and no token are refused", async () => {
  const secret = "bl-secret";
  await using srv = await startTestServer({ auth_secret: secret });
  const bl = async (pwd?: string) =>
    (await rpc(
      srv.rpcPort,
      {
        sn: 1,
        service: "emsg_black_list",
        method: "append",
        params: { from: "mallory@d", to: "bob@d", pwd },
      },
      "form",
      "/",
    )).json;
  assert.equal((await bl()).success, false);
  assert.equal((await bl(await mintToken(secret, { sub: "alice" }))).success, false);
  assert.equal((await bl(await mintToken(secret, { sub: "bob" }))).success, true);
  // And it is applied: mallory no longer reaches bob.
  await using m = (await TestClient.login(srv.port, "mallory@d", {
    pwd: await mintToken(secret, { sub: "mallory" }),
  })).client;
  await using b = (await TestClient.login(srv.port, "bob@d", {
    pwd: await mintToken(secret, { sub: "bob" }),
  })).client;
  await m.chat("bob@d", "blocked");
  await b.nothing(200);
});

Deno.test("a node on defaults logs one WARN line per open surface; one set up as SECURITY.md says logs none", async () => {
  const open = defaultConfig();
  const lines = openSurfaces(open);
  assert.equal(lines.length, 3, lines.join("\n"));
  assert.match(lines[0]!, /^open login/);
  assert.match(lines[1]!, /accesstoken is empty.*loopback clients only/);
  assert.match(lines[2]!, /tcp and ws listen on 0\.0\.0\.0 without TLS/);
  assert.match(openSurfaces({ ...open, protected_mode: false })[1]!, /answer anyone/);
  assert.deepEqual(
    openSurfaces({
      ...open,
      auth_secret: "s",
      accesstoken: "t",
      enable_tcp: false,
      enable_ws: false,
      enable_tls: true,
    }),
    [],
  );
  using log = new CapturedLog();
  await using _srv = await startTestServer({}, { log: log.log });
  const warned = log.text().split("\n").filter((l) => l.includes("[WARN]"));
  assert.ok(warned.some((l) => l.includes("open login")), warned.join("\n"));
  assert.ok(warned.some((l) => l.includes("accesstoken is empty")), warned.join("\n"));
});
