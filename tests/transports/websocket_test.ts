// WebSocket transport (docs/protocol.md §1): frame decoding, framing on the wire, bad
// input (binary, non-UTF-8, oversized, plain HTTP), slow consumers, admission.

import assert from "node:assert/strict";
import { upgradeAnswer, WsDecoder } from "../../src/protocol/ws_framing.ts";
import { startTestServer } from "../helpers/server.ts";
import { TestClient } from "../helpers/client.ts";
import { WsTestClient } from "../helpers/ws_client.ts";

const WS = { enable_ws: true };
const enc = new TextEncoder();

function reason(r: { json: Record<string, unknown> }): unknown {
  return (r.json.entity as { reason?: string }).reason;
}

/** A decoder past its upgrade, and what it handed on. */
function upgraded(maxPacket: number) {
  const got: string[] = [];
  const d = new WsDecoder(maxPacket, {
    packet: (b) => got.push(`packet ${new TextDecoder().decode(b)}`),
    heartbeat: () => got.push("heartbeat"),
    oversize: () => got.push("oversize"),
    reply: (b) => got.push(`reply ${b[0]!.toString(16)}`),
    opened: () => got.push("opened"),
    end: () => got.push("end"),
  });
  d.push(enc.encode(
    "GET /x HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
  ));
  assert.deepEqual(got.splice(0), ["reply 48", "opened"]);
  return { d, got };
}

/** A masked client frame; `len` overrides the announced length (for headers alone). */
function frame(op: number, payload: Uint8Array | string, fin = true, len?: number): Uint8Array {
  const body = typeof payload === "string" ? enc.encode(payload) : payload;
  const n = len ?? body.length;
  const ext = n < 126 ? 0 : n < 65536 ? 2 : 8;
  const out = new Uint8Array(2 + ext + 4 + body.length);
  out[0] = (fin ? 0x80 : 0) | op;
  out[1] = 0x80 | (ext === 0 ? n : ext === 2 ? 126 : 127);
  const view = new DataView(out.buffer);
  if (ext === 2) view.setUint16(2, n);
  if (ext === 8) view.setBigUint64(2, BigInt(n));
  const mask = Uint8Array.of(1, 2, 3, 4);
  out.set(mask, 2 + ext);
  for (let i = 0; i < body.length; i++) out[2 + ext + 4 + i] = body[i]! ^ mask[i & 3]!;
  return out;
}

Deno.test("the upgrade answer carries the RFC 6455 accept key", () => {
  const a = upgradeAnswer(
    "GET / HTTP/1.1\r\nupgrade: WebSocket\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
      "sec-websocket-version: 13",
  );
  assert.ok(a.ok);
  assert.match(
    new TextDecoder().decode(a.reply),
    /sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=/,
  );
  assert.equal(upgradeAnswer("GET / HTTP/1.1\r\nhost: x").ok, false);
});

Deno.test("WsDecoder reads text and binary, strips one trailing 0x01, ignores empty frames", () => {
  const { d, got } = upgraded(100);
  d.push(frame(1, '{"a":1}'));
  d.push(frame(2, '{"a":1}\x01'));
  d.push(frame(1, ""));
  d.push(frame(1, "\x01"));
  assert.deepEqual(got, ['packet {"a":1}', 'packet {"a":1}']);
});

Deno.test("WsDecoder takes 0x02 and the text \\02 as heartbeat, answers pings, joins fragments", () => {
  const { d, got } = upgraded(100);
  for (const hb of ["\x02", "\\02", "\x02\x01", "\\02\x01"]) d.push(frame(1, hb));
  d.push(frame(1, "\\03"));
  d.push(frame(9, "p"));
  // One packet in two fragments, with a ping between them, fed one byte at a time.
  const bytes = [...frame(1, '{"b"', false), ...frame(9, ""), ...frame(0, ":2}")];
  for (const b of bytes) d.push(Uint8Array.of(b));
  assert.deepEqual(got, [
    "heartbeat",
    "heartbeat",
    "heartbeat",
    "heartbeat",
    "packet \\03",
    "reply 8a",
    "reply 8a",
    'packet {"b":2}',
  ]);
});

