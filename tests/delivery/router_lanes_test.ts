// The router's cross-node lanes with fakes for the writer and the other
// nodes, so that the interleavings a real cluster produces only by luck of
// timing happen every run: a packet sent while an earlier one is still
// being located, a store failure in the middle of a lane, a login during a
// hand-over, messages arriving for a session that is gone, and hand-offs
// refused or answered out of order.

import assert from "node:assert/strict";
import {
  arrivals,
  handoffs,
  LocalSessions,
  type Recipient,
  type Remote,
  Router,
} from "../../src/router.ts";
import type { InboxWriter } from "../../src/store/inbox_writer.ts";
import type { InboxEntry } from "../../src/store/store.ts";
import { type Deferred, deferred } from "../helpers/deferred.ts";

const turns = async (n = 3) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setTimeout(r, 0));
};

function entry(id: string, user = "b@d"): InboxEntry {
  return { user, id, from: "a@d", type: 1, ct: 1, packet: `{"envelope":{"id":"${id}"}}` };
}

/** Everything the router touches, recorded in one timeline. */
function fakes() {
  const events: string[] = [];
  // Appends and locates wait until the test answers them (in call order).
  const appends: { id: string; answer: Deferred<number | null> }[] = [];
  const locates: { jid: string; answer: Deferred<string | null> }[] = [];
  const handed: { id: string; answer: Deferred<boolean> }[] = [];
  const writer = {
    append(e: InboxEntry, _online?: boolean): Promise<number | null> {
      events.push(`append ${e.id}`);
      const answer = deferred<number | null>();
      appends.push({ id: e.id, answer });
      return answer.promise;
    },
    remove(_user: string, id: string): void {
      events.push(`remove ${id}`);
    },
  } as unknown as InboxWriter;
  const remote: Remote = {
    publishConfirms: true,
    register: () => Promise.resolve(),
    unregister: () => {},
    locate(jid) {
      events.push(`locate ${jid}`);
      const answer = deferred<string | null>();
      locates.push({ jid, answer });
      return answer.promise;
    },
    publish(node, e, ack, stored) {
      events.push(`publish ${e.id} to ${node}${ack ? " ack" : ""}${stored ? " stored" : ""}`);
      return Promise.resolve(true);
    },
    handOff(node, e) {
      events.push(`handOff ${e.id} to ${node}`);
      const answer = deferred<boolean>();
      handed.push({ id: e.id, answer });
      return answer.promise;
    },
    publishBlocked: () => Promise.resolve(true),
    devices: () => Promise.resolve([]),
    publishTo: () => Promise.resolve(true),
  };
  const local = new LocalSessions();
  const offline: string[] = [];
  const onOffline = (e: InboxEntry, depth: number) => void offline.push(`${e.id}@${depth}`);
  const router = new Router({ local, writer, remote, onOffline });
  return { events, appends, locates, handed, writer, remote, local, offline, onOffline, router };
}

function recipient(jid: string, events: string[]): Recipient {
  return {
    jid,
    resource: "",
    sid: `sid-${jid}`,
    since: 0,
    push: (e) => {
      events.push(`push ${e.id} to ${jid}`);
      return true;
    },
    kick: () => void events.push(`kick ${jid}`),
    setBlocked: () => {},
  };
}

Deno.test("a packet sent while an unstored one is still being located waits for its publish", async () => {
  const f = fakes();
  const first = f.router.deliver(entry("m1"), false);
  const second = f.router.deliver(entry("m2"), true);
  await turns();
  assert.deepEqual(f.events, ["locate b@d"], "m2 is neither stored nor located before m1 is out");
  f.locates[0]!.answer.resolve("n2");
  await first;
  await turns();
  // m1 is out, so m2 (alone in the lane now) is handed off after it.
  assert.deepEqual(f.events, ["locate b@d", "publish m1 to n2", "locate b@d"]);
  f.locates[1]!.answer.resolve("n2");
  await turns();
  f.handed[0]!.answer.resolve(true);
  await second;
  assert.deepEqual(f.events.slice(3), ["handOff m2 to n2"]);
});

