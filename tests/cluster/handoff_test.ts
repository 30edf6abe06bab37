// Hand-offs between nodes at the ClusterRemote level, over a real Redis: the
// receiving node answers "took" once a packet is safe, refuses without a
// session, and refuses the rest of a lane after one refusal (so what it
// took is always a prefix of the lane), and drops a numbered packet out of
// turn (one before it was lost) with the rest of its lane, saying so (a gap);
// the sending node resolves on the answer and gives up ("lost") when none
// comes, at once on a gap or when its own subscription drops; an answer
// whose publish failed goes once more.

import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { decodeBatch, encodeBatch, type NodeMessage } from "../../src/cluster/channel.ts";
import { channelOf } from "../../src/cluster/keys.ts";
import type { Liveness } from "../../src/cluster/liveness.ts";
import type { Registry } from "../../src/cluster/registry.ts";
import { type ClusterNodeDeps, ClusterRemote } from "../../src/cluster/remote.ts";
import { Sender } from "../../src/cluster/sender.ts";
import type { RedisClient } from "../../src/store/redis_client.ts";
import type { InboxEntry } from "../../src/store/store.ts";
import { type RedisServer, startRedis } from "../helpers/redis.ts";
import { client, quietLog, uniqueNode, until } from "./_redis.ts";

let redis: RedisServer;
Deno.test.beforeAll(async () => {
  redis = await startRedis();
});
Deno.test.afterAll(() => redis.stop());

const entry = (id: string): InboxEntry => ({
  user: "b@d",
  id,
  from: "a@d",
  type: 1,
  ct: 1,
  packet: `{"envelope":{"id":"${id}"}}`,
});

/** Every message published on `channel`, decoded. */
async function listen(channel: string) {
  const sub = new Redis({ host: "127.0.0.1", port: redis.port, lazyConnect: true });
  await sub.connect();
  await sub.subscribe(channel);
  const heard: NodeMessage[] = [];
  sub.on("message", (_c: string, text: string) => heard.push(...decodeBatch(text)!.messages));
  return { heard, [Symbol.asyncDispose]: async () => void await sub.quit() };
}

/** A ClusterRemote whose node takes hand-offs as `accept` says. */
function remoteWith(c: RedisClient, accept: ClusterNodeDeps["accept"]) {
  const node: ClusterNodeDeps = {
    arrived: () => Promise.resolve(),
    accept,
    local: () => [],
    online: () => 0,
  };
  const unused = {} as Registry & Liveness;
  const id = uniqueNode("n");
  return new ClusterRemote(
    id,
    node,
    unused,
    unused,
    quietLog(),
    new Sender(c, id, quietLog(), true),
  );
}

const handOff = (o: string, r: string, l: string, id: string, q?: number): NodeMessage => ({
  t: "msg",
  e: entry(id),
  a: true,
  s: false,
  h: q === undefined ? { o, r, l } : { o, r, l, q },
});

Deno.test("the receiving node answers took once safe, refuses without a session, and refuses the rest of a refused lane", async () => {
  await using c = await client(redis.addr);
  const origin = uniqueNode("o");
  await using answers = await listen(channelOf(origin));
  const safe = new Map<string, () => void>();
  let session = false;
  const remote = remoteWith(c, (e) => {
    if (!session) return null;
    return new Promise<void>((resolve) => safe.set(e.id, resolve));
  });
  remote.receive(handOff(origin, "r1", "L1", "m1")); // no session: refused
  session = true;
  remote.receive(handOff(origin, "r2", "L1", "m2")); // same lane: refused too
  remote.receive(handOff(origin, "r3", "L2", "m3")); // another lane: taken
  await until("two refusals", () => answers.heard.length === 2);
  assert.deepEqual(answers.heard, [
    { t: "took", r: "r1", ok: false },
    { t: "took", r: "r2", ok: false },
  ]);
  assert.deepEqual([...safe.keys()], ["m3"], "m2 never reached a session");
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(answers.heard.length, 2, "no answer before it is safe");
  safe.get("m3")!();
  await until("m3 answered", () => answers.heard.length === 3);
  assert.deepEqual(answers.heard[2], { t: "took", r: "r3", ok: true });
  remote.stop();
});

Deno.test("a hand-off whose packet could not be kept is answered not taken", async () => {
  await using c = await client(redis.addr);
  const origin = uniqueNode("o");
  await using answers = await listen(channelOf(origin));
  const remote = remoteWith(c, () => Promise.reject(new Error("store down")));
  remote.receive(handOff(origin, "r1", "L1", "m1"));
  await until("answered", () => answers.heard.length === 1);
  assert.deepEqual(answers.heard, [{ t: "took", r: "r1", ok: false }]);
  remote.stop();
});

