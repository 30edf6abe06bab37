// /metrics after scripted exchanges on a real node: every counter moves by
// exactly what the script did (logins, messages by type, acks, offline
// storage and delivery, kicks, store operations, callbacks).

import assert from "node:assert/strict";
import { answer, CallbackServer } from "../helpers/callback_server.ts";
import { TestClient } from "../helpers/client.ts";
import { startTestServer } from "../helpers/server.ts";
import { WsTestClient } from "../helpers/ws_client.ts";
import { Scrape } from "./_prom.ts";

/** Counter growth between two scrapes (a series first seen in `after` grew from 0). */
function deltas(before: Scrape, after: Scrape) {
  return (name: string, match: Record<string, string> = {}) =>
    after.get(name, match) - before.get(name, match, 0);
}

Deno.test("metrics counters move by exactly the scripted exchange", async () => {
  await using srv = await startTestServer({ enable_ws: true });
  await srv.server.core.store.setGroupMembers("group_g1@d", ["a", "b"], 3600);
  const before = await Scrape.of(srv.rpcPort);

  // Two failed logins: a first packet that is not type 0, and one that is not JSON.
  for (const raw of [JSON.stringify({ envelope: { id: "x", type: 1 } }), "not json"]) {
    await using bad = await TestClient.connect(srv.port);
    await bad.sendRaw(raw + "\x01");
    await bad.closedByServer();
  }
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  await using b = (await WsTestClient.login(srv.wsPort, "b@d")).client;
  // Three acked chats, each acked back by b; one without ack.
  for (let i = 0; i < 3; i++) {
    await a.chat("b@d", `m${i}`, { ack: 1 });
    assert.equal((await a.nextPacket()).json.envelope.type, 3);
    await b.ack((await b.nextPacket()).json.envelope.id);
  }
  await a.chat("b@d", "no ack wanted");
  assert.equal((await b.nextPacket()).json.envelope.ack, undefined);
  // Two messages for c, who is offline.
  for (let i = 0; i < 2; i++) {
    await a.chat("c@d", `stored ${i}`, { ack: 1 });
    assert.equal((await a.nextPacket()).json.envelope.type, 3);
  }
  // One group message: a gets the server ack, b a copy that it acks.
  await a.send({ envelope: { id: "g-1", type: 2, from: "a@d", gid: "g1" }, payload: {} });
  assert.equal((await a.nextPacket()).json.envelope.id, "g-1");
  const copy = await b.nextPacket();
  assert.equal(copy.json.envelope.type, 2);
  await b.ack(copy.json.envelope.id);
  // c logs in, gets both stored messages and acks them with the login id.
  await using c = await TestClient.connect(srv.port);
  const login = await c.login("c@d");
  assert.equal((login.json.delay as { total: number }).total, 2);
  await c.ack(login.json.envelope.id);
  // a logs in again: the first session is kicked.
  await using a2 = (await TestClient.login(srv.port, "a@d")).client;
  assert.equal((await a.next()).kind, "kill");
  // b and c each send one more acked message: its server ack proves that
  // their earlier acks were processed (a session handles packets in order).
  for (const sender of [b, c]) {
    await sender.chat("a@d", "last", { ack: 1 });
    assert.equal((await sender.nextPacket()).json.envelope.type, 3);
    assert.equal((await a2.nextPacket()).json.envelope.from, sender.jid);
  }

  const after = await Scrape.of(srv.rpcPort);
  const grew = deltas(before, after);
  assert.equal(grew("sara_logins_total", { result: "ok" }), 4);
  assert.equal(grew("sara_logins_total", { result: "fail_type" }), 1);
  assert.equal(grew("sara_logins_total", { result: "fail_packet" }), 1);
  assert.equal(grew("sara_logins_total", { result: "fail_token" }), 0);
  assert.equal(grew("sara_connections_opened_total", { transport: "tcp" }), 5);
  assert.equal(grew("sara_connections_opened_total", { transport: "ws" }), 1);
  assert.equal(grew("sara_messages_in_total", { type: "1" }), 3 + 1 + 2 + 2);
  assert.equal(grew("sara_messages_in_total", { type: "2" }), 1);
  assert.equal(grew("sara_messages_in_total", { type: "3" }), 3 + 1 + 1);
  assert.equal(grew("sara_messages_out_total", { type: "1" }), 4 + 2);
  assert.equal(grew("sara_messages_out_total", { type: "2" }), 1);
  assert.equal(grew("sara_server_acks_total"), 3 + 2 + 1 + 2);
  assert.equal(grew("sara_client_acks_total"), 3 + 1 + 1);
  assert.equal(grew("sara_kicks_total"), 1);
  assert.equal(grew("sara_offline_stored_total"), 2);
  assert.equal(grew("sara_offline_delivered_total"), 2);
  assert.equal(grew("sara_offline_inbox_depth_count"), 2);
  assert.equal(grew("sara_offline_inbox_depth_sum"), 1 + 2);
  assert.equal(grew("sara_offline_inbox_depth_bucket", { le: "1" }), 1);
  assert.equal(grew("sara_offline_inbox_depth_bucket", { le: "2" }), 2);
  // Every login reads the inbox once; no store operation failed.
  assert.equal(grew("sara_store_op_duration_seconds_count", { op: "inbox" }), 4);
  assert.ok(grew("sara_store_op_duration_seconds_count", { op: "commit" }) >= 1);
  assert.equal(grew("sara_store_errors_total"), 0);
  // Gauges: what is open now.
  assert.equal(after.get("sara_sessions_online"), 3);
  assert.equal(after.get("sara_connections", { transport: "tcp" }), 2);
  assert.equal(after.get("sara_connections", { transport: "ws" }), 1);
  assert.equal(after.get("sara_inbox_writer_backlog") >= 0, true);
  assert.equal(after.get("sara_info", { nodeid: srv.config.nodeid }), 1);
  assert.ok(after.get("sara_process_resident_memory_bytes") > 0);
  assert.ok(after.get("sara_process_heap_used_bytes") > 0);
});

