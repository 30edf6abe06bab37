// Duplicate suppression without a node: the per-sender ring, a duplicate
// waiting for its first copy, a failed first copy being forgotten so that a
// retry is routed again, and routeChat using all of it with fakes.

import assert from "node:assert/strict";
import { DedupCache } from "../../src/session/dedup.ts";
import { routeChat, type Routing } from "../../src/session/messages.ts";
import { parsePacket } from "../../src/protocol/packet.ts";
import type { InboxEntry } from "../../src/store/store.ts";
import { deferred } from "../helpers/deferred.ts";

const turns = async (n = 2) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setTimeout(r, 0));
};

Deno.test("check remembers the last `size` ids of each sender, separately per sender", () => {
  const d = new DedupCache(2);
  assert.equal(d.check("a", "1", 0), false);
  assert.equal(d.check("a", "1", 0), true);
  assert.equal(d.check("b", "1", 0), false, "another sender's id is another message");
  d.check("a", "2", 0);
  d.check("a", "3", 0); // pushes "1" out of a's ring
  assert.equal(d.check("a", "1", 0), false);
  assert.equal(d.check("a", "3", 0), true);
});

Deno.test("a size of 0 turns suppression off", () => {
  const d = new DedupCache(0);
  assert.equal(d.check("a", "1", 0), false);
  assert.equal(d.check("a", "1", 0), false);
});

Deno.test("a duplicate waits for the first copy to be safe", async () => {
  const d = new DedupCache(10);
  const first = deferred();
  d.check("a", "m", 0);
  d.track("a", "m", first.promise);
  let waited = false;
  const dup = d.firstCopy("a", "m").then(() => waited = true);
  await turns();
  assert.equal(waited, false);
  first.resolve();
  await dup;
  assert.equal(waited, true);
  // Once safe, a later duplicate has nothing to wait for.
  await d.firstCopy("a", "m");
});

Deno.test("a first copy that fails is forgotten: its retry is routed again", async () => {
  const d = new DedupCache(10);
  const first = deferred();
  d.check("a", "m", 0);
  d.track("a", "m", first.promise);
  const dup = d.firstCopy("a", "m");
  first.reject(new Error("store down"));
  await assert.rejects(dup, /store down/, "the duplicate learns the first copy failed");
  await turns();
  assert.equal(d.check("a", "m", 0), false, "the retry is a new message");
});

Deno.test("an old copy settling late never unmarks a newer copy of the same id", async () => {
  const d = new DedupCache(10);
  const old = deferred();
  const newer = deferred();
  d.track("a", "m", old.promise);
  d.track("a", "m", newer.promise);
  old.resolve();
  await turns();
  let settled = false;
  const wait = d.firstCopy("a", "m").then(() => settled = true);
  await turns();
  assert.equal(settled, false, "still waits for the newer copy");
  newer.resolve();
  await wait;
});

Deno.test("load seeds a sender's newest ids from the store; evictIdle forgets idle senders", () => {
  const d = new DedupCache(2);
  d.load("a", ["1", "2", "3"], 100);
  assert.equal(d.check("a", "1", 100), false, "only the newest `size` ids are kept");
  d.load("b", ["x"], 100);
  assert.equal(d.check("b", "x", 100), true);
  d.check("c", "y", 500);
  d.evictIdle(200);
  assert.equal(d.check("b", "x", 600), false, "b was idle since 100");
  assert.equal(d.check("c", "y", 600), true, "c was seen at 500");
});

/** routeChat over fakes: what was delivered and which ids were recorded as sent. */
function routing(deliver: (e: InboxEntry) => Promise<void>) {
  const delivered: string[] = [];
  const sent: string[] = [];
  const r: Routing = {
    dedup: new DedupCache(10),
    router: {
      deliver: (e) => {
        delivered.push(e.id);
        return deliver(e);
      },
    },
    writer: { sent: (_from, id) => void sent.push(id) },
    groups: () => Promise.resolve(null),
  };
  return { r, delivered, sent };
}

const text = (id: string) =>
  JSON.stringify({ envelope: { id, type: 1, from: "a@d", to: "b@d", ack: 1 } });
const packet = (id: string) => parsePacket(text(id))!;

Deno.test("routeChat delivers a retried message once; the retry's ack waits for the first copy, and the id is recorded once safe", async () => {
  const write = deferred();
  const { r, delivered, sent } = routing(() => write.promise);
  const first = routeChat(r, "a@d", text("m1"), packet("m1"), "m1", 1);
  const retry = routeChat(r, "a@d", text("m1"), packet("m1"), "m1", 1);
  assert.ok(typeof first !== "string" && typeof retry !== "string");
  assert.deepEqual(delivered, ["m1"], "delivered once");
  let retryAcked = false;
  const acked = retry.safe.then(() => retryAcked = true);
  await turns();
  assert.equal(retryAcked, false);
  assert.deepEqual(sent, [], "not recorded before it is safe");
  write.resolve();
  await acked;
  await turns();
  assert.deepEqual(sent, ["m1"]);
});

Deno.test("routeChat routes a retry again when the first copy could not be kept", async () => {
  const write = deferred();
  let calls = 0;
  const { r, delivered, sent } = routing(() => ++calls === 1 ? write.promise : Promise.resolve());
  const first = routeChat(r, "a@d", text("m1"), packet("m1"), "m1", 1);
  assert.ok(typeof first !== "string");
  write.reject(new Error("store down"));
  await assert.rejects(first.safe, /store down/);
  await turns();
  const retry = routeChat(r, "a@d", text("m1"), packet("m1"), "m1", 1);
  assert.ok(typeof retry !== "string");
  await retry.safe;
  assert.deepEqual(delivered, ["m1", "m1"]);
  await turns();
  assert.deepEqual(sent, ["m1"], "only the copy that was kept is recorded");
});

Deno.test("routeChat records no sent id when the writer keeps none (the embedded store)", async () => {
  const { r, sent } = routing(() => Promise.resolve());
  const quiet: Routing = { ...r, writer: { ...r.writer, keepsSent: false } };
  const routed = routeChat(quiet, "a@d", text("m1"), packet("m1"), "m1", 1);
  assert.ok(typeof routed !== "string");
  await routed.safe;
  await turns();
  assert.deepEqual(sent, []);
});