Deno.test("a second packet without ack while the lane is busy is stored, not sent directly", async () => {
  const f = fakes();
  const first = f.router.deliver(entry("m1"), true);
  const second = f.router.deliver(entry("m2"), false);
  await turns();
  f.locates[0]!.answer.resolve("n2");
  await turns();
  // m2 waits for m1's hand-off: a direct publish of m2 could overtake m1.
  assert.deepEqual(f.events, ["locate b@d", "handOff m1 to n2"]);
  f.handed[0]!.answer.resolve(true);
  await first;
  await turns();
  f.appends[0]!.answer.resolve(null);
  await turns();
  f.locates[1]!.answer.resolve("n2");
  await second;
  assert.deepEqual(f.events.slice(2), ["append m2", "locate b@d", "publish m2 to n2 stored"]);
});

Deno.test("a store failure in the middle of a lane fails that message only, and the lane is left", async () => {
  const f = fakes();
  const first = f.router.deliver(entry("m1"), true);
  const second = f.router.deliver(entry("m2"), true);
  await turns();
  for (const l of f.locates) l.answer.resolve("n2");
  await turns();
  // Both refused: stored in send order.
  for (const h of f.handed) h.answer.resolve(false);
  await turns();
  f.appends[0]!.answer.reject(new Error("store down"));
  await assert.rejects(first, /store down/);
  await turns();
  f.appends[1]!.answer.resolve(null);
  await turns();
  f.locates[2]!.answer.resolve("n2");
  await second;
  assert.deepEqual(f.events, [
    "locate b@d",
    "locate b@d",
    "handOff m1 to n2",
    "handOff m2 to n2",
    "append m1",
    "append m2",
    "locate b@d",
    "publish m2 to n2 ack stored",
  ]);
  // Nothing is left in the lane: an unstored packet goes straight to its node again.
  const third = f.router.deliver(entry("m3"), false);
  await turns();
  f.locates[3]!.answer.resolve("n2");
  await third;
  assert.deepEqual(f.events.slice(8), ["locate b@d", "publish m3 to n2"]);
});

Deno.test("a login during a hand-over: the stored message is left to the login's inbox read, never pushed twice", async () => {
  const f = fakes();
  const sending = f.router.deliver(entry("m1"), true);
  await turns();
  f.locates[0]!.answer.resolve("n2");
  await turns();
  f.handed[0]!.answer.resolve(false);
  await turns();
  f.appends[0]!.answer.resolve(1);
  await turns();
  const before = ["locate b@d", "handOff m1 to n2", "append m1", "locate b@d"];
  assert.deepEqual(f.events, before);
  // b logs in here while the lookup is on its way; it reads its inbox after registering.
  await f.router.attach(recipient("b@d", f.events), "tcp");
  // The registry now names this node, which locate reports as "not another node".
  f.locates[1]!.answer.resolve(null);
  await sending;
  assert.deepEqual(f.events, before, "not pushed: it is in the inbox");
  assert.deepEqual(f.offline, ["m1@1"]);
  // Later messages reach the new session directly.
  const next = f.router.deliver(entry("m2"), false);
  await next;
  assert.deepEqual(f.events.slice(4), ["push m2 to b@d"]);
});

Deno.test("arrivals: to a session here it is pushed (a stored one without ack leaves the inbox); with the session gone an unstored one is stored", async () => {
  const f = fakes();
  const arrive = arrivals(f.local, f.writer, f.onOffline);
  f.local.set(recipient("b@d", f.events));
  await arrive(entry("s1"), false, true);
  await arrive(entry("s2"), true, true);
  assert.deepEqual(f.events, ["push s1 to b@d", "remove s1", "push s2 to b@d"]);
  const gone = arrive(entry("u1", "c@d"), false, false);
  await turns();
  f.appends[0]!.answer.resolve(3);
  await gone;
  await arrive(entry("u2", "c@d"), true, true);
  assert.deepEqual(f.events.slice(3), ["append u1"], "a stored one for a gone session stays put");
  assert.deepEqual(f.offline, ["u1@3"]);
});

