// The router's cross-node lanes with fakes for the writer and the other
// nodes, so that the interleavings a real cluster produces only by luck of
// timing happen every run: a packet sent while an earlier one is still
// being located, a store failure in the middle of a lane, a login during a
// hand-over, messages arriving for a session that is gone, and hand-offs
// refused or answered out of order.

import assert from "node:assert/strict";
import {
  arrivals,
  type HandOffResult,
  handoffs,
  LocalSessions,
  type Recipient,
  type Remote,
  type RemoteDevice,
  Router,
} from "../../src/router.ts";
import { StoreError } from "../../src/errors.ts";
import type { InboxWriter } from "../../src/store/inbox_writer.ts";
import type { InboxEntry } from "../../src/store/store.ts";
import { type Deferred, deferred } from "../helpers/deferred.ts";

const turns = async (n = 3) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setTimeout(r, 0));
};

function entry(id: string, user = "b@d"): InboxEntry {
  return { user, id, from: "a@d", type: 1, ct: 1, packet: `{"envelope":{"id":"${id}"}}` };
}

/** Everything the router touches, recorded in one timeline; `using` stops the router after. */
function fakes(local = new LocalSessions()) {
  const events: string[] = [];
  // Appends and locates wait until the test answers them (in call order).
  const appends: { id: string; answer: Deferred<number | null> }[] = [];
  const locates: { jid: string; answer: Deferred<string | null | undefined> }[] = [];
  const handed: { id: string; lane: string; seq: number; answer: Deferred<HandOffResult> }[] = [];
  const publishing = { ok: true };
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
      const answer = deferred<string | null | undefined>();
      locates.push({ jid, answer });
      return answer.promise;
    },
    publish(node, e, ack, stored) {
      events.push(`publish ${e.id} to ${node}${ack ? " ack" : ""}${stored ? " stored" : ""}`);
      return Promise.resolve(publishing.ok);
    },
    handOff(node, e, lane, seq, _ack, stored) {
      events.push(`handOff ${e.id} to ${node}${stored ? " stored" : ""}`);
      const answer = deferred<HandOffResult>();
      handed.push({ id: e.id, lane, seq, answer });
      return answer.promise;
    },
    publishBlocked: () => Promise.resolve(true),
    devices: () => Promise.resolve([]),
    publishTo: () => Promise.resolve(true),
  };
  const offline: string[] = [];
  const onOffline = (e: InboxEntry, depth: number) => void offline.push(`${e.id}@${depth}`);
  const router = new Router({ local, writer, remote, onOffline });
  return {
    // Disposed: the router's scheduled retries are cancelled.
    [Symbol.dispose]: () => router.stop(),
    events,
    appends,
    locates,
    handed,
    publishing,
    writer,
    remote,
    local,
    offline,
    onOffline,
    router,
  };
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
    acked: () => false,
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
  f.handed[0]!.answer.resolve("took");
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
  f.handed[0]!.answer.resolve("took");
  await first;
  await turns();
  f.appends[0]!.answer.resolve(null);
  await turns();
  f.locates[1]!.answer.resolve("n2");
  await turns();
  f.handed[1]!.answer.resolve("took");
  await second;
  assert.deepEqual(f.events.slice(2), ["append m2", "locate b@d", "handOff m2 to n2 stored"]);
});