Deno.test("the sending node resolves a hand-off on its answer, and lost when none comes in time", async () => {
  await using c = await client(redis.addr);
  const target = uniqueNode("t");
  await using sent = await listen(channelOf(target));
  const remote = remoteWith(c, () => null);
  const { answers: [first, second], refs } = await handOffs(remote, target, sent.heard, [
    ["L1", 1],
    ["L1", 2],
  ]);
  // Answers come back in the batch framing; only the first one is answered.
  remote.receive(decodeBatch(encodeBatch([{ t: "took", r: refs[0]!, ok: true }]))!.messages[0]!);
  assert.equal(await first, "took");
  const t0 = Date.now();
  assert.equal(await second, "lost");
  assert.ok(Date.now() - t0 < 3000);
  remote.stop();
});

Deno.test("hand-offs to a node nobody listens for are lost at once on one Redis, every one of their batch", async () => {
  await using c = await client(redis.addr);
  const remote = remoteWith(c, () => null);
  const nobody = uniqueNode("nobody");
  const t0 = Date.now();
  // Sent in one turn: one PUBLISH, whose failure reaches each of them.
  const answers = ["m1", "m2", "m3"].map((id, i) =>
    remote.handOff(nobody, entry(id), "L1", i + 1, true, false)
  );
  assert.deepEqual(await Promise.all(answers), ["lost", "lost", "lost"]);
  assert.ok(Date.now() - t0 < 500, "no wait for an answer when the publish reached nobody");
  assert.deepEqual({ ...remote.published }, { ok: 0, failed: 3 }, "counted per message");
  remote.stop();
});

Deno.test("a numbered hand-off out of turn is dropped with the rest of its lane and answered with the gap, so nothing overtakes a lost one", async () => {
  await using c = await client(redis.addr);
  const origin = uniqueNode("o");
  await using answers = await listen(channelOf(origin));
  const taken: string[] = [];
  const remote = remoteWith(c, (e) => {
    taken.push(e.id);
    return Promise.resolve();
  });
  remote.receive(handOff(origin, "r1", "L1", "m1", 1));
  // m2 (2) was lost on the way: m3 and m4 must not be shown before it.
  remote.receive(handOff(origin, "r3", "L1", "m3", 3));
  remote.receive(handOff(origin, "r4", "L1", "m4", 4));
  // Another lane starts at 1, whatever came before.
  remote.receive(handOff(origin, "r5", "L2", "m5", 1));
  await until("four answers", () => answers.heard.length === 4);
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(taken, ["m1", "m5"]);
  // The sender learns at once that L1 stopped at 2, instead of waiting for answers that never come.
  assert.deepEqual(answers.heard, [
    { t: "gap", l: "L1", q: 2 },
    { t: "gap", l: "L1", q: 2 },
    { t: "took", r: "r1", ok: true },
    { t: "took", r: "r5", ok: true },
  ]);
  remote.stop();
});

/** Whether `p` settled by the time the timers due now ran (the hand-off wait is 1 s). */
async function settledNow<T>(p: Promise<T>): Promise<T | "pending"> {
  return await Promise.race([p, new Promise<"pending">((r) => setTimeout(() => r("pending"), 0))]);
}

/** Hand-offs from `remote` to a listened `target`, and their refs as published. */
async function handOffs(
  remote: ClusterRemote,
  target: string,
  heard: NodeMessage[],
  lanes: [string, number][],
) {
  const answers = lanes.map(([l, q], i) =>
    remote.handOff(target, entry(`m${i}`), l, q, true, false)
  );
  await until("all published", () => heard.length === lanes.length);
  const refs = heard.map((m) => m.t === "msg" ? m.h!.r : "");
  return { answers, refs };
}

Deno.test("a gap answer gives up at once on the hand-offs of its lane from the place it names, and on no other", async () => {
  await using c = await client(redis.addr);
  const target = uniqueNode("t");
  await using sent = await listen(channelOf(target));
  const remote = remoteWith(c, () => null);
  const { answers, refs } = await handOffs(remote, target, sent.heard, [
    ["L1", 1],
    ["L1", 2],
    ["L1", 3],
    ["L2", 2],
  ]);
  remote.receive({ t: "gap", l: "L1", q: 2 });
  assert.equal(await settledNow(answers[1]!), "lost");
  assert.equal(await settledNow(answers[2]!), "lost");
  assert.equal(await settledNow(answers[0]!), "pending", "before the gap: still waiting");
  assert.equal(await settledNow(answers[3]!), "pending", "another lane: still waiting");
  remote.receive({ t: "took", r: refs[0]!, ok: true });
  remote.receive({ t: "took", r: refs[3]!, ok: true });
  assert.deepEqual(await Promise.all(answers), ["took", "lost", "lost", "took"]);
  remote.stop();
});