Deno.test("hand-offs of one lane go out back to back after one lookup, and are never stored when taken", async () => {
  const f = fakes();
  const sent = ["m1", "m2", "m3"].map((id) => f.router.deliver(entry(id), true));
  await turns();
  f.locates[0]!.answer.resolve("n2");
  await turns();
  // m2 and m3 were looked up too (before m1's answer named the node): still in order.
  for (const l of f.locates.slice(1)) l.answer.resolve("n2");
  await turns();
  assert.deepEqual(
    f.events.filter((e) => e.startsWith("handOff")),
    ["handOff m1 to n2", "handOff m2 to n2", "handOff m3 to n2"],
  );
  // A packet sent now that the lane knows its node needs no lookup.
  const fourth = f.router.deliver(entry("m4"), true);
  await turns();
  assert.equal(f.events.at(-1), "handOff m4 to n2");
  assert.equal(f.locates.length, 3);
  for (const h of f.handed) h.answer.resolve(true);
  await Promise.all([...sent, fourth]);
  assert.equal(f.appends.length, 0);
});

Deno.test("a refused hand-off is stored behind the earlier ones, and the rest of its lane is stored after it", async () => {
  const f = fakes();
  const sent = ["m1", "m2", "m3"].map((id) => f.router.deliver(entry(id), true));
  await turns();
  for (const l of f.locates) l.answer.resolve("n2");
  await turns();
  // m2 refused while m1 is still waiting: m2 must not be stored before m1 settles.
  f.handed[1]!.answer.resolve(false);
  f.handed[2]!.answer.resolve(false);
  await turns();
  assert.equal(f.appends.length, 0, "stored only once m1 settled");
  // A packet sent after the refusal takes the stored path, behind them.
  const fourth = f.router.deliver(entry("m4"), true);
  await turns();
  assert.ok(!f.events.includes("handOff m4 to n2"));
  f.handed[0]!.answer.resolve(true);
  await sent[0];
  // Each stored one is appended and handed over before the next.
  for (let i = 0; i < 3; i++) {
    await turns();
    f.appends[i]!.answer.resolve(null);
    await turns();
    f.locates[3 + i]!.answer.resolve("n2");
  }
  await Promise.all([...sent, fourth]);
  assert.deepEqual(f.appends.map((a) => a.id), ["m2", "m3", "m4"]);
  assert.deepEqual(f.events.filter((e) => e.startsWith("publish")), [
    "publish m2 to n2 ack stored",
    "publish m3 to n2 ack stored",
    "publish m4 to n2 ack stored",
  ]);
});

Deno.test("a recipient that moves here while hand-offs are on their way gets later packets only after them", async () => {
  const f = fakes();
  const first = f.router.deliver(entry("m1"), true);
  await turns();
  f.locates[0]!.answer.resolve("n2");
  await turns();
  await f.router.attach(recipient("b@d", f.events), "tcp");
  const second = f.router.deliver(entry("m2"), false);
  await turns();
  assert.ok(!f.events.includes("push m2 to b@d"), "m2 waits for m1's hand-off");
  f.handed[0]!.answer.resolve(true);
  await Promise.all([first, second]);
  assert.deepEqual(f.events, ["locate b@d", "handOff m1 to n2", "push m2 to b@d"]);
});

Deno.test("handoffs: taken by a session here (safe once acked or written), refused without one, blocked ones done at once", async () => {
  const f = fakes();
  const accept = handoffs(f.local, f.writer);
  assert.equal(accept(entry("h1")), null);
  f.local.set(recipient("b@d", f.events));
  const taken = accept(entry("h2"));
  assert.ok(taken);
  await turns();
  assert.deepEqual(f.events, ["push h2 to b@d", "append h2"]);
  f.appends[0]!.answer.resolve(null);
  await taken;
  f.local.set({ ...recipient("b@d", f.events), push: () => false });
  await accept(entry("h3"));
  assert.equal(f.appends.length, 1, "a blocked one is neither delivered nor stored");
});
