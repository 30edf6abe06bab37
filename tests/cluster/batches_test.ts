// Batches between nodes through a real Redis (one server, or a 3-master
// Redis Cluster), with whole nodes in this process sharing one store. A node
// publishes what it has for another node in one batch per turn of its event
// loop (docs/cluster.md; BENCHMARKS.md, "The cross-node path"): several
// senders on one node to several recipients on another keep each sender's
// order and lose nothing; a node holding hand-offs it has not made safe yet
// has answered none of them, so that every message acked to its sender is in
// the inbox whenever that node dies; and a malformed batch published on a
// node's channel is dropped with a log line while that node goes on
// delivering every other batch, so that the senders' traffic beside it loses
// nothing either.

import assert from "node:assert/strict";
import { encodeBatch } from "../../src/cluster/channel.ts";
import { channelOf } from "../../src/cluster/keys.ts";
import { FaultyStore } from "../delivery/_faulty_store.ts";
import { TestClient } from "../helpers/client.ts";
import { CapturedLog } from "../helpers/log_capture.ts";
import { redisCommand, startRedis, startRedisCluster } from "../helpers/redis.ts";
import type { Store } from "../../src/store/store.ts";
import { uniqueNode, until } from "./_redis.ts";
import { type Nodes, startNodes } from "./_nodes.ts";

/** Each backend, and a port of it that takes a PUBLISH (any node of a cluster broadcasts it). */
const BACKENDS = [
  {
    label: "one Redis",
    start: async () => {
      const r = await startRedis();
      return Object.assign(r, { via: r.port });
    },
  },
  {
    label: "a 3-master Redis Cluster",
    start: async () => {
      const c = await startRedisCluster();
      return Object.assign(c, { via: c.ports[0]! });
    },
  },
];

const login = async (port: number, jid: string) => (await TestClient.login(port, jid)).client;
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/**
 * `senders` users on the first node send `per` messages each, all at once and
 * round-robin over `recipients` users on the second node; every third asks
 * for no ack, so that the batches mix hand-offs and direct publishes.
 * `meanwhile` starts with the sending, and every sender's second half waits
 * for it to end. Each recipient must get each sender's messages to it once,
 * in send order, and each sender a server ack for every one that asked.
 */
async function crossTraffic(
  c: Nodes,
  o: { senders: number; recipients: number; per: number; meanwhile?: () => Promise<void> },
): Promise<void> {
  const [n1, n2] = c.nodes as [typeof c.nodes[0], typeof c.nodes[0]];
  const rcpts = await Promise.all(range(o.recipients).map((j) => login(n2.port, `r${j}@d`)));
  const senders = await Promise.all(range(o.senders).map((i) => login(n1.port, `s${i}@d`)));
  try {
    const to = (k: number) => `r${k % o.recipients}@d`;
    const asksAck = (k: number) => k % 3 !== 0;
    const during = (o.meanwhile ?? (() => Promise.resolve()))();
    await Promise.all(senders.map(async (s, i) => {
      for (let k = 0; k < o.per; k++) {
        if (k === o.per / 2) await during;
        await s.chat(to(k), `${i}:${k}`, { id: `s${i}-${k}`, ...(asksAck(k) ? { ack: 1 } : {}) });
      }
    }));
    // What each recipient heard, per sender: the k of each message, in arrival order.
    const heard = await Promise.all(rcpts.map(async (r, j) => {
      const got = range(o.senders).map((): number[] => []);
      const expected = o.senders * range(o.per).filter((k) => to(k) === `r${j}@d`).length;
      for (let n = 0; n < expected; n++) {
        const p = (await r.nextPacket(15_000)).json;
        if (p.envelope.ack === 1) await r.ack(String(p.envelope.id));
        const content = String((p.payload as { content?: string }).content);
        assert.match(content, /^\d+:\d+$/, `not from a sender: ${JSON.stringify(p)}`);
        const [i, k] = content.split(":").map(Number) as [number, number];
        got[i]!.push(k);
      }
      await r.nothing(300); // and nothing twice
      return got;
    }));
    for (const [j, got] of heard.entries()) {
      for (const i of range(o.senders)) {
        const sent = range(o.per).filter((k) => to(k) === `r${j}@d`);
        assert.deepEqual(got[i], sent, `sender ${i} to recipient ${j}`);
      }
    }
    for (const [i, s] of senders.entries()) {
      const want = range(o.per).filter(asksAck).map((k) => `s${i}-${k}`);
      const acks: string[] = [];
      while (acks.length < want.length) {
        const p = (await s.nextPacket(15_000)).json;
        assert.equal(p.envelope.type, 3, JSON.stringify(p));
        acks.push(String(p.envelope.id));
      }
      assert.deepEqual(acks.sort(), want.sort(), `server acks of sender ${i}`);
    }
  } finally {
    for (const x of [...senders, ...rcpts]) await x.close();
  }
}