Deno.test("a store failure in a lane fails its sender's later packets not yet written, not other senders', and the lane is left", async () => {
  const f = fakes();
  const first = f.router.deliver(entry("m1"), true);
  await turns();
  f.locates[0]!.answer.resolve("n2");
  await turns();
  // b is here for a moment: m2 and c1 wait behind m1 for it, and b leaves.
  const b = recipient("b@d", f.events);
  await f.router.attach(b, "tcp");
  const second = f.router.deliver(entry("m2"), true);
  const other = f.router.deliver({ ...entry("c1"), from: "c@d" }, true);
  f.router.detach(b);
  f.handed[0]!.answer.resolve("refused");
  await turns();
  f.appends[0]!.answer.reject(new Error("store down"));
  await assert.rejects(first, /store down/);
  // Written now, m2 would be ahead of m1, which a@d sends again only once
  // told: it fails unwritten. c@d's packet is written.
  await assert.rejects(second, StoreError);
  await turns();
  f.appends[1]!.answer.resolve(null);
  await turns();
  f.locates[1]!.answer.resolve("n2");
  await turns();
  f.handed[1]!.answer.resolve("took");
  await other;
  assert.deepEqual(f.events, [
    "locate b@d",
    "handOff m1 to n2",
    "append m1",
    "append c1",
    "locate b@d",
    "handOff c1 to n2 stored",
  ]);
  // Nothing is left in the lane: an unstored packet goes straight to its node again.
  const third = f.router.deliver(entry("m3"), false);
  await turns();
  f.locates[2]!.answer.resolve("n2");
  await third;
  assert.deepEqual(f.events.slice(6), ["locate b@d", "publish m3 to n2"]);
});

Deno.test("refused hand-offs are written back to back, not one hand-over after another", async () => {
  const f = fakes();
  const sent = ["m1", "m2", "m3"].map((id) => f.router.deliver(entry(id), true));
  await turns();
  for (const l of f.locates) l.answer.resolve("n2");
  await turns();
  for (const h of f.handed) h.answer.resolve("refused");
  await turns();
  // All three writes are on their way before the first is handed over.
  assert.deepEqual(f.appends.map((a) => a.id), ["m1", "m2", "m3"]);
  for (const a of f.appends) a.answer.resolve(null);
  await turns();
  for (const l of f.locates.slice(3)) l.answer.resolve("n2");
  await turns();
  assert.deepEqual(f.events.filter((e) => e.endsWith("stored")), [
    "handOff m1 to n2 stored",
    "handOff m2 to n2 stored",
    "handOff m3 to n2 stored",
  ]);
  for (const h of f.handed.slice(3)) h.answer.resolve("took");
  await Promise.all(sent);
});

Deno.test("after a store failure, a packet of the sender that entered the lane later is written as usual", async () => {
  const f = fakes();
  const first = f.router.deliver(entry("m1"), true);
  const second = f.router.deliver(entry("m2"), true);
  await turns();
  for (const l of f.locates) l.answer.resolve("n2");
  await turns();
  f.handed[0]!.answer.resolve("refused");
  await turns();
  // m2's hand-off is still out, so the lane lives on past m1's failure.
  f.appends[0]!.answer.reject(new Error("store down"));
  await assert.rejects(first, /store down/);
  // Sent after the failure (its sender's session refuses what follows a
  // store_error notice, so this is another session's or a resend).
  const third = f.router.deliver(entry("m3"), true);
  f.handed[1]!.answer.resolve("refused");
  await assert.rejects(second, StoreError);
  await turns();
  assert.deepEqual(f.appends.map((a) => a.id), ["m1", "m3"]);
  f.appends[1]!.answer.resolve(null);
  await turns();
  f.locates.at(-1)!.answer.resolve("n2");
  await turns();
  f.handed.at(-1)!.answer.resolve("took");
  await third;
});

Deno.test("a login during a hand-over: the stored message is pushed to the new session, whose inbox read may have come before the write", async () => {
  const f = fakes();
  const sending = f.router.deliver(entry("m1"), true);
  await turns();
  f.locates[0]!.answer.resolve("n2");
  await turns();
  f.handed[0]!.answer.resolve("refused");
  await turns();
  // b logs in here while m1 is being written: its login may read the inbox
  // before m1 is in it, and nothing else would deliver m1 then.
  await f.router.attach(recipient("b@d", f.events), "tcp");
  f.appends[0]!.answer.resolve(1);
  await turns();
  assert.deepEqual(f.events, ["locate b@d", "handOff m1 to n2", "append m1", "locate b@d"]);
  // The registry now names this node, which locate reports as "not another node".
  f.locates[1]!.answer.resolve(null);
  await sending;
  // (A session drops a packet its login answer already carried: delivered.ts.)
  assert.equal(f.events.at(-1), "push m1 to b@d");
  assert.deepEqual(f.offline, [], "online here: no offline notification");
  // Later messages reach the new session directly.
  await f.router.deliver(entry("m2"), false);
  assert.deepEqual(f.events.slice(5), ["push m2 to b@d"]);
});