Deno.test("WsDecoder refuses a frame over max_packet from its header, before its payload", () => {
  const ok = upgraded(10);
  ok.d.push(frame(1, "x".repeat(10) + "\x01"));
  assert.deepEqual(ok.got, ["packet xxxxxxxxxx"]);
  const big = upgraded(10);
  // Only the header of a 50 MB frame: refused at once.
  big.d.push(frame(2, "", true, 50_000_000));
  assert.deepEqual(big.got, ["oversize"]);
  // Fragments count together.
  const frag = upgraded(10);
  frag.d.push(frame(1, "x".repeat(8), false));
  frag.d.push(frame(0, "x".repeat(8)));
  assert.deepEqual(frag.got, ["oversize"]);
});

Deno.test("WsDecoder ends on a close frame and on unmasked or unknown frames", () => {
  const close = upgraded(100);
  close.d.push(frame(8, Uint8Array.of(3, 232)));
  assert.deepEqual(close.got, ["end"]);
  const unmasked = upgraded(100);
  unmasked.d.push(Uint8Array.of(0x81, 0x01, 0x41));
  assert.deepEqual(unmasked.got, ["end"]);
  const unknown = upgraded(100);
  unknown.d.push(frame(5, "x"));
  assert.deepEqual(unknown.got, ["end"]);
});

Deno.test("a WebSocket client on any path logs in and gets JSON frames without 0x01", async () => {
  await using srv = await startTestServer(WS);
  for (const path of ["/", "/sara/ws?token=1"]) {
    await using c = await WsTestClient.connect(srv.wsPort, { path });
    await c.send({ envelope: { id: "L1", type: 0, jid: "u@d/web", pwd: "x" }, vsn: "0.0.1" });
    const a = await c.nextPacket();
    assert.ok(!a.text.includes("\x01"), a.text);
    assert.deepEqual(a.json, {
      envelope: { id: "L1", type: 0 },
      entity: { result: "ok" },
      delay: { total: 0 },
      vsn: "0.0.1",
    });
  }
});

Deno.test("WebSocket heartbeats are answered with the text \\02 after login, ignored before", async () => {
  await using srv = await startTestServer(WS);
  await using c = await WsTestClient.connect(srv.wsPort);
  await c.sendText("\\02");
  await c.sendBinary(Uint8Array.of(2));
  await c.nothing();
  await c.login("u@d");
  await c.sendText("\x02");
  await c.sendText("\\02");
  await c.sendBinary(Uint8Array.of(2));
  await c.sendText("\x02\x01");
  for (let i = 0; i < 4; i++) assert.deepEqual(await c.next(), { kind: "heartbeat" });
  await c.nothing();
});

Deno.test("a trailing 0x01 after a JSON frame from a client is tolerated", async () => {
  await using srv = await startTestServer(WS);
  await using c = await WsTestClient.connect(srv.wsPort);
  await c.sendText(JSON.stringify({ envelope: { id: "L", type: 0, jid: "a@d" } }) + "\x01");
  assert.equal((await c.nextPacket()).json.envelope.id, "L");
  c.jid = "a@d";
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  await c.sendText(
    JSON.stringify({ envelope: { id: "m1", type: 1, from: "a@d", to: "b@d" }, payload: 1 }) +
      "\x01",
  );
  assert.deepEqual((await b.nextPacket()).json.payload, 1);
});

Deno.test("a binary frame holding UTF-8 JSON is read like a text frame", async () => {
  await using srv = await startTestServer(WS);
  await using c = await WsTestClient.connect(srv.wsPort);
  await c.sendBinary(JSON.stringify({ envelope: { id: "B", type: 0, jid: "a@d" } }));
  const a = await c.nextPacket();
  assert.equal(a.json.envelope.id, "B");
  assert.deepEqual(a.json.entity, { result: "ok" });
});

