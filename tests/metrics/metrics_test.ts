// The metrics module without a server: plain histograms rendered by
// prom-client, scraped counters, label fallbacks, and the timed store.

import assert from "node:assert/strict";
import { Registry } from "prom-client";
import { PlainHistogram } from "../../src/metrics/histogram.ts";
import { Metrics } from "../../src/metrics/metrics.ts";
import { timedStore } from "../../src/metrics/timed_store.ts";
import { StoreError } from "../../src/errors.ts";
import type { Store } from "../../src/store/store.ts";
import { parseProm, Scrape } from "./_prom.ts";

async function scrape(m: Metrics): Promise<Scrape> {
  return new Scrape(parseProm((await m.render()).text));
}

Deno.test("a plain histogram renders cumulative buckets, +Inf, sum and count", async () => {
  const registry = new Registry();
  const h = new PlainHistogram("t_seconds", "test", [1, 5], registry);
  const s = h.series({ op: "x" });
  for (const v of [0.5, 1, 3, 100]) s.observe(v);
  const text = await registry.metrics();
  assert.match(text, /^# TYPE t_seconds histogram$/m);
  const lines = text.split("\n").filter((l) => l.startsWith("t_seconds"));
  assert.deepEqual(lines, [
    't_seconds_bucket{op="x",le="1"} 2',
    't_seconds_bucket{op="x",le="5"} 3',
    't_seconds_bucket{op="x",le="+Inf"} 4',
    't_seconds_sum{op="x"} 104.5',
    't_seconds_count{op="x"} 4',
  ]);
});

Deno.test("scraping twice reports the same totals (counters are set, not added to)", async () => {
  const m = new Metrics();
  m.received(1);
  m.received(1);
  m.serverAck();
  const first = await scrape(m);
  const second = await scrape(m);
  for (const s of [first, second]) {
    assert.equal(s.get("sara_messages_in_total", { type: "1" }), 2);
    assert.equal(s.get("sara_server_acks_total"), 1);
  }
});

Deno.test("types above 7 and unknown transports are counted under 'other'", async () => {
  const m = new Metrics();
  m.received(42);
  m.sent(-1);
  m.sent(7);
  m.connected("quic");
  m.connected("wss");
  const s = await scrape(m);
  assert.equal(s.get("sara_messages_in_total", { type: "other" }), 1);
  assert.equal(s.get("sara_messages_out_total", { type: "other" }), 1);
  assert.equal(s.get("sara_messages_out_total", { type: "7" }), 1);
  assert.equal(s.get("sara_connections_opened_total", { transport: "other" }), 1);
  assert.equal(s.get("sara_connections_opened_total", { transport: "wss" }), 1);
});

Deno.test("each login failure reason has its own series", async () => {
  const m = new Metrics();
  m.loginFailed("timeout");
  m.loginFailed("fail_param");
  m.loginFailed("fail_param");
  m.loggedIn(3);
  const s = await scrape(m);
  assert.equal(s.get("sara_logins_total", { result: "timeout" }), 1);
  assert.equal(s.get("sara_logins_total", { result: "fail_param" }), 2);
  assert.equal(s.get("sara_logins_total", { result: "ok" }), 1);
  assert.equal(s.get("sara_offline_delivered_total"), 3);
});

Deno.test("the timed store passes results and errors through and counts failures by op", async () => {
  const m = new Metrics();
  const inner = {
    name: "fake",
    dropped: { cap: 1, policy: 2, expired: 3, blocked: 4 },
    recentIds: () => Promise.resolve(["x"]),
    inbox: () => Promise.reject(new StoreError("redis away")),
  } as unknown as Store;
  const store = timedStore(inner, m);
  assert.equal(store.name, "fake");
  assert.equal(store.dropped.expired, 3);
  assert.deepEqual(await store.recentIds("a@d"), ["x"]);
  await assert.rejects(store.inbox("a@d"), StoreError);
  await assert.rejects(store.inbox("a@d"), /redis away/);
  const s = await scrape(m);
  assert.equal(s.get("sara_store_op_duration_seconds_count", { op: "recentIds" }), 1);
  assert.equal(s.get("sara_store_op_duration_seconds_count", { op: "inbox" }), 2);
  assert.equal(s.get("sara_store_errors_total", { op: "inbox" }), 2);
  assert.equal(s.get("sara_store_errors_total", { op: "recentIds" }), 0);
});

Deno.test("event-loop lag is sampled until stopped", async () => {
  const m = new Metrics();
  const stop = m.sampleEventLoop(5);
  try {
    let s = await scrape(m);
    for (let i = 0; i < 200 && s.get("sara_event_loop_lag_seconds_count") < 3; i++) {
      await new Promise((r) => setTimeout(r, 10));
      s = await scrape(m);
    }
    assert.ok(s.get("sara_event_loop_lag_seconds_count") >= 3);
  } finally {
    stop();
  }
  const stopped = (await scrape(m)).get("sara_event_loop_lag_seconds_count");
  await new Promise((r) => setTimeout(r, 30));
  assert.equal((await scrape(m)).get("sara_event_loop_lag_seconds_count"), stopped);
});
