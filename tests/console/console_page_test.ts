// The /console/ pages as a pure handler, and through a node's RPC listener:
// static files, the config the page reads, the token-gated user lookup.

import assert from "node:assert/strict";
import { type ConsoleOptions, consolePage } from "../../src/rpc/console/console.ts";
import { startTestServer } from "../helpers/server.ts";
import { TestClient } from "../helpers/client.ts";

function page(overrides: Partial<ConsoleOptions> = {}) {
  return consolePage({
    nodeid: "n07",
    accesstoken: "",
    wsPorts: () => ({ ws: 4224, wss: null }),
    locate: (jid) => Promise.resolve(jid === "a@d" ? "n07" : null),
    ...overrides,
  });
}

async function get(p: ReturnType<typeof consolePage>, path: string, init?: RequestInit) {
  const req = new Request(`http://h${path}`, init);
  const answer = p(req, new URL(req.url));
  assert.ok(answer, `${path} is a console path`);
  return await answer;
}

Deno.test("the console serves its page, script and style built into the server", async () => {
  const p = page();
  const html = await get(p, "/console/");
  assert.equal(html.status, 200);
  assert.equal(html.headers.get("content-type"), "text/html; charset=utf-8");
  assert.match(html.headers.get("content-security-policy")!, /default-src 'self'/);
  const text = await html.text();
  assert.match(text, /<script type="module" src="app.js"><\/script>/);
  assert.match(text, /<link rel="stylesheet" href="style.css">/);
  const js = await get(p, "/console/app.js");
  assert.equal(js.headers.get("content-type"), "text/javascript; charset=utf-8");
  assert.match(await js.text(), /class TestClient/);
  const css = await get(p, "/console/style.css");
  assert.equal(css.headers.get("content-type"), "text/css; charset=utf-8");
  await css.body?.cancel();
});

Deno.test("/console redirects to /console/; unknown files are 404; only GET is allowed", async () => {
  const p = page();
  const bare = await get(p, "/console");
  assert.deepEqual([bare.status, bare.headers.get("location")], [301, "/console/"]);
  assert.equal((await get(p, "/console/missing.js")).status, 404);
  assert.equal((await get(p, "/console/", { method: "POST", body: "x" })).status, 405);
  const req = new Request("http://h/api/");
  assert.equal(p(req, new URL(req.url)), null);
});

Deno.test("config.json tells the page the WebSocket ports and whether a token is needed", async () => {
  const open = await (await get(page(), "/console/config.json")).json();
  assert.deepEqual(open, { nodeid: "n07", wsport: 4224, wssport: null, token: false });
  const locked = await (await get(page({ accesstoken: "t0k" }), "/console/config.json")).json();
  assert.equal(locked.token, true);
  assert.equal(JSON.stringify(locked).includes("t0k"), false);
});

Deno.test("the user lookup names the node, and wants the accesstoken as a bearer token when set", async () => {
  const p = page({ accesstoken: "t0k" });
  assert.equal((await get(p, "/console/locate?jid=a@d")).status, 403);
  const wrong = { headers: { authorization: "Bearer nope" } };
  assert.equal((await get(p, "/console/locate?jid=a@d", wrong)).status, 403);
  const auth = { headers: { authorization: "Bearer t0k" } };
  assert.deepEqual(await (await get(p, "/console/locate?jid=a@d/phone", auth)).json(), {
    jid: "a@d",
    node: "n07",
  });
  assert.deepEqual(await (await get(p, "/console/locate?jid=b@d", auth)).json(), {
    jid: "b@d",
    node: null,
  });
  assert.equal((await get(p, "/console/locate?jid=nobody", auth)).status, 400);
});

Deno.test("a node serves the console on rpcport: GET / redirects there, config has the bound ws port", async () => {
  await using srv = await startTestServer({ enable_ws: true, accesstoken: "t0k" });
  const base = `http://127.0.0.1:${srv.rpcPort}`;
  const root = await fetch(`${base}/`, { redirect: "manual" });
  await root.body?.cancel();
  assert.deepEqual([root.status, root.headers.get("location")], [302, "/console/"]);
  const config = await (await fetch(`${base}/console/config.json`)).json();
  assert.deepEqual(config, { nodeid: "n01", wsport: srv.wsPort, wssport: null, token: true });
  await using _a = (await TestClient.login(srv.port, "a@d")).client;
  const located = await fetch(`${base}/console/locate?jid=a@d`, {
    headers: { authorization: "Bearer t0k" },
  });
  assert.deepEqual(await located.json(), { jid: "a@d", node: "n01" });
});