Deno.test("a binary frame that is not UTF-8 fails the login with fail_packet and closes", async () => {
  await using srv = await startTestServer(WS);
  await using c = await WsTestClient.connect(srv.wsPort);
  await c.sendBinary(Uint8Array.of(0x7b, 0xff, 0xc3, 0x28, 0x7d));
  const rest = await c.closedByServer();
  assert.equal(rest.length, 1);
  const r = rest[0]!;
  assert.ok(r.kind === "packet");
  assert.equal(r.json.envelope.type, 0);
  assert.deepEqual(r.json.entity, { result: "error", reason: "fail_packet" });
});

Deno.test("after login, a binary frame that is not UTF-8 gets bad_packet and a close", async () => {
  await using srv = await startTestServer(WS);
  await using c = (await WsTestClient.login(srv.wsPort, "a@d")).client;
  await c.sendBinary(Uint8Array.of(0x80, 0x81));
  const rest = await c.closedByServer();
  assert.equal(rest.length, 1);
  const r = rest[0]!;
  assert.ok(r.kind === "packet");
  assert.equal(reason(r), "bad_packet");
  assert.equal(srv.server.core.sessions.size, 0);
});

Deno.test("after login, a frame over max_packet gets packet_too_large, then a close", async () => {
  await using srv = await startTestServer({ ...WS, max_packet: 1024 });
  await using c = (await WsTestClient.login(srv.wsPort, "a@d")).client;
  await c.chat("b@d", "x".repeat(1024), { ack: 1 });
  const rest = await c.closedByServer();
  assert.equal(rest.length, 1);
  const r = rest[0]!;
  assert.ok(r.kind === "packet");
  assert.equal(r.json.envelope.type, 4);
  assert.equal(reason(r), "packet_too_large");
  // Nothing of it was kept for the recipient.
  const { client: b, answer } = await TestClient.login(srv.port, "b@d");
  await using _b = b;
  assert.deepEqual(answer.json.delay, { total: 0 });
});

Deno.test("a frame over max_packet before login closes the connection without an answer", async () => {
  await using srv = await startTestServer({ ...WS, max_packet: 1024 });
  await using c = await WsTestClient.connect(srv.wsPort);
  await c.sendBinary(new Uint8Array(4096));
  assert.deepEqual(await c.closedByServer(), []);
});

Deno.test("a plain HTTP request on wsport gets 426 and the listener keeps serving", async () => {
  await using srv = await startTestServer(WS);
  const res = await fetch(`http://127.0.0.1:${srv.wsPort}/`);
  assert.equal(res.status, 426);
  assert.equal(res.headers.get("upgrade"), "websocket");
  await res.body?.cancel();
  // An upgrade without its key is a bad handshake.
  const bad = await fetch(`http://127.0.0.1:${srv.wsPort}/`, {
    headers: { upgrade: "websocket", connection: "Upgrade" },
  });
  assert.equal(bad.status, 400);
  await bad.body?.cancel();
  await using c = (await WsTestClient.login(srv.wsPort, "a@d")).client;
  assert.equal(c.closed, false);
});

Deno.test("a WebSocket connection that never logs in gets timeout and is closed", async () => {
  await using srv = await startTestServer({ ...WS, login_timeout: 1 });
  await using c = await WsTestClient.connect(srv.wsPort);
  const rest = await c.closedByServer(4000);
  assert.equal(rest.length, 1);
  const r = rest[0]!;
  assert.ok(r.kind === "packet");
  assert.deepEqual(r.json.entity, { result: "error", reason: "timeout" });
});

Deno.test("a WebSocket beyond max_conns gets server_full and is closed", async () => {
  await using srv = await startTestServer({ ...WS, max_conns: 1 });
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  await using c = await WsTestClient.connect(srv.wsPort);
  const rest = await c.closedByServer();
  assert.equal(rest.length, 1);
  const r = rest[0]!;
  assert.ok(r.kind === "packet");
  assert.equal(reason(r), "server_full");
  assert.equal(a.closed, false);
});

