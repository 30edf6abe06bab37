// `idle_timeout` on the RPC port (SECURITY.md, bounds): a connection that
// sends nothing, or goes silent after an answer, is closed by the server; one
// that keeps asking stays open.

import assert from "node:assert/strict";
import { startTestServer } from "../helpers/server.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Resolves once the server ends `conn` (EOF or reset); rejects after `ms`. */
async function closedByServer(conn: Deno.Conn, ms: number): Promise<void> {
  const timer = setTimeout(() => conn.close(), ms);
  const buf = new Uint8Array(4096);
  try {
    for (;;) {
      if (await conn.read(buf) === null) break;
    }
  } catch (err) {
    if (err instanceof Deno.errors.BadResource) {
      throw new Error(`the server did not close the connection within ${ms} ms`);
    }
    // A reset from the server is a close too.
  } finally {
    clearTimeout(timer);
  }
  conn.close();
}

/** One keep-alive GET of /healthz; the status line. */
async function healthz(conn: Deno.Conn): Promise<string> {
  await conn.write(enc.encode("GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"));
  const buf = new Uint8Array(4096);
  const n = await conn.read(buf);
  assert.ok(n !== null, "closed instead of answering");
  return dec.decode(buf.subarray(0, n)).split("\r\n")[0]!;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("an RPC connection idle for idle_timeout is closed, silent from the start or after a keep-alive answer", async () => {
  await using srv = await startTestServer({ idle_timeout: 1 });
  const connect = () => Deno.connect({ hostname: "127.0.0.1", port: srv.rpcPort });
  const silent = await connect();
  const keptAlive = await connect();
  assert.equal(await healthz(keptAlive), "HTTP/1.1 200 OK");
  const partial = await connect();
  await partial.write(enc.encode("GET /healthz HTTP/1.1\r\nhost: x\r\n")); // never ends its head
  // Half of idle_timeout later all three are still open: the one kept alive still answers.
  await sleep(500);
  assert.equal(await healthz(keptAlive), "HTTP/1.1 200 OK");
  await Promise.all([silent, keptAlive, partial].map((c) => closedByServer(c, 10_000)));
  // The node still serves new connections.
  assert.equal((await fetch(`http://127.0.0.1:${srv.rpcPort}/healthz`)).status, 200);
});

Deno.test("an RPC connection that keeps sending requests outlives idle_timeout", async () => {
  await using srv = await startTestServer({ idle_timeout: 2 });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: srv.rpcPort });
  const until = Date.now() + 3000;
  while (Date.now() < until) {
    assert.equal(await healthz(conn), "HTTP/1.1 200 OK");
    await sleep(200);
  }
  await closedByServer(conn, 10_000);
});
