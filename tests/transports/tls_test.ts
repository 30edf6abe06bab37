// TLS and WSS transports (docs/protocol.md §1): framing inside TLS, heartbeats, and
// connections that never finish (or never start) the TLS handshake.

import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { TestClient } from "../helpers/client.ts";
import { WsTestClient } from "../helpers/ws_client.ts";
import { makeCerts, type TestCerts } from "../helpers/certs.ts";

const dec = new TextDecoder();

function startTls(certs: TestCerts, extra = {}): Promise<TestServer> {
  return startTestServer({
    enable_tls: true,
    enable_wss: true,
    certfile: certs.certfile,
    keyfile: certs.keyfile,
    ...extra,
  });
}

/** Reads a raw socket until the server closes it, or `ms` pass; what came, and whether it closed. */
async function readUntilClosed(conn: Deno.Conn, ms: number) {
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(4096);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), ms));
  let closed = false;
  try {
    for (;;) {
      const n = await Promise.race([conn.read(buf), timeout]);
      if (n === "timeout") break;
      if (n === null) {
        closed = true;
        break;
      }
      chunks.push(buf.slice(0, n));
    }
  } catch {
    closed = true; // reset
  } finally {
    clearTimeout(timer);
  }
  return { text: chunks.map((c) => dec.decode(c)).join(""), closed };
}

async function sessionsBecome(srv: TestServer, n: number): Promise<void> {
  for (let i = 0; i < 200 && srv.server.core.sessions.size !== n; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(srv.server.core.sessions.size, n);
}

Deno.test("a TLS client logs in and heartbeats are answered with 0x02 0x01", async () => {
  await using certs = await makeCerts();
  await using srv = await startTls(certs);
  await using c = await TestClient.connectTls(srv.tlsPort, certs.cert);
  await c.sendRaw("\x02\x01");
  await c.nothing();
  const a = await c.login("u@d/phone");
  assert.deepEqual(a.json.entity, { result: "ok" });
  await c.sendRaw("\x02\x01");
  assert.deepEqual(await c.next(), { kind: "heartbeat" });
});

Deno.test("a WSS client logs in with the same certificate and gets \\02 heartbeats", async () => {
  await using certs = await makeCerts();
  await using srv = await startTls(certs);
  await using c = (await WsTestClient.login(srv.wssPort, "u@d", { caCert: certs.cert })).client;
  await c.sendText("\\02");
  assert.deepEqual(await c.next(), { kind: "heartbeat" });
});

Deno.test("TLS handshakes that never complete hold their slots only until login_timeout", async () => {
  await using certs = await makeCerts();
  await using srv = await startTls(certs, { login_timeout: 1, max_conns: 2 });
  const silent = await Deno.connect({ hostname: "127.0.0.1", port: srv.tlsPort });
  const partial = await Deno.connect({ hostname: "127.0.0.1", port: srv.tlsPort });
  try {
    // The header of a ClientHello record whose body never comes.
    await partial.write(Uint8Array.of(0x16, 0x03, 0x01, 0x00, 0xc8));
    await sessionsBecome(srv, 2);
    {
      // While they hold both slots, the node is full.
      await using c = await TestClient.connectTls(srv.tlsPort, certs.cert);
      const rest = await c.closedByServer();
      assert.ok(rest[0]?.kind === "packet");
      assert.equal((rest[0].json.entity as { reason: string }).reason, "server_full");
    }
    await sessionsBecome(srv, 0);
    await using ok = (await TestClient.loginTls(srv.tlsPort, certs.cert, "u@d")).client;
    assert.equal(ok.closed, false);
  } finally {
    silent.close();
    partial.close();
  }
});

Deno.test("TLS and WSS clients that finish the handshake but never log in get timeout and are closed", async () => {
  await using certs = await makeCerts();
  await using srv = await startTls(certs, { login_timeout: 1 });
  await using tls = await TestClient.connectTls(srv.tlsPort, certs.cert);
  await using wss = await WsTestClient.connect(srv.wssPort, { caCert: certs.cert });
  for (const c of [tls, wss]) {
    const rest = await c.closedByServer(4000);
    assert.equal(rest.length, 1);
    assert.ok(rest[0]!.kind === "packet");
    assert.deepEqual(rest[0]!.json.entity, { result: "error", reason: "timeout" });
  }
});

Deno.test("garbage instead of a TLS handshake closes that connection and no other", async () => {
  await using certs = await makeCerts();
  await using srv = await startTls(certs);
  await using a = (await TestClient.loginTls(srv.tlsPort, certs.cert, "a@d")).client;
  const raw = await Deno.connect({ hostname: "127.0.0.1", port: srv.tlsPort });
  try {
    await raw.write(crypto.getRandomValues(new Uint8Array(300)));
    assert.ok((await readUntilClosed(raw, 5000)).closed);
  } finally {
    raw.close();
  }
  await sessionsBecome(srv, 1);
  await using b = (await TestClient.loginTls(srv.tlsPort, certs.cert, "b@d")).client;
  const id = await b.chat("a@d", "still up");
  assert.equal((await a.nextPacket()).json.envelope.id, id);
});

Deno.test("plain emsg bytes sent to the TLS port get no emsg answer and are closed", async () => {
  await using certs = await makeCerts();
  await using srv = await startTls(certs);
  const raw = await Deno.connect({ hostname: "127.0.0.1", port: srv.tlsPort });
  try {
    await raw.write(
      new TextEncoder().encode('{"envelope":{"id":"L","type":0,"jid":"a@d","pwd":"p"}}\x01'),
    );
    const r = await readUntilClosed(raw, 5000);
    assert.ok(r.closed);
    assert.ok(!r.text.includes("envelope"), "nothing readable came back");
  } finally {
    raw.close();
  }
  await sessionsBecome(srv, 0);
});

Deno.test("a client that trusts another certificate cannot connect, and the port stays up", async () => {
  await using certs = await makeCerts();
  await using other = await makeCerts();
  await using srv = await startTls(certs);
  await assert.rejects(async () => {
    const c = await TestClient.connectTls(srv.tlsPort, other.cert);
    await using _c = c;
    await c.login("u@d");
  });
  await using ok = (await TestClient.loginTls(srv.tlsPort, certs.cert, "u@d")).client;
  assert.equal(ok.closed, false);
});

Deno.test("a WSS connection that never starts its handshake holds no session slot", async () => {
  await using certs = await makeCerts();
  await using srv = await startTls(certs, { max_conns: 1 });
  const silent = await Deno.connect({ hostname: "127.0.0.1", port: srv.wssPort });
  try {
    await using _c = (await WsTestClient.login(srv.wssPort, "a@d", { caCert: certs.cert })).client;
    assert.equal(srv.server.core.sessions.size, 1);
  } finally {
    silent.close();
  }
});

Deno.test("the standard WebSocket API logs in over WSS trusting the test certificate", async () => {
  await using certs = await makeCerts();
  await using srv = await startTls(certs);
  using client = Deno.createHttpClient({ caCerts: [certs.cert] });
  const ws = new WebSocket(`wss://127.0.0.1:${srv.wssPort}/`, { client });
  const closed = new Promise((r) => ws.onclose = r);
  try {
    await new Promise((r) => ws.onopen = r);
    const answer = new Promise<MessageEvent>((r) => ws.onmessage = r);
    ws.send(JSON.stringify({ envelope: { id: "L", type: 0, jid: "b@d", pwd: "p" } }));
    assert.deepEqual(JSON.parse((await answer).data).entity, { result: "ok" });
  } finally {
    ws.close();
    await closed;
  }
});