Deno.test("the sending node gives up at once on every hand-off still waiting when its subscription drops", async () => {
  await using c = await client(redis.addr);
  const target = uniqueNode("t");
  await using sent = await listen(channelOf(target));
  const remote = remoteWith(c, () => null);
  const { answers } = await handOffs(remote, target, sent.heard, [["L1", 1], ["L2", 1]]);
  assert.equal(await settledNow(answers[0]!), "pending");
  // Their answers may have been published while nobody listened.
  remote.subscriptionGap();
  assert.equal(await settledNow(answers[0]!), "lost");
  assert.equal(await settledNow(answers[1]!), "lost");
  remote.stop();
});

Deno.test("a node stopping while it holds a batch not yet published gives up on its hand-offs at once (lost: the router stores them)", async () => {
  await using c = await client(redis.addr);
  const target = uniqueNode("t");
  await using sent = await listen(channelOf(target));
  const remote = remoteWith(c, () => null);
  // Queued in this turn: their batch is published only at its end.
  const answers = ["m1", "m2"].map((id, i) =>
    remote.handOff(target, entry(id), "L1", i + 1, true, false)
  );
  assert.equal(sent.heard.length, 0);
  remote.stop();
  assert.deepEqual(await Promise.all(answers.map(settledNow)), ["lost", "lost"]);
});

Deno.test("a node whose subscription drops tells the nodes that handed off to it, which give up on what they handed it", async () => {
  await using c = await client(redis.addr);
  const origin = uniqueNode("o");
  await using told = await listen(channelOf(origin));
  const receiver = remoteWith(c, () => Promise.resolve());
  receiver.receive(handOff(origin, "r1", "L1", "m1", 1));
  await until("answered", () => told.heard.length === 1);
  receiver.subscriptionGap();
  await until("told", () => told.heard.length === 2);
  assert.deepEqual(told.heard[1], { t: "deaf", o: receiver.nodeid });

  const deaf = uniqueNode("deaf"), other = uniqueNode("other");
  await using toDeaf = await listen(channelOf(deaf));
  await using toOther = await listen(channelOf(other));
  const sender = remoteWith(c, () => null);
  const lost = sender.handOff(deaf, entry("m2"), "L2", 1, true, false);
  const kept = sender.handOff(other, entry("m3"), "L3", 1, true, false);
  await until("both published", () => toDeaf.heard.length === 1 && toOther.heard.length === 1);
  sender.receive({ t: "deaf", o: deaf });
  assert.equal(await settledNow(lost), "lost");
  assert.equal(await settledNow(kept), "pending", "a hand-off to another node still waits");
  receiver.stop();
  sender.stop();
});

Deno.test("an answer whose publish failed is published once more", async () => {
  const sends: NodeMessage[] = [];
  const flaky = {
    publishConfirms: false,
    published: { ok: 0, failed: 0 },
    send: (_node: string, m: NodeMessage) => Promise.resolve(sends.push(m) > 1),
  } as unknown as Sender;
  const node: ClusterNodeDeps = {
    arrived: () => Promise.resolve(),
    accept: () => Promise.resolve(),
    local: () => [],
    online: () => 0,
  };
  const unused = {} as Registry & Liveness;
  const remote = new ClusterRemote("n", node, unused, unused, quietLog(), flaky);
  remote.receive(handOff("o", "r1", "L1", "m1", 1));
  await until("sent twice", () => sends.length === 2);
  assert.deepEqual(sends, [{ t: "took", r: "r1", ok: true }, { t: "took", r: "r1", ok: true }]);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(sends.length, 2, "not again once it went out");
  remote.stop();
});

Deno.test("a stored hand-off refused for want of a session does not refuse the later ones of its lane", async () => {
  await using c = await client(redis.addr);
  const origin = uniqueNode("o");
  await using answers = await listen(channelOf(origin));
  let session = false;
  const remote = remoteWith(c, () => session ? Promise.resolve() : null);
  const stored = (r: string, id: string, q: number): NodeMessage => ({
    t: "msg",
    e: entry(id),
    a: true,
    s: true,
    h: { o: origin, r, l: "L1", q },
  });
  remote.receive(stored("r1", "m1", 1)); // logged out: refused
  session = true; // logged in again (its inbox read has m1)
  remote.receive(stored("r2", "m2", 2));
  await until("two answers", () => answers.heard.length === 2);
  assert.deepEqual(answers.heard, [
    { t: "took", r: "r1", ok: false },
    { t: "took", r: "r2", ok: true },
  ]);
  remote.stop();
});
