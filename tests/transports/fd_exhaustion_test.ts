// Running out of file descriptors (EMFILE) must not end any accept loop: a
// node started with a soft limit of 64 open files is flooded with
// connections on every port, says not ready meanwhile, logs the failures at
// most once a second, and serves TCP, WebSocket, RPC and Thrift push again
// once the flood is gone.

import assert from "node:assert/strict";
import { SaraProcess } from "../helpers/process.ts";
import { TestClient } from "../helpers/client.ts";
import { WsTestClient } from "../helpers/ws_client.ts";
import { thriftProcess } from "../helpers/thrift_client.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** One HTTP/1.1 GET on an open keep-alive connection; the status line and body. */
async function get(conn: Deno.Conn, path: string): Promise<string> {
  await conn.write(enc.encode(`GET ${path} HTTP/1.1\r\nhost: x\r\n\r\n`));
  const buf = new Uint8Array(4096);
  const n = await conn.read(buf);
  return n === null ? "" : dec.decode(buf.subarray(0, n));
}

async function until<T>(what: string, f: () => Promise<T | null>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown = null;
  while (Date.now() < deadline) {
    try {
      const v = await f();
      if (v !== null) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} not within ${ms} ms: ${last}`);
}

Deno.test("a node at its open-files limit keeps accepting on TCP, WS, RPC and Thrift once descriptors free up, and /readyz says 503 meanwhile", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sara-emfile-" });
  await Deno.writeTextFile(
    `${dir}/conf.json`,
    JSON.stringify({
      bind: "127.0.0.1",
      port: 0,
      wsport: 0,
      rpcport: 0,
      nodeaddr: "127.0.0.1:0",
      enable_ws: true,
      datadir: `${dir}/data`,
      logfile: "",
      pidfile: "",
      loglevel: 2,
    }),
  );
  const proc = SaraProcess.start(["-c", `${dir}/conf.json`], {}, 64);
  const hogs: Deno.Conn[] = [];
  try {
    const [tcp, ws, rpc] = [await proc.port("tcp"), await proc.port("ws"), await proc.port("rpc")];
    const thrift = await proc.port("thrift push");
    const keepAlive = await Deno.connect({ hostname: "127.0.0.1", port: rpc });
    hogs.push(keepAlive);
    assert.match(await get(keepAlive, "/readyz"), /^HTTP\/1.1 200/);

    const floodStart = Date.now();
    for (let i = 0; i < 80; i++) {
      hogs.push(await Deno.connect({ hostname: "127.0.0.1", port: tcp }));
    }
    await proc.waitFor(/tcp accept failed/);
    assert.match(await get(keepAlive, "/readyz"), /^HTTP\/1.1 503[^]*accepting connections fails/);

    for (const port of [ws, rpc, thrift]) {
      for (let i = 0; i < 5; i++) hogs.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    }
    await proc.waitFor(/ws accept failed/);
    await proc.waitFor(/rpc accept failed/);
    await proc.waitFor(/thrift push accept failed/);
    await new Promise((r) => setTimeout(r, 2000));
    const seconds = (Date.now() - floodStart) / 1000;
    // At most one line a second per listener.
    const lines = proc.output.match(/tcp accept failed/g)!.length;
    assert.ok(lines <= Math.ceil(seconds) + 1, `${lines} lines in ${seconds} s`);

    for (const h of hogs.splice(0)) h.close();
    const c = await until("TCP login", async () => (await TestClient.login(tcp, "a@d")).client);
    await using _c = c;
    const w = await until("WS login", async () => (await WsTestClient.login(ws, "b@d")).client);
    await using _w = w;
    const id = await c.chat("b@d", "after the flood");
    assert.equal((await w.nextPacket()).json.envelope.id, id);
    const pushed = await until("Thrift answer", () => thriftProcess(thrift, "", "s", "{}"));
    assert.equal(pushed, "set accesstoken to enable push");
    await until("/readyz 200", async () => {
      const res = await fetch(`http://127.0.0.1:${rpc}/readyz`);
      await res.body?.cancel();
      return res.status === 200 ? true : null;
    });
    const metrics = await (await fetch(`http://127.0.0.1:${rpc}/metrics`)).text();
    const errors = Number(metrics.match(/^sara_accept_errors_total (\d+)/m)?.[1]);
    assert.ok(errors > 0, `sara_accept_errors_total ${errors}`);
  } finally {
    for (const h of hogs) h.close();
    await proc[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true });
  }
});