Deno.test("stopping the server closes WebSocket clients without a kill", async () => {
  const srv = await startTestServer(WS);
  try {
    await using c = (await WsTestClient.login(srv.wsPort, "a@d")).client;
    await srv.stop();
    assert.deepEqual(await c.closedByServer(), []);
  } finally {
    await srv[Symbol.asyncDispose]();
  }
});

Deno.test("a slow WebSocket consumer is closed, keeps its unacked messages, and blocks nobody", async () => {
  await using srv = await startTestServer({
    ...WS,
    out_queue_bytes: 1 << 20,
    rate_limit: 1_000_000,
  });
  const router = srv.server.core.router;
  const big = "x".repeat(32 * 1024);
  await using sender = (await TestClient.login(srv.port, "s@d")).client;

  // A client that reads keeps up with 8 MB sent in bursts of 128 KB.
  await using fast = (await WsTestClient.login(srv.wsPort, "fast@d")).client;
  for (let burst = 0; burst < 64; burst++) {
    for (let i = 0; i < 4; i++) await sender.chat("fast@d", big);
    for (let i = 0; i < 4; i++) await fast.nextPacket();
  }
  assert.ok(router.local("fast@d"), "a reading client stays connected");

  await using slow = (await WsTestClient.login(srv.wsPort, "slow@d")).client;
  const kept = [];
  for (let i = 0; i < 2; i++) {
    kept.push(await sender.chat("slow@d", `keep ${i}`, { ack: 1 }));
    assert.equal((await slow.nextPacket()).json.envelope.id, kept[i]);
    assert.equal((await sender.nextPacket()).json.envelope.type, 3);
  }
  slow.pause();
  // Kernel buffers absorb a few MB first; bounded at 64 MB in all.
  for (let i = 0; i < 2000 && router.local("slow@d"); i++) {
    await sender.chat("slow@d", big);
    if (i % 16 === 15) await new Promise((r) => setTimeout(r, 5));
  }
  assert.equal(router.local("slow@d"), undefined, "the slow session was closed");

  // Others still chat, over both transports.
  const id = await fast.chat("s@d", "still fast", { ack: 1 });
  assert.equal((await sender.nextPacket()).json.envelope.id, id);
  assert.equal((await fast.nextPacket()).json.envelope.id, id);

  // An overload close is a plain close: never a kill.
  slow.resume();
  const drained = await slow.closedByServer(30_000);
  assert.ok(!drained.some((r) => r.kind === "kill"));

  const { client: again, answer } = await TestClient.login(srv.port, "slow@d");
  await using _again = again;
  const delay = answer.json.delay as { packets: { envelope: { id: string } }[] };
  assert.deepEqual(delay.packets.slice(0, 2).map((p) => p.envelope.id), kept);
});

Deno.test("a login answer larger than out_queue_bytes still reaches a WebSocket client", async () => {
  await using srv = await startTestServer({ ...WS, out_queue_bytes: 64 * 1024 });
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  const ids = [];
  for (let i = 0; i < 4; i++) ids.push(await a.chat("b@d", "x".repeat(32 * 1024), { ack: 1 }));
  for (let i = 0; i < 4; i++) await a.nextPacket();
  const { client: b, answer } = await WsTestClient.login(srv.wsPort, "b@d");
  await using _b = b;
  const delay = answer.json.delay as { packets: { envelope: { id: string } }[] };
  assert.deepEqual(delay.packets.map((p) => p.envelope.id), ids);
  await b.sendText("\\02");
  assert.deepEqual(await b.next(), { kind: "heartbeat" });
});