Deno.test("callbacks are counted by call and outcome, with their latency", async () => {
  await using backend = CallbackServer.start();
  backend.responder = (req) => {
    if (req.service !== "emsg_auth") return answer(req, true, null);
    if (req.params.uid === "boom") return new Response("down", { status: 500 });
    return answer(req, req.params.uid === "good", null);
  };
  await using srv = await startTestServer({
    callback: backend.url,
    enable_auth: true,
    enable_offline_callback: true,
  });
  const before = await Scrape.of(srv.rpcPort);
  await using good = (await TestClient.login(srv.port, "good@d")).client;
  for (const jid of ["bad@d", "boom@d"]) {
    await using c = await TestClient.connect(srv.port);
    const refused = await c.login(jid);
    assert.equal((refused.json.entity as { reason: string }).reason, "fail_token");
  }
  await good.chat("away@d", "stored", { ack: 1 });
  await good.nextPacket();
  // The offline callback is not awaited by anything the client sees: poll.
  const offline = { call: "user_message.offline", outcome: "success" };
  let after = await Scrape.of(srv.rpcPort);
  for (let i = 0; i < 100 && after.get("sara_callback_calls_total", offline, 0) < 1; i++) {
    await new Promise((r) => setTimeout(r, 20));
    after = await Scrape.of(srv.rpcPort);
  }
  const grew = deltas(before, after);
  const auth = (outcome: string) => ({ call: "emsg_auth.auth", outcome });
  assert.equal(grew("sara_callback_calls_total", auth("success")), 1);
  assert.equal(grew("sara_callback_calls_total", auth("failure")), 1);
  assert.equal(grew("sara_callback_calls_total", auth("error")), 1);
  assert.equal(grew("sara_callback_duration_seconds_count", { call: "emsg_auth.auth" }), 3);
  assert.equal(grew("sara_callback_calls_total", offline), 1);
  assert.equal(grew("sara_logins_total", { result: "fail_token" }), 2);
  assert.equal(grew("sara_logins_total", { result: "ok" }), 1);
});

Deno.test("GET /metrics answers in the Prometheus text format; other methods get 405", async () => {
  await using srv = await startTestServer();
  const res = await fetch(`http://127.0.0.1:${srv.rpcPort}/metrics`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  const text = await res.text();
  assert.match(text, /^# HELP sara_messages_in_total /m);
  assert.match(text, /^# TYPE sara_messages_in_total counter$/m);
  assert.match(text, /^# TYPE sara_store_op_duration_seconds histogram$/m);
  assert.match(text, /^# TYPE sara_sessions_online gauge$/m);
  const post = await fetch(`http://127.0.0.1:${srv.rpcPort}/metrics`, { method: "POST" });
  await post.body?.cancel();
  assert.equal(post.status, 405);
});
