// Hand-offs between nodes at the ClusterRemote level, over a real Redis: the
// receiving node answers "took" once a packet is safe, refuses without a
// session, and refuses the rest of a lane after one refusal (so what it
// took is always a prefix of the lane), and drops a numbered packet out of
// turn (one before it was lost) with the rest of its lane; the sending node
// resolves on the answer and gives up ("lost") when none comes.

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
  const first = remote.handOff(target, entry("m1"), "L1", 1, true, false);
  const second = remote.handOff(target, entry("m2"), "L1", 2, true, false);
  await until("both published", () => sent.heard.length === 2);
  const refs = sent.heard.map((m) => m.t === "msg" ? m.h!.r : "");
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

Deno.test("a numbered hand-off out of turn is dropped unanswered with the rest of its lane, so nothing overtakes a lost one", async () => {
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
  await until("two answers", () => answers.heard.length === 2);
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(taken, ["m1", "m5"]);
  assert.deepEqual(answers.heard, [
    { t: "took", r: "r1", ok: true },
    { t: "took", r: "r5", ok: true },
  ]);
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