Deno.test("a packet waiting in its lane for a session here that closes meanwhile is stored in its place, ahead of later ones", async () => {
  const f = fakes();
  const first = f.router.deliver(entry("m1"), true);
  await turns();
  f.locates[0]!.answer.resolve("n2");
  await turns();
  // b logs in here while m1's hand-off waits for n2: m2 waits behind m1 for b ...
  const b = recipient("b@d", f.events);
  await f.router.attach(b, "tcp");
  const second = f.router.deliver(entry("m2"), true);
  // ... and b closes before m1 is through: m3 finds nobody here.
  f.router.detach(b);
  const third = f.router.deliver(entry("m3"), true);
  await turns();
  f.handed[0]!.answer.resolve("took");
  await first;
  await turns();
  // m2 is not pushed to the closed session (it would wait in the inbox for
  // the next login, behind m3): it is stored, and m3 after it.
  assert.deepEqual(f.appends.map((a) => a.id), ["m2", "m3"]);
  f.appends[0]!.answer.resolve(1);
  f.appends[1]!.answer.resolve(2);
  await turns();
  for (const l of f.locates.slice(1)) l.answer.resolve(null);
  await Promise.all([second, third]);
  assert.ok(!f.events.some((e) => e.startsWith("push")), f.events.join(", "));
  assert.deepEqual(f.offline, ["m2@1", "m3@2"]);
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
  for (const h of f.handed) h.answer.resolve("took");
  await Promise.all([...sent, fourth]);
  assert.equal(f.appends.length, 0);
});

/** A lane of one packet `id`, looked up at n2 and taken there: it leaves n2 to the next lane. */
async function laneTaken(f: ReturnType<typeof fakes>, id: string): Promise<void> {
  const first = f.router.deliver(entry(id), true);
  await turns();
  f.locates.at(-1)!.answer.resolve("n2");
  await turns();
  f.handed.at(-1)!.answer.resolve("took");
  await first;
}

Deno.test("a lane whose hand-offs were all taken leaves its node to the next lane; one refused, the next lane looks up", async () => {
  const f = fakes();
  await laneTaken(f, "m1");
  // The lane ended; the next packet starts a new one at the same node, without a lookup.
  const second = f.router.deliver(entry("m2"), true);
  await turns();
  assert.equal(f.locates.length, 1);
  assert.equal(f.events.at(-1), "handOff m2 to n2");
  assert.notEqual(f.handed[1]!.lane, f.handed[0]!.lane, "a new lane, numbered from 1");
  assert.equal(f.handed[1]!.seq, 1);
  // Refused there (the recipient moved): stored, located, handed over.
  f.handed[1]!.answer.resolve("refused");
  await turns();
  f.appends[0]!.answer.resolve(null);
  await turns();
  f.locates[1]!.answer.resolve("n3");
  await turns();
  f.handed[2]!.answer.resolve("took");
  await second;
  // That lane left no node behind: the next one looks up.
  const third = f.router.deliver(entry("m3"), true);
  await turns();
  assert.equal(f.locates.length, 3);
  f.locates[2]!.answer.resolve("n3");
  await turns();
  assert.equal(f.events.at(-1), "handOff m3 to n3");
  f.handed[3]!.answer.resolve("took");
  await third;
});