Deno.test("the standard WebSocket API (as in browsers) logs in, chats and heartbeats", async () => {
  await using srv = await startTestServer(WS);
  await using tcp = (await TestClient.login(srv.port, "t@d")).client;
  const ws = new WebSocket(`ws://127.0.0.1:${srv.wsPort}/`);
  const frames: string[] = [];
  const waiters: (() => void)[] = [];
  ws.onmessage = (e) => {
    frames.push(e.data);
    waiters.shift()?.();
  };
  const closed = new Promise((r) => ws.onclose = r);
  const next = async () => {
    if (frames.length === 0) await new Promise<void>((r) => waiters.push(r));
    return frames.shift()!;
  };
  try {
    await new Promise((r) => ws.onopen = r);
    ws.send(JSON.stringify({ envelope: { id: "L", type: 0, jid: "b@d", pwd: "p" } }));
    assert.deepEqual(JSON.parse(await next()).entity, { result: "ok" });
    ws.send("\\02");
    assert.equal(await next(), "\\02");
    ws.send(JSON.stringify({ envelope: { id: "m", type: 1, from: "b@d", to: "t@d", ack: 1 } }));
    assert.equal((await tcp.nextPacket()).json.envelope.id, "m");
    assert.deepEqual(JSON.parse(await next()).envelope.type, 3);
    const back = await tcp.chat("b@d", "hello browser");
    const got = JSON.parse(await next());
    assert.equal(got.envelope.id, back);
    assert.deepEqual(got.payload, { content: "hello browser" });
  } finally {
    ws.close();
    await closed;
  }
});

Deno.test("a connection to wsport that never sends a request holds no session slot", async () => {
  await using srv = await startTestServer({ ...WS, max_conns: 1 });
  const silent = await Deno.connect({ hostname: "127.0.0.1", port: srv.wsPort });
  try {
    await using _c = (await WsTestClient.login(srv.wsPort, "a@d")).client;
    assert.equal(srv.server.core.sessions.size, 1);
  } finally {
    silent.close();
  }
});

Deno.test("a socket on wsport that never sends its upgrade request is closed after login_timeout", async () => {
  await using srv = await startTestServer({ ...WS, login_timeout: 1 });
  const silent = await Deno.connect({ hostname: "127.0.0.1", port: srv.wsPort });
  try {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<string>((r) =>
      timer = setTimeout(() => r("still open after 4 s"), 4000)
    );
    const read = silent.read(new Uint8Array(16)).then((n) => n === null ? "closed" : `${n} bytes`);
    assert.equal(await Promise.race([read.catch(() => "closed"), late]), "closed");
    clearTimeout(timer);
  } finally {
    silent.close();
  }
});

Deno.test("20 WebSocket clients each sending one 50 MB frame leave RSS growth under 100 MB", async () => {
  await using srv = await startTestServer(WS);
  const chunk = new Uint8Array(1 << 20);
  const before = Deno.memoryUsage().rss;
  let peak = before;
  const sample = setInterval(() => peak = Math.max(peak, Deno.memoryUsage().rss), 20);
  try {
    await Promise.all(Array.from({ length: 20 }, async () => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: srv.wsPort });
      try {
        await conn.write(enc.encode(
          "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        ));
        // The header of a masked 50 MB binary frame, then its payload in 1 MB writes.
        const header = new Uint8Array(14);
        header[0] = 0x82;
        header[1] = 0x80 | 127;
        new DataView(header.buffer).setBigUint64(2, 50_000_000n);
        await conn.write(header);
        for (let sent = 0; sent < 50_000_000; sent += chunk.length) await conn.write(chunk);
      } catch {
        // Refused and closed by the server part way: what should happen.
      } finally {
        conn.close();
      }
    }));
  } finally {
    clearInterval(sample);
  }
  const growth = peak - before;
  assert.ok(growth < 100 * 1024 * 1024, `RSS grew by ${(growth / 1048576).toFixed(1)} MB`);
  // And the node still serves.
  await using c = (await WsTestClient.login(srv.wsPort, "a@d")).client;
  assert.equal(c.closed, false);
});
