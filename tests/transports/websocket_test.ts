// WebSocket transport (PROTOCOL 1): frame decoding, framing on the wire, bad
// input (binary, non-UTF-8, oversized, plain HTTP), slow consumers, admission.

import assert from "node:assert/strict";
import { decodeWsFrame } from "../../src/transports/websocket.ts";
import { startTestServer } from "../helpers/server.ts";
import { TestClient } from "../helpers/client.ts";
import { WsTestClient } from "../helpers/ws_client.ts";

const WS = { enable_ws: true };
const enc = new TextEncoder();
const ab = (bytes: number[] | string) =>
  (typeof bytes === "string" ? enc.encode(bytes) : Uint8Array.from(bytes)).buffer as ArrayBuffer;

function reason(r: { json: Record<string, unknown> }): unknown {
  return (r.json.entity as { reason?: string }).reason;
}

Deno.test("decodeWsFrame() reads text, strips one trailing 0x01 and ignores empty frames", () => {
  assert.deepEqual(decodeWsFrame('{"a":1}', 100), { kind: "packet", text: '{"a":1}' });
  assert.deepEqual(decodeWsFrame('{"a":1}\x01', 100), { kind: "packet", text: '{"a":1}' });
  assert.deepEqual(decodeWsFrame("", 100), { kind: "empty" });
  assert.deepEqual(decodeWsFrame("\x01", 100), { kind: "empty" });
});

Deno.test("decodeWsFrame() takes 0x02 and the text \\02 as heartbeat, as text or binary", () => {
  for (const hb of ["\x02", "\\02", "\x02\x01", "\\02\x01"]) {
    assert.deepEqual(decodeWsFrame(hb, 100), { kind: "heartbeat" }, JSON.stringify(hb));
    assert.deepEqual(decodeWsFrame(ab(hb), 100), { kind: "heartbeat" }, JSON.stringify(hb));
  }
  assert.deepEqual(decodeWsFrame("\\03", 100), { kind: "packet", text: "\\03" });
});

Deno.test("decodeWsFrame() reads binary UTF-8 as text and flags other bytes as malformed", () => {
  assert.deepEqual(decodeWsFrame(ab('{"é":1}'), 100), { kind: "packet", text: '{"é":1}' });
  assert.deepEqual(decodeWsFrame(ab([0x7b, 0xff, 0xfe, 0x7d]), 100), { kind: "malformed" });
});

Deno.test("decodeWsFrame() measures max_packet in UTF-8 bytes, without the trailing 0x01", () => {
  assert.equal(decodeWsFrame("x".repeat(10), 10).kind, "packet");
  assert.equal(decodeWsFrame("x".repeat(10) + "\x01", 10).kind, "packet");
  assert.equal(decodeWsFrame("x".repeat(11), 10).kind, "oversize");
  // 6 UTF-16 units but 12 bytes.
  assert.equal(decodeWsFrame("é".repeat(6), 10).kind, "oversize");
  assert.equal(decodeWsFrame("é".repeat(5), 10).kind, "packet");
  assert.equal(decodeWsFrame(ab("x".repeat(10) + "\x01"), 10).kind, "packet");
  assert.equal(decodeWsFrame(ab("x".repeat(11)), 10).kind, "oversize");
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