Deno.test("a refused hand-off is stored behind the earlier ones, and the rest of its lane is stored after it", async () => {
  const f = fakes();
  const sent = ["m1", "m2", "m3"].map((id) => f.router.deliver(entry(id), true));
  await turns();
  for (const l of f.locates) l.answer.resolve("n2");
  await turns();
  // m2 refused while m1 is still waiting: m2 must not be stored before m1 settles.
  f.handed[1]!.answer.resolve("refused");
  f.handed[2]!.answer.resolve("refused");
  await turns();
  assert.equal(f.appends.length, 0, "stored only once m1 settled");
  // A packet sent after the refusal takes the stored path, behind them.
  const fourth = f.router.deliver(entry("m4"), true);
  await turns();
  assert.ok(!f.events.includes("handOff m4 to n2"));
  f.handed[0]!.answer.resolve("took");
  await sent[0];
  // Written in order, then handed over in order.
  for (let i = 0; i < 3; i++) {
    await turns();
    f.appends[i]!.answer.resolve(null);
    await turns();
    f.locates[3 + i]!.answer.resolve("n2");
    await turns();
    f.handed[3 + i]!.answer.resolve("took");
  }
  await Promise.all([...sent, fourth]);
  assert.deepEqual(f.appends.map((a) => a.id), ["m2", "m3", "m4"]);
  assert.deepEqual(f.events.filter((e) => e.endsWith("stored")), [
    "handOff m2 to n2 stored",
    "handOff m3 to n2 stored",
    "handOff m4 to n2 stored",
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
  f.handed[0]!.answer.resolve("took");
  await Promise.all([first, second]);
  assert.deepEqual(f.events, ["locate b@d", "handOff m1 to n2", "push m2 to b@d"]);
});

Deno.test("handoffs: taken by a session here (safe once acked or written), refused without one, blocked ones done at once", async () => {
  const f = fakes();
  const accept = handoffs(f.local, f.writer);
  assert.equal(accept(entry("h1"), true, false), null);
  f.local.set(recipient("b@d", f.events));
  const taken = accept(entry("h2"), true, false);
  assert.ok(taken);
  await turns();
  assert.deepEqual(f.events, ["push h2 to b@d", "append h2"]);
  f.appends[0]!.answer.resolve(null);
  await taken;
  f.local.set({ ...recipient("b@d", f.events), push: () => false });
  await accept(entry("h3"), true, false);
  assert.equal(f.appends.length, 1, "a blocked one is neither delivered nor stored");
  // Stored ones are in the inbox already: written to the session, never again to the store.
  f.local.set(recipient("b@d", f.events));
  await accept(entry("s1"), true, true);
  await accept(entry("s2"), false, true);
  assert.deepEqual(f.events.slice(2), ["push s1 to b@d", "push s2 to b@d", "remove s2"]);
});

/** Polls until `cond` holds (the retries run on real timers); throws after 3 s naming `what`. */
async function waitFor(what: string, cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 3000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`not within 3 s: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** m2 sent while m1 waits for its retry: written, and safe (acked) once written. */
async function storedBehind(f: ReturnType<typeof fakes>, ack: boolean): Promise<void> {
  const second = f.router.deliver(entry("m2"), ack);
  await turns();
  f.appends[1]!.answer.resolve(1);
  await second;
}

/** m1 stored and its hand-over lost: it is acked, and waits in its lane for a retry. */
async function lostAfterStore(f: ReturnType<typeof fakes>): Promise<void> {
  const first = f.router.deliver(entry("m1"), true);
  await turns();
  f.locates[0]!.answer.resolve("n2");
  await turns();
  f.handed[0]!.answer.resolve("refused");
  await turns();
  f.appends[0]!.answer.resolve(1);
  await turns();
  f.locates[1]!.answer.resolve("n2");
  await turns();
  f.handed[1]!.answer.resolve("lost");
  await first;
}

Deno.test("a stored packet whose hand-over is lost is retried, and a later one waits behind it, without a login", async () => {
  using f = fakes();
  await lostAfterStore(f);
  // m2 comes while m1 waits: stored and queued behind it, not sent ahead of it.
  await storedBehind(f, true);
  assert.ok(!f.events.includes("handOff m2 to n2 stored"), "m2 must not overtake m1");
  await waitFor("the retry's lookup", () => f.locates.length === 3);
  f.locates[2]!.answer.resolve("n2");
  await waitFor("the retry's hand-overs", () => f.handed.length === 4);
  assert.deepEqual(f.events.slice(-2), ["handOff m1 to n2 stored", "handOff m2 to n2 stored"]);
  // Numbered 1 and 2 on a lane of their own: the receiving node keeps them in order.
  assert.deepEqual(f.handed.slice(2).map((h) => h.seq), [1, 2]);
  assert.equal(f.handed[2]!.lane, f.handed[3]!.lane);
  assert.notEqual(f.handed[2]!.lane, f.handed[1]!.lane);
  for (const h of f.handed.slice(2)) h.answer.resolve("took");
  assert.equal(f.router.retried, 2);
  // Both taken: the lane is free, and a packet without ack goes straight out again.
  await turns();
  const third = f.router.deliver(entry("m3"), false);
  await turns();
  f.locates[3]!.answer.resolve("n2");
  await third;
  assert.equal(f.events.at(-1), "publish m3 to n2");
  assert.deepEqual(f.offline, []);
});

Deno.test("a retry keeps trying while Redis is away and delivers once the recipient is found again", async () => {
  using f = fakes();
  await lostAfterStore(f);
  await waitFor("a first retry", () => f.locates.length === 3);
  f.locates[2]!.answer.resolve(undefined); // Redis still away
  await waitFor("a second retry", () => f.locates.length === 4);
  f.locates[3]!.answer.resolve("n3"); // the recipient moved to n3 meanwhile
  await waitFor("the hand-over", () => f.handed.length === 3);
  assert.equal(f.events.at(-1), "handOff m1 to n3 stored");
  // Not answered in time: tried again, on a fresh lane.
  f.handed[2]!.answer.resolve("lost");
  await waitFor("a third retry", () => f.locates.length === 5);
  f.locates[4]!.answer.resolve("n3");
  await waitFor("the hand-over again", () => f.handed.length === 4);
  assert.notEqual(f.handed[3]!.lane, f.handed[2]!.lane);
  f.handed[3]!.answer.resolve("took");
  assert.deepEqual(f.offline, []);
});

Deno.test("a retry that finds the recipient offline, or not on the node named, leaves its packets to the next login", async () => {
  using f = fakes();
  await lostAfterStore(f);
  await waitFor("a retry", () => f.locates.length === 3);
  f.locates[2]!.answer.resolve(null);
  await waitFor("offline", () => f.offline.length === 1);
  assert.deepEqual(f.offline, ["m1@1"]);
  // The lane is free again: the next packet is handed off unstored.
  const next = f.router.deliver(entry("m2"), true);
  await turns();
  f.locates[3]!.answer.resolve("n2");
  await turns();
  assert.equal(f.events.at(-1), "handOff m2 to n2");
  f.handed[2]!.answer.resolve("refused"); // refused: stored, handed over, refused again
  await turns();
  f.appends[1]!.answer.resolve(2);
  await turns();
  f.locates[4]!.answer.resolve("n2");
  await turns();
  f.handed[3]!.answer.resolve("refused");
  await next;
  assert.deepEqual(f.offline, ["m1@1", "m2@2"]);
});

Deno.test("a retry for a recipient that logged in here pushes its queued packets in order", async () => {
  using f = fakes();
  await lostAfterStore(f);
  await storedBehind(f, false);
  await f.router.attach(recipient("b@d", f.events), "tcp");
  // A packet sent now waits for the queued ones, although its recipient is here.
  const third = f.router.deliver(entry("m3"), false);
  await turns();
  assert.ok(!f.events.includes("push m3 to b@d"));
  await waitFor("the retry", () => f.events.includes("push m1 to b@d"));
  await third;
  assert.deepEqual(
    f.events.filter((e) => e.startsWith("push") || e.startsWith("remove")),
    ["push m1 to b@d", "push m2 to b@d", "remove m2", "push m3 to b@d"],
  );
});

/** m1 handed off and taken; m2 and m3 (no ack) stored behind it and handed over back to back. */
async function storedBackToBack(f: ReturnType<typeof fakes>): Promise<Promise<unknown>[]> {
  const sent = [
    f.router.deliver(entry("m1"), true),
    f.router.deliver(entry("m2"), false),
    f.router.deliver(entry("m3"), false),
  ];
  await turns();
  f.locates[0]!.answer.resolve("n2");
  await turns();
  f.handed[0]!.answer.resolve("took");
  await turns();
  f.appends[0]!.answer.resolve(1);
  f.appends[1]!.answer.resolve(2);
  await turns();
  f.locates[1]!.answer.resolve("n2");
  f.locates[2]!.answer.resolve("n2");
  await turns();
  assert.deepEqual(f.handed.slice(1).map((h) => `${h.id} ${h.seq}`), ["m2 1", "m3 2"]);
  return sent;
}

Deno.test("packets lost out of order are retried in lane order", async () => {
  using f = fakes();
  const sent = await storedBackToBack(f);
  // m3's answer (lost) comes before m2's.
  f.handed[2]!.answer.resolve("lost");
  await turns();
  f.handed[1]!.answer.resolve("lost");
  await Promise.all(sent);
  await waitFor("the retry", () => f.locates.length === 4);
  f.locates[3]!.answer.resolve("n2");
  await waitFor("the hand-overs", () => f.handed.length === 5);
  assert.deepEqual(f.handed.slice(3).map((h) => h.id), ["m2", "m3"]);
});

Deno.test("an unstored packet whose publish fails is stored and retried, not left for the next login", async () => {
  using f = fakes();
  f.publishing.ok = false;
  const sent = f.router.deliver(entry("m1"), false);
  await turns();
  f.locates[0]!.answer.resolve("n2");
  await turns();
  f.appends[0]!.answer.resolve(1);
  await sent;
  assert.deepEqual(f.offline, []);
  await waitFor("the retry", () => f.locates.length === 2);
  f.locates[1]!.answer.resolve("n2");
  await waitFor("the hand-over", () => f.handed.length === 1);
  assert.equal(f.events.at(-1), "handOff m1 to n2 stored");
  f.handed[0]!.answer.resolve("took");
});

Deno.test("a hand-off that needs no lookup waits for an earlier one still looking up", async () => {
  const f = fakes();
  const sent = [f.router.deliver(entry("m1"), true), f.router.deliver(entry("m2"), true)];
  await turns();
  f.locates[0]!.answer.resolve("n2");
  await turns();
  // The lane knows n2 now; m3 needs no lookup, but m2's is still on its way.
  sent.push(f.router.deliver(entry("m3"), true));
  await turns();
  assert.deepEqual(f.events.filter((e) => e.startsWith("handOff")), ["handOff m1 to n2"]);
  f.locates[1]!.answer.resolve("n2");
  await turns();
  assert.deepEqual(
    f.handed.map((h) => `${h.id} ${h.seq}`),
    ["m1 1", "m2 2", "m3 3"],
  );
  for (const h of f.handed) h.answer.resolve("took");
  await Promise.all(sent);
});

Deno.test("a sender is acked for a hand-off only once the other node took it; lost there (that node died holding it), it is stored in lane order first", async () => {
  using f = fakes();
  // A lane taken at n2 leaves n2 to the next one: its hand-offs go out at once, in one turn.
  await laneTaken(f, "m0");
  const acked: string[] = [];
  const sent = ["m1", "m2", "m3"].map((id) =>
    f.router.deliver(entry(id), true).then(() => void acked.push(id))
  );
  await turns();
  assert.deepEqual(f.handed.map((h) => h.id), ["m0", "m1", "m2", "m3"]);
  assert.equal(f.locates.length, 1, "no lookup: the node the last lane left");
  assert.deepEqual(acked, [], "nothing acked while its hand-off is unanswered");
  f.handed[1]!.answer.resolve("took");
  f.handed[3]!.answer.resolve("lost");
  f.handed[2]!.answer.resolve("lost");
  await turns();
  assert.deepEqual(acked, ["m1"], "a lost hand-off is acked only once it is stored");
  for (let i = 0; i < 2; i++) {
    await waitFor(`the write of m${i + 2}`, () => f.appends.length > i);
    f.appends[i]!.answer.resolve(null);
    await waitFor(`the lookup of m${i + 2}`, () => f.locates.length > 1 + i);
    f.locates[1 + i]!.answer.resolve("n2");
    await waitFor(`the hand-over of m${i + 2}`, () => f.handed.length > 4 + i);
    f.handed[4 + i]!.answer.resolve("took");
  }
  await Promise.all(sent);
  assert.deepEqual(f.appends.map((a) => a.id), ["m2", "m3"]);
  assert.deepEqual(acked, ["m1", "m2", "m3"]);
});

Deno.test("a packet whose earlier lane-mate found no node to hand off to (Redis away, or no session yet) is stored behind it, not handed off ahead of it", async () => {
  // A failover's CLUSTERDOWN: m1's lookup gives up (or finds the recipient
  // not logged in yet), m2's, made a little later, finds n2 once the replica
  // is promoted. m1 takes the stored path; handed off unstored, m2 would
  // reach the recipient before m1's stored hand-over (BENCHMARKS.md, "Failover").
  for (const found of [undefined, null]) {
    using f = fakes();
    const sent = [f.router.deliver(entry("m1"), true), f.router.deliver(entry("m2"), true)];
    await turns();
    assert.deepEqual(f.events, ["locate b@d", "locate b@d"]);
    f.locates[0]!.answer.resolve(found);
    f.locates[1]!.answer.resolve("n2");
    await turns();
    assert.ok(!f.events.includes("handOff m2 to n2"), `m2 not handed off ahead of m1 (${found})`);
    assert.deepEqual(f.appends.map((a) => a.id), ["m1", "m2"], "both stored, in send order");
    for (let i = 0; i < 2; i++) {
      f.appends[i]!.answer.resolve(i + 1);
      await turns();
      f.locates[2 + i]!.answer.resolve("n2");
      await turns();
    }
    for (const h of f.handed) h.answer.resolve("took");
    await Promise.all(sent);
    assert.deepEqual(f.events.filter((e) => e.startsWith("handOff")), [
      "handOff m1 to n2 stored",
      "handOff m2 to n2 stored",
    ]);
  }
});

Deno.test("a stored packet waits while earlier ones handed over behind a lost one are unanswered, not taken on a fresh lane ahead of them", async () => {
  // A failover: m2's hand-over is lost (the receiving node's subscription
  // was on the killed master), so the receiving node drops m3, handed over
  // right behind it, as out of turn; m3's answer never comes. m2's retry is
  // taken, and m4, stored meanwhile, would be taken on a fresh lane before
  // m3 is known lost and retried (BENCHMARKS.md, "Failover").
  using f = fakes();
  const sent = await storedBackToBack(f);
  f.handed[1]!.answer.resolve("lost");
  await waitFor("m2's retry", () => f.locates.length === 4);
  f.locates[3]!.answer.resolve("n2");
  await waitFor("m2 handed over again", () => f.handed.length === 4);
  f.handed[3]!.answer.resolve("took");
  await turns();
  const fourth = f.router.deliver(entry("m4"), false);
  await turns();
  f.appends[2]!.answer.resolve(3);
  await turns();
  for (const l of f.locates.slice(4)) l.answer.resolve("n2");
  await turns();
  assert.ok(!f.handed.some((h) => h.id === "m4"), "m4 waits while m3 is unanswered");
  f.handed[2]!.answer.resolve("lost");
  await waitFor("the retry of m3 and m4", () => f.locates.length > 4);
  for (const l of f.locates.slice(4)) l.answer.resolve("n2");
  await waitFor("their hand-overs", () => f.handed.length === 6);
  assert.deepEqual(f.handed.slice(4).map((h) => `${h.id} ${h.seq}`), ["m3 1", "m4 2"]);
  assert.equal(f.handed[4]!.lane, f.handed[5]!.lane);
  for (const h of f.handed.slice(4)) h.answer.resolve("took");
  await Promise.all([...sent, fourth]);
});

/**
 * multi_login: a router whose recipient b@d has sessions on `devices` (an
 * answer per listing, the last one kept: undefined while Redis is away) and
 * whose publishes of `failing` ("m1 to n2") fail once.
 */
function fanOutFakes(devices: (RemoteDevice[] | undefined)[], failing: string[] = []) {
  const f = fakes(new LocalSessions({ maxSessions: 5 }));
  const fails = new Set(failing);
  f.remote.devices = () => Promise.resolve(devices.length > 1 ? devices.shift() : devices[0]);
  f.remote.publishTo = (node, e) => {
    const ok = !fails.delete(`${e.id} to ${node}`);
    f.events.push(`publishTo ${e.id} to ${node}${ok ? "" : " failed"}`);
    return Promise.resolve(ok);
  };
  return f;
}

const device = (resource: string, node: string): RemoteDevice => ({
  resource,
  node,
  sid: `sid-${resource}`,
  since: 0,
});

/** Delivers `id` (with ack) to b@d and stores it at `depth`; resolves once the sender may be acked. */
async function deliveredStored(f: ReturnType<typeof fakes>, id: string, depth: number) {
  const sent = f.router.deliver(entry(id), true);
  await turns();
  f.appends.find((a) => a.id === id)!.answer.resolve(depth);
  await sent;
}

const fanned = (f: ReturnType<typeof fakes>) => f.events.filter((e) => e.startsWith("publishTo"));

Deno.test("multi_login: a fan-out whose publish to another node fails is published again live, in order, a later packet behind it, and not again to the node that got it", async () => {
  using f = fanOutFakes([[device("phone", "n2"), device("desk", "n3")]], ["m1 to n2"]);
  await deliveredStored(f, "m1", 1); // acked once stored, though n2 did not get it
  await deliveredStored(f, "m2", 2);
  assert.deepEqual(fanned(f), ["publishTo m1 to n2 failed", "publishTo m1 to n3"]);
  await waitFor("the retry", () => fanned(f).length === 5);
  assert.deepEqual(fanned(f).slice(2), [
    "publishTo m1 to n2",
    "publishTo m2 to n2",
    "publishTo m2 to n3",
  ]);
  assert.equal(f.router.retried, 2);
  // The queue is empty again: m3 goes straight out.
  await deliveredStored(f, "m3", 3);
  assert.deepEqual(fanned(f).slice(5), ["publishTo m3 to n2", "publishTo m3 to n3"]);
  assert.equal(f.router.retried, 2);
  assert.deepEqual(f.offline, []);
});

Deno.test("multi_login: a fan-out whose recipient's sessions cannot be listed (Redis away) is retried until they can, then published in order", async () => {
  using f = fanOutFakes([undefined, undefined, [device("phone", "n2")]]);
  await deliveredStored(f, "m1", 1);
  await deliveredStored(f, "m2", 2);
  assert.deepEqual(fanned(f), []);
  await waitFor("the retries", () => fanned(f).length === 2);
  assert.deepEqual(fanned(f), ["publishTo m1 to n2", "publishTo m2 to n2"]);
  assert.ok(f.router.retried >= 2);
  assert.deepEqual(f.offline, []);
});

Deno.test("multi_login: a fan-out retry that finds the recipient's sessions gone leaves the packet to the next login", async () => {
  using f = fanOutFakes([[device("phone", "n2")], []], ["m1 to n2"]);
  await deliveredStored(f, "m1", 1);
  await waitFor("offline", () => f.offline.length === 1);
  assert.deepEqual(f.offline, ["m1@1"]);
  assert.deepEqual(fanned(f), ["publishTo m1 to n2 failed"]);
});
