// /healthz and /readyz: the page handler, the readiness rules (listeners up,
// store answering in time, logged once per change), and a running node.

import assert from "node:assert/strict";
import { healthPage, nodeReadiness } from "../../src/rpc/health.ts";
import { StoreError } from "../../src/errors.ts";
import { CapturedLog } from "../helpers/log_capture.ts";
import { startTestServer } from "../helpers/server.ts";
import { silentLogger } from "../../src/log.ts";

const get = (path: string, method = "GET") => new Request(`http://h${path}`, { method });

async function ask(page: ReturnType<typeof healthPage>, path: string, method = "GET") {
  const req = get(path, method);
  const pending = page(req, new URL(req.url));
  if (pending === null) return null;
  const res = await pending;
  return { status: res.status, body: await res.text() };
}

Deno.test("/healthz answers 200 and /readyz 503 with the reason, 200 once ready", async () => {
  let why: string | null = "listeners not up";
  const page = healthPage(() => Promise.resolve(why));
  assert.deepEqual(await ask(page, "/healthz"), { status: 200, body: "ok\n" });
  assert.deepEqual(await ask(page, "/readyz"), {
    status: 503,
    body: "not ready: listeners not up\n",
  });
  why = null;
  assert.deepEqual(await ask(page, "/readyz"), { status: 200, body: "ready\n" });
  assert.equal((await ask(page, "/readyz", "POST"))?.status, 405);
  assert.equal(await ask(page, "/api/"), null);
});

Deno.test("readiness needs the listeners up and a store that answers a ping in time", async () => {
  let listening = false;
  let ping: () => Promise<void> = () => Promise.resolve();
  const ready = nodeReadiness({
    listening: () => listening,
    store: { ping: () => ping() },
    timeoutMs: 50,
    log: silentLogger(),
  });
  assert.equal(await ready(), "listeners not up");
  listening = true;
  assert.equal(await ready(), null);
  ping = () => Promise.reject(new StoreError("redis:10.0.0.1:6379 ping: connection closed"));
  // The address stays in the log, out of an unauthenticated answer.
  assert.equal(await ready(), "store unreachable");
  ping = () => new Promise(() => {}); // hangs
  assert.equal(await ready(), "store unreachable");
});

Deno.test("a store going away and coming back is logged once each way, however often probed", async () => {
  using captured = new CapturedLog();
  let up = true;
  const ready = nodeReadiness({
    listening: () => true,
    store: { ping: () => up ? Promise.resolve() : Promise.reject(new StoreError("gone")) },
    timeoutMs: 1000,
    log: captured.log,
  });
  await ready();
  up = false;
  for (let i = 0; i < 3; i++) assert.equal(await ready(), "store unreachable");
  up = true;
  for (let i = 0; i < 3; i++) assert.equal(await ready(), null);
  const lines = captured.text().trim().split("\n");
  assert.equal(lines.length, 2);
  assert.match(lines[0]!, /\[WARN\] not ready: store unreachable: gone/);
  assert.match(lines[1]!, /\[INFO\] ready: store reachable again/);
});

Deno.test("a running node answers /healthz and /readyz with 200 on rpcport", async () => {
  await using srv = await startTestServer();
  for (const path of ["/healthz", "/readyz"]) {
    const res = await fetch(`http://127.0.0.1:${srv.rpcPort}${path}`);
    assert.equal(res.status, 200, await res.text());
  }
});