for (const backend of BACKENDS) {
  Deno.test(`on ${backend.label}: concurrent senders on one node keep their send order at several recipients on another, none lost`, async () => {
    await using redis = await backend.start();
    await using c = await startNodes(redis.addr, 2, uniqueNode("o"));
    await crossTraffic(c, { senders: 4, recipients: 3, per: 150 });
  });
}

Deno.test("a node holding hand-offs it cannot make safe answers none of them: while it hangs (and whenever it dies), every message acked to its sender is in the inbox, in order", async () => {
  await using redis = await startRedis();
  let hanging!: FaultyStore;
  const store = (i: number, shared: Store) => i === 2 ? hanging = new FaultyStore(shared) : shared;
  await using c = await startNodes(redis.addr, 2, uniqueNode("h"), { store });
  const [n1, n2] = c.nodes as [typeof c.nodes[0], typeof c.nodes[0]];
  await using a = await login(n1.port, "a@d");
  await using b = await login(n2.port, "b@d");
  // From now on n2's writes never finish, as if it died in each one; b acks nothing.
  const release = hanging.gate();
  try {
    const ids = range(20).map((k) => `k${k}`);
    for (const id of ids) await a.chat("b@d", id, { id, ack: 1 });
    const acks: string[] = [];
    while (acks.length < ids.length) acks.push((await a.nextPacket(10_000)).json.envelope.id);
    assert.deepEqual(acks.toSorted(), ids.toSorted());
    // Acked only once n2 gave no answer and n1 stored them itself.
    assert.deepEqual((await c.store.inbox("b@d")).map((e) => e.id), ids);
    // And b, who stays, saw each once, in send order.
    const seen: string[] = [];
    while (seen.length < ids.length) seen.push((await b.nextPacket(10_000)).json.envelope.id);
    assert.deepEqual(seen, ids);
    await b.nothing(300);
  } finally {
    release();
  }
});

// A message the batches below would deliver if their framing were trusted.
const FORGED = encodeBatch([{
  t: "msg",
  e: {
    user: "r0@d",
    id: "forged",
    from: "x@d",
    type: 1,
    ct: 1,
    packet: '{"envelope":{"id":"forged","type":1,"from":"x@d","to":"r0@d"},"payload":{}}',
  },
  a: false,
  s: false,
}]);

/** Batches whose framing is broken: each is dropped whole. */
const BROKEN: [string, string][] = [
  ["no header line", "just some text"],
  ["bytes no header accounts for", "[]\nxyz"],
  ["truncated", FORGED.slice(0, -5)],
  ["headers that are not JSON", '[{"t":"kick","jid":\n{}'],
  ["headers that are not an array", '{"t":"kick","jid":"r0@d","sid":"s"}\n'],
  ["a packet longer than the batch", FORGED.replace(/"n":\d+/, '"n":1000000')],
  ["larger than any batch a node sends, and garbage", `[${"x".repeat(3 << 19)}\n`],
];

/** Well-framed batches with a malformed message: that message is dropped, alone. */
const BAD_MESSAGES: [string, string][] = [
  ["an unknown kind", '[{"t":"nope"}]\n'],
  ["a known kind with a bad field", '[{"t":"took","r":7,"ok":true}]\n'],
];

for (const backend of BACKENDS) {
  Deno.test(`on ${backend.label}: a malformed batch on a node's channel is dropped with a log line, and that node goes on delivering every other batch`, async () => {
    await using redis = await backend.start();
    using log = new CapturedLog();
    await using c = await startNodes(redis.addr, 2, uniqueNode("m"), {
      logs: [undefined, log.log],
    });
    const channel = channelOf(c.nodes[1]!.config.nodeid);
    // Published while the senders' first halves cross to that node, before their second halves.
    const meanwhile = async () => {
      for (const [, text] of [...BROKEN, ...BAD_MESSAGES]) {
        await redisCommand(redis.via, "PUBLISH", channel, text);
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    await crossTraffic(c, { senders: 3, recipients: 2, per: 60, meanwhile });
    const count = (re: RegExp) => log.text().match(re)?.length ?? 0;
    const esc = channel.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    const dropped = new RegExp(`cluster: malformed batch on ${esc} dropped`, "g");
    const droppedAlone = new RegExp(`cluster: 1 malformed messages on ${esc} dropped`, "g");
    await until("every malformed batch logged", () => {
      return count(dropped) >= BROKEN.length && count(droppedAlone) >= BAD_MESSAGES.length;
    });
    assert.equal(count(dropped), BROKEN.length);
    assert.equal(count(droppedAlone), BAD_MESSAGES.length);
  });
}
