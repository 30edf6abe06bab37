// Abuse controls (SECURITY.md, docs/protocol.md §2): heartbeats count against
// rate_limit, and a connection that stays over it for 10 s is closed.

import assert from "node:assert/strict";
import { HEARTBEAT_FRAME } from "../../src/protocol/framing.ts";
import { concatBytes } from "../../src/bytes.ts";
import { type Received, TestClient } from "../helpers/client.ts";
import { startTestServer } from "../helpers/server.ts";

const enc = new TextEncoder();

function chatFrame(id: string): Uint8Array {
  const packet = { envelope: { id, type: 1, from: "a@d", to: "b@d", ack: 1 }, payload: {} };
  return enc.encode(JSON.stringify(packet) + "\x01");
}

function reasonOf(r: Received): string | undefined {
  return r.kind === "packet" ? (r.json.entity as { reason?: string })?.reason : undefined;
}

Deno.test("heartbeats count against rate_limit: a packet after rate_limit heartbeats in one second is dropped with rate_limited naming it", async () => {
  await using srv = await startTestServer({ rate_limit: 5 });
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  // One write: 5 heartbeats and a chat arrive within one window.
  await a.sendRaw(concatBytes([...Array(5).fill(HEARTBEAT_FRAME), chatFrame("c1")]));
  const got: Received[] = [];
  for (let i = 0; i < 6; i++) got.push(await a.next());
  await a.nothing();
  assert.deepEqual(got.filter((r) => r.kind === "heartbeat").length, 5);
  const packets = got.filter((r) => r.kind === "packet");
  assert.deepEqual(packets.map(reasonOf), ["rate_limited"]);
  assert.equal(packets[0]!.kind === "packet" && packets[0]!.json.envelope.id, "c1");
});

Deno.test("a burst far over rate_limit gets one rate_limited notice, naming the first packet dropped", async () => {
  await using srv = await startTestServer({ rate_limit: 5 });
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  // One write: 5 packets within the limit, then 45 over it, in one window.
  await a.sendRaw(concatBytes(Array.from({ length: 50 }, (_, i) => chatFrame(`c${i}`))));
  const got: Received[] = [];
  for (let i = 0; i < 6; i++) got.push(await a.next());
  await a.nothing(300);
  const notices = got.filter((r) => reasonOf(r) === "rate_limited");
  assert.equal(notices.length, 1);
  assert.equal(notices[0]!.kind === "packet" && notices[0]!.json.envelope.id, "c5");
  const acked = got.filter((r) => r.kind === "packet" && reasonOf(r) === undefined);
  assert.deepEqual(acked.map((r) => r.kind === "packet" && r.json.envelope.id), [
    "c0",
    "c1",
    "c2",
    "c3",
    "c4",
  ]);
});

Deno.test("a connection over rate_limit for 10 s is closed; one under it stays", async () => {
  await using srv = await startTestServer({ rate_limit: 10 });
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  await using calm = (await TestClient.login(srv.port, "c@d")).client;
  let notices = 0;
  let i = 0;
  const start = Date.now();
  // 20 packets every 500 ms, four times the limit, until the server hangs up.
  const flood = (async () => {
    while (!a.closed) {
      const burst = Array.from({ length: 20 }, () => chatFrame(`f${i++}`));
      try {
        await a.sendRaw(concatBytes(burst));
      } catch {
        break; // closed under the write
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  })();
  const calmDone = (async () => {
    // 2 heartbeats a second, well under the limit, for as long as the flood lasts.
    while (!a.closed) {
      await calm.sendRaw(HEARTBEAT_FRAME);
      assert.equal((await calm.next()).kind, "heartbeat");
      await new Promise((r) => setTimeout(r, 500));
    }
  })();
  const seen = await a.closedByServer(30_000);
  const seconds = (Date.now() - start) / 1000;
  await flood;
  await calmDone;
  for (const r of seen) if (reasonOf(r) === "rate_limited") notices++;
  // At least 10 s of drops, at most one notice a second each.
  assert.ok(i > 200, `closed after only ${i} packets`);
  assert.ok(notices >= 9 && notices <= Math.ceil(seconds) + 1, `${notices} in ${seconds} s`);
  assert.equal(calm.closed, false);
  const id = await calm.chat("b@d", "still here", { ack: 1 });
  assert.equal((await calm.nextPacket()).json.envelope.id, id);
});
