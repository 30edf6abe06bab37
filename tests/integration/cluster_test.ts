// Real `sara` node processes sharing one Redis or a 3-master Redis Cluster
// (issue 5): every feature across nodes, a node SIGKILLed and restarted, a
// duplicate nodeid, and Redis itself restarted under running nodes.

import assert from "node:assert/strict";
import { sessionKey } from "../../src/cluster/keys.ts";
import { groupKey } from "../../src/store/redis_keys.ts";
import { errMsg } from "../../src/log.ts";
import { TestClient } from "../helpers/client.ts";
import { SaraProcess } from "../helpers/process.ts";
import { startRedis, startRedisCluster } from "../helpers/redis.ts";
import { rpc } from "../helpers/rpc_client.ts";
import { client, until } from "../cluster/_redis.ts";

const TOKEN = "cluster-it";
type Delay = { total: number; packets?: { envelope: Record<string, unknown> }[] };
const delayIds = (answer: { json: Record<string, unknown> }) =>
  ((answer.json.delay as Delay).packets ?? []).map((p) => p.envelope.id);

/** A framed chat packet asking for a server ack. */
function chatPacket(id: string, from: string, to: string): string {
  return JSON.stringify({ envelope: { id, type: 1, from, to, ack: 1 }, payload: {} }) + "\x01";
}

/** Ids of the server acks `c` gets until it has `max`, closes, or is quiet for `quietMs`. */
async function acksOf(c: TestClient, max: number, quietMs = 2000): Promise<string[]> {
  const ids: string[] = [];
  while (ids.length < max) {
    const p = await c.nextPacket(quietMs).catch(() => null);
    if (p === null) break;
    if (p.json.envelope.type === 3) ids.push(String(p.json.envelope.id));
  }
  return ids;
}

/**
 * The id of the next packet `c` gets, which must be of `type`. The bound is
 * generous: on a loaded machine the 3000 packets of a burst step take
 * seconds to cross (hand-offs wait for the online grace), and a miss says
 * how far it got.
 */
async function burstPacket(c: TestClient, got: string[], type: number): Promise<string> {
  const p = await c.nextPacket(30_000).catch((err) => {
    throw new Error(`${c.jid} stopped after ${got.length} (last ${got.at(-1)}): ${errMsg(err)}`);
  });
  assert.equal(p.json.envelope.type, type, JSON.stringify(p.json));
  return String(p.json.envelope.id);
}

/** One node process with its own config file; restartable. */
class Node implements AsyncDisposable {
  proc: SaraProcess | null = null;
  tcp = 0;
  rpcPort = 0;
  /** Output of earlier lives of this node (before restarts). */
  past = "";

  private constructor(readonly nodeid: string, readonly dir: string) {}

  static async create(nodeid: string, dbaddr: string): Promise<Node> {
    const dir = await Deno.makeTempDir({ prefix: `sara-${nodeid}-` });
    const conf = {
      bind: "127.0.0.1",
      port: 0,
      rpcport: 0,
      nodeaddr: "127.0.0.1:0",
      enable_ws: false,
      nodeid,
      dbaddr,
      accesstoken: TOKEN,
      logfile: "",
      pidfile: `${dir}/sara.pid`,
      loglevel: 2,
    };
    await Deno.writeTextFile(`${dir}/conf.json`, JSON.stringify(conf));
    return new Node(nodeid, dir);
  }

  /** Starts the process and waits for its TCP and RPC ports. */
  async start(): Promise<this> {
    this.proc = this.spawn();
    this.tcp = await this.proc.port("tcp");
    this.rpcPort = await this.proc.port("rpc");
    return this;
  }

  /** A process of this node's config, not waited for (to watch it refuse). */
  spawn(): SaraProcess {
    return SaraProcess.start(["-c", `${this.dir}/conf.json`]);
  }

  async kill(): Promise<void> {
    const p = this.proc!;
    p.kill("SIGKILL");
    assert.equal((await p.status).signal, "SIGKILL");
    await p[Symbol.asyncDispose]();
    this.past += p.output;
    this.proc = null;
  }

  get output(): string {
    return this.past + (this.proc?.output ?? "");
  }

  async login(jid: string): Promise<TestClient> {
    return (await TestClient.login(this.tcp, jid)).client;
  }

  async call(service: string, method: string, params?: unknown) {
    return (await rpc(this.rpcPort, { sn: "t", service, method, params, token: TOKEN })).json;
  }

  async isOnline(jid: string): Promise<boolean> {
    const r = await this.call("emsg_session", "isonline", { jid });
    assert.equal(r.entity, undefined, JSON.stringify(r));
    return r.success;
  }

  async counters(): Promise<{ node: string; count: number }[]> {
    const r = await this.call("emsg_session", "counter");
    return (r.entity as { counters: { node: string; count: number }[] }).counters;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.proc?.[Symbol.asyncDispose]();
    await Deno.remove(this.dir, { recursive: true });
  }
}

/** Nodes n1..nN (node ids prefixed) on `dbaddr`, started in parallel. */
async function startNodes(dbaddr: string, ids: string[]) {
  const nodes = await Promise.all(ids.map((id) => Node.create(id, dbaddr)));
  const all = Object.assign(nodes, {
    async [Symbol.asyncDispose]() {
      await Promise.all(nodes.map((n) => n[Symbol.asyncDispose]()));
    },
  });
  try {
    await Promise.all(nodes.map((n) => n.start()));
  } catch (err) {
    await all[Symbol.asyncDispose]();
    throw err;
  }
  return all;
}

const BACKENDS = [
  { label: "one Redis", start: () => startRedis() },
  { label: "a 3-master Redis Cluster", start: () => startRedisCluster() },
];

for (const backend of BACKENDS) {
  Deno.test(`three nodes on ${backend.label}: chat, kick, offline, groups, presence, blacklist and push work across nodes`, async (t) => {
    await using redis = await backend.start();
    await using nodes = await startNodes(redis.addr, ["n1", "n2", "n3"]);
    const [n1, n2, n3] = nodes as unknown as [Node, Node, Node];

    await t.step(
      "a 1:1 message with ack crosses nodes, is server-acked, and its ack clears it",
      async () => {
        await using a = await n1.login("a@d");
        const b = await n2.login("b@d");
        const id = await a.chat("b@d", "hello n2", { ack: 1 });
        const got = (await b.nextPacket()).json;
        assert.deepEqual([got.envelope.id, got.envelope.from, got.payload], [id, "a@d", {
          content: "hello n2",
        }]);
        assert.deepEqual([(await a.nextPacket()).json.envelope.id], [id]);
        const back = await b.chat("a@d", "hello n1", { ack: 1 });
        assert.equal((await a.nextPacket()).json.envelope.id, back);
        await a.ack(back);
        await b.ack(id);
        await b.nextPacket(); // server ack of "hello n1"
        await b.close();
        await until("b offline", async () => !(await n3.isOnline("b@d")));
        await using b2 = await TestClient.connect(n3.tcp);
        assert.deepEqual(delayIds(await b2.login("b@d")), []);
      },
    );

    await t.step("bursts of messages cross nodes in send order", async () => {
      // Ten senders on n1, each with a recipient on n2, sending in slices
      // a few ms apart: the node publishes them over many turns of its loop.
      const pairs = await Promise.all(Array.from({ length: 10 }, async (_, p) => ({
        a: await n1.login(`oa${p}@d`),
        b: await n2.login(`ob${p}@d`),
        sent: Array.from({ length: 300 }, (_, i) => `m${p}-${i}`),
      })));
      try {
        await Promise.all(pairs.map(async ({ a, sent }, p) => {
          for (let i = 0; i < sent.length; i += 20) {
            const slice = sent.slice(i, i + 20);
            await a.sendRaw(slice.map((id) => chatPacket(id, `oa${p}@d`, `ob${p}@d`)).join(""));
            await new Promise((r) => setTimeout(r, 2));
          }
          const acked: string[] = [];
          while (acked.length < sent.length) acked.push(await burstPacket(a, acked, 3));
          assert.deepEqual(acked.sort(), [...sent].sort());
        }));
        for (const { b, sent } of pairs) {
          const got: string[] = [];
          while (got.length < sent.length) {
            const id = await burstPacket(b, got, 1);
            got.push(id);
            await b.ack(id);
          }
          assert.deepEqual(got, sent);
        }
      } finally {
        for (const { a, b } of pairs) await Promise.all([a.close(), b.close()]);
      }
    });

    await t.step("a login on another node kicks the older session there", async () => {
      await using old = await n1.login("k@d");
      await using fresh = await n3.login("k@d");
      assert.deepEqual((await old.closedByServer()).map((r) => r.kind), ["kill"]);
      await using s = await n2.login("s@d");
      const id = await s.chat("k@d", "to the newer session", { ack: 1 });
      assert.equal((await fresh.nextPacket()).json.envelope.id, id);
      await fresh.ack(id);
    });

    await t.step(
      "messages for a user who moved node wait for it and come at its next login",
      async () => {
        await using a = await n1.login("a@d");
        const m = await n2.login("m@d");
        const first = await a.chat("m@d", "seen on n2, never acked", { ack: 1 });
        assert.equal((await m.nextPacket()).json.envelope.id, first);
        await m.close();
        await until("m offline", async () => !(await n1.isOnline("m@d")));
        const second = await a.chat("m@d", "while away", { ack: 1 });
        const acks = [(await a.nextPacket()).json, (await a.nextPacket()).json];
        assert.deepEqual(acks.map((p) => p.envelope.id), [first, second]);
        await using m2 = await TestClient.connect(n3.tcp);
        assert.deepEqual(delayIds(await m2.login("m@d")), [first, second]);
      },
    );

    await t.step("a group message fans out to members on all three nodes", async () => {
      await using r = await client(redis.addr);
      await r.set(groupKey("group_g1@d"), JSON.stringify(["ga", "gb", "gc", "gd"]), "EX", 3600);
      await using ga = await n1.login("ga@d");
      await using gb = await n2.login("gb@d");
      await using gc = await n3.login("gc@d");
      await ga.send({
        envelope: { id: "g-1", type: 2, from: "ga@d", gid: "g1" },
        payload: { content: "to all" },
      });
      assert.equal((await ga.nextPacket()).json.envelope.id, "g-1");
      for (const m of [gb, gc]) {
        const p = (await m.nextPacket()).json;
        assert.deepEqual([p.envelope.type, p.envelope.gid, p.envelope.from], [2, "g1", "ga@d"]);
        await m.ack(p.envelope.id);
      }
      await using gd = await TestClient.connect(n1.tcp);
      assert.equal(delayIds(await gd.login("gd@d")).length, 1);
    });

    await t.step("counter and isonline on every node see the sessions of all nodes", async () => {
      await using _p = await n1.login("p1@d");
      await using _q = await n1.login("p2@d");
      await using _r = await n2.login("p3@d");
      const want = [{ node: "n1", count: 2 }, { node: "n2", count: 1 }, { node: "n3", count: 0 }];
      for (const n of nodes) {
        // Sessions of earlier steps may still be logging out.
        await until(`counters on ${n.nodeid}`, async () => {
          return JSON.stringify(await n.counters()) === JSON.stringify(want);
        });
      }
      for (const n of nodes) {
        assert.deepEqual(
          await Promise.all(["p1@d", "p3@d", "nobody@d"].map((j) => n.isOnline(j))),
          [true, true, false],
        );
      }
    });

    await t.step(
      "a blacklist change over RPC on one node applies at once to the owner's session on another",
      async () => {
        await using a = await n1.login("x@d");
        await using b = await n2.login("y@d");
        const block = await n3.call("emsg_black_list", "append", { from: "x@d", to: "y@d" });
        assert.equal(block.success, true, JSON.stringify(block));
        await a.chat("y@d", "blocked", { ack: 1 });
        assert.equal((await a.nextPacket()).json.envelope.type, 3); // acked all the same
        await b.nothing(300);
        await n3.call("emsg_black_list", "remove", { from: "x@d", to: "y@d" });
        const id = await a.chat("y@d", "unblocked", { ack: 1 });
        assert.equal((await b.nextPacket()).json.envelope.id, id);
        await b.ack(id);
      },
    );

    await t.step("a push API call on the third node reaches users on the other two", async () => {
      await using a = await n1.login("a@d");
      await using b = await n2.login("b@d");
      const contents = ["a@d", "b@d"].map((to, i) => ({
        envelope: { id: `push-${i}`, type: 1, from: "sys@d", to, ack: 1 },
        payload: { content: "from the backend" },
      }));
      const r = await n3.call("emsg_inf_push", "process_batch", { contents });
      assert.deepEqual(r.entity, { accepted: 2, rejected: [] });
      assert.equal((await a.nextPacket()).json.envelope.id, "push-0");
      assert.equal((await b.nextPacket()).json.envelope.id, "push-1");
      await a.ack("push-0");
      await b.ack("push-1");
    });
  });

  Deno.test(`on ${backend.label}: a SIGKILLed node's users get their messages at reconnect and its restart clears their entries`, async () => {
    await using redis = await backend.start();
    await using nodes = await startNodes(redis.addr, ["n1", "n2"]);
    const [n1, n2] = nodes as unknown as [Node, Node];
    await using a = await n1.login("a@d");
    const b = await n2.login("b@d");
    await n2.kill();
    await b.closedByServer();
    await b.close();
    // Sent while n2 is dead but its liveness key still runs: stored, not dropped.
    const withAck = await a.chat("b@d", "acked one", { ack: 1 });
    assert.equal((await a.nextPacket()).json.envelope.id, withAck);
    const noAck = await a.chat("b@d", "no ack asked");
    await using r = await client(redis.addr);
    assert.equal(JSON.parse((await r.get(sessionKey("b@d")))!).node, "n2");
    // Restarted at once: it finds its own stale liveness key and takes over.
    await n2.start();
    assert.match(n2.output, /took over/);
    assert.match(n2.output, /clean ghost session: 1 cleared/);
    assert.equal(await r.get(sessionKey("b@d")), null);
    assert.equal(await n1.isOnline("b@d"), false);
    await using b2 = await TestClient.connect(n2.tcp);
    assert.deepEqual(delayIds(await b2.login("b@d")), [withAck, noAck]);
    // And the restarted node routes again.
    const id = await a.chat("b@d", "after restart", { ack: 1 });
    assert.equal((await b2.nextPacket()).json.envelope.id, id);
  });

  Deno.test(`on ${backend.label}: a second node with the same nodeid refuses to start while the first is alive`, async () => {
    await using redis = await backend.start();
    await using nodes = await startNodes(redis.addr, ["n1", "n2"]);
    const [n1, n2] = nodes as unknown as [Node, Node];
    await using twin = n1.spawn();
    const status = await twin.status;
    assert.equal(status.code, 1);
    // Its exit can be seen before the last of its output has been read from the pipe.
    await twin.waitFor(/startup failed: nodeid "n1" is already running \(pid \d+ on /);
    // The refused twin left the first alone.
    assert.deepEqual((await n2.counters()).map((c) => c.node), ["n1", "n2"]);
    // Killed, the first stops counting once its key lapses; then n1 starts again at once.
    await n1.kill();
    await until("n1 gone from the counters", async () => {
      return JSON.stringify((await n2.counters()).map((c) => c.node)) === '["n2"]';
    });
    await n1.start();
    assert.deepEqual((await n2.counters()).map((c) => c.node), ["n1", "n2"]);
  });

  Deno.test(`on ${backend.label}: the recipient's node SIGKILLed while holding a batch loses no acked message, and its inbox keeps send order`, async () => {
    await using redis = await backend.start();
    await using nodes = await startNodes(redis.addr, ["n1", "n2"]);
    const [n1, n2] = nodes as unknown as [Node, Node];
    await using a = await n1.login("a@d");
    const b = await n2.login("b@d");
    // One write of many messages: handed off to n2 in a few batches; b never
    // acks, so n2 holds them (in its online grace or its writes) when it dies.
    const ids = Array.from({ length: 300 }, (_, i) => `k${i}`);
    await a.sendRaw(ids.map((id) => chatPacket(id, "a@d", "b@d")).join(""));
    await b.nextPacket();
    await n2.kill();
    await b.close();
    const acked = await acksOf(a, ids.length);
    await n2.start();
    await using b2 = await TestClient.connect(n2.tcp);
    const stored = delayIds(await b2.login("b@d")).filter((id) => ids.includes(String(id)));
    // Every acked one is kept, in send order (unacked ones may be there too).
    assert.deepEqual(acked.filter((id) => !stored.includes(id)), []);
    assert.deepEqual(stored, ids.filter((id) => stored.includes(id)));
  });

  Deno.test(`on ${backend.label}: the sender's node SIGKILLed while holding a batch loses no acked message, and the recipient gets them in order`, async () => {
    await using redis = await backend.start();
    await using nodes = await startNodes(redis.addr, ["n1", "n2"]);
    const [n1, n2] = nodes as unknown as [Node, Node];
    const a = await n1.login("a@d");
    await using b = await n2.login("b@d");
    const ids = Array.from({ length: 300 }, (_, i) => `k${i}`);
    const send = (part: string[]) =>
      a.sendRaw(part.map((id) => chatPacket(id, "a@d", "b@d")).join(""));
    // b acks nothing yet, so n1's hand-offs wait for n2's online grace: the
    // first half is acked, and n1 dies holding the second.
    await send(ids.slice(0, 150));
    await a.nextPacket();
    await send(ids.slice(150));
    await n1.kill();
    const acked = [ids[0]!, ...await acksOf(a, ids.length)];
    await a.close();
    // Live at b (which acks each), and what n1 stored before dying comes at b's next login.
    const live: string[] = [];
    for (;;) {
      const p = await b.nextPacket(2000).catch(() => null);
      if (p === null) break;
      live.push(String(p.json.envelope.id));
      await b.ack(String(p.json.envelope.id));
    }
    await b.close();
    await until("b offline", async () => !(await n2.isOnline("b@d")));
    await using b2 = await TestClient.connect(n2.tcp);
    const got = [...live, ...delayIds(await b2.login("b@d")).map(String)];
    assert.deepEqual(acked.filter((id) => !got.includes(id)), []);
    const firsts = got.filter((id, i) => got.indexOf(id) === i);
    assert.deepEqual(firsts, ids.filter((id) => firsts.includes(id)));
  });

  Deno.test(`on ${backend.label}: the recipient's node SIGKILLed while holding hand-offs it never answered loses no acked message, and its user gets them in order on another node`, async () => {
    await using redis = await backend.start();
    await using nodes = await startNodes(redis.addr, ["n1", "n2"]);
    const [n1, n2] = nodes as unknown as [Node, Node];
    await using a = await n1.login("a@d");
    const b = await n2.login("b@d");
    // n2 stops answering, but stays subscribed (its socket holds what is
    // published to it) and alive by its liveness key: every hand-off to it waits.
    n2.proc!.kill("SIGSTOP");
    const ids = Array.from({ length: 50 }, (_, i) => `h${i}`);
    await a.sendRaw(ids.map((id) => chatPacket(id, "a@d", "b@d")).join(""));
    // Unanswered, each is given up after its wait and stored, and only then acked.
    const acked = await acksOf(a, ids.length, 10_000);
    assert.deepEqual(acked.toSorted(), ids.toSorted());
    await n2.kill(); // with those batches unread
    await b.close();
    await using b2 = await TestClient.connect(n1.tcp);
    assert.deepEqual(delayIds(await b2.login("b@d")), ids);
    await b2.nothing(1000); // and none again (n1 still retries the hand-overs)
  });
}

Deno.test("on one Redis: a packet waiting behind a stuck hand-off for a session that closes meanwhile keeps its place in the inbox", async () => {
  await using redis = await startRedis();
  await using nodes = await startNodes(redis.addr, ["n1", "n2"]);
  const [n1, n2] = nodes as unknown as [Node, Node];
  await using a = await n1.login("a@d");
  const b = await n2.login("b@d");
  // n2 stops answering but stays subscribed and alive by its liveness key:
  // m1's hand-off to it waits the full second for an answer (docs/delivery.md).
  n2.proc!.kill("SIGSTOP");
  await b.close();
  await a.sendRaw(chatPacket("m1", "a@d", "b@d"));
  // b logs in on n1 meanwhile, so m2 and m3 wait behind m1 for that session ...
  const b2 = await n1.login("b@d");
  // (The heartbeat's answer says that n1 has read them: it answers in order.)
  await a.sendRaw(chatPacket("m2", "a@d", "b@d") + chatPacket("m3", "a@d", "b@d") + "\x02\x01");
  assert.equal((await a.next()).kind, "heartbeat");
  // ... which closes before m1 is through: m4 finds nobody.
  await b2.close();
  await until("b's session on n1 closed", async () => !(await n1.isOnline("b@d")));
  await a.nothing(1); // still within m1's wait: nothing acked yet
  await a.sendRaw(chatPacket("m4", "a@d", "b@d"));
  const ids = ["m1", "m2", "m3", "m4"];
  assert.deepEqual((await acksOf(a, 4)).sort(), ids);
  await using b3 = await TestClient.connect(n1.tcp);
  assert.deepEqual(delayIds(await b3.login("b@d")), ids);
  await n2.kill();
});

/** Each backend with a way to take all of Redis down (SIGKILL) and bring it back. */
const OUTAGES = [
  {
    label: "one Redis",
    start: async () => {
      const r = await startRedis({ appendfsync: "always" });
      return Object.assign(r, { down: () => r.kill(), up: () => r.restart() });
    },
  },
  {
    label: "a 3-master Redis Cluster",
    start: async () => {
      const c = await startRedisCluster({ appendfsync: "always" });
      return Object.assign(c, {
        down: () => Promise.all(c.nodes.map((n) => n.kill())),
        up: () => Promise.all(c.nodes.map((n) => n.restart())),
      });
    },
  },
];

for (const backend of OUTAGES) {
  Deno.test(`${backend.label} restarted under two nodes: logins and sends fail with protocol errors, then work again by themselves`, async () => {
    await using redis = await backend.start();
    await using nodes = await startNodes(redis.addr, ["n1", "n2"]);
    const [n1, n2] = nodes as unknown as [Node, Node];
    await using a = await n1.login("a@d");
    await using b = await n2.login("b@d");
    await redis.down();
    // A login needs the registry: refused with the login failure answer.
    await using c = await TestClient.connect(n1.tcp);
    const refused = (await c.login("c@d")).json;
    assert.deepEqual(refused.entity, { result: "error", reason: "store_error" });
    // A send that cannot be stored is answered with store_error, never acked.
    const lost = await a.chat("b@d", "during the outage", { ack: 1 });
    const notice = (await a.nextPacket()).json;
    assert.deepEqual([notice.envelope.id, notice.entity], [lost, {
      result: "sys_notify",
      reason: "store_error",
    }]);
    await redis.up();
    // Both nodes come back on their own: logins, routing and presence work again.
    await until("logins work again", async () => {
      const t = await TestClient.connect(n1.tcp);
      try {
        const r = (await t.login("c@d")).json;
        return (r.entity as { result: string }).result === "ok";
      } finally {
        await t.close();
      }
    }, 30_000);
    // The refused message goes again first, as SDKs resend (docs/protocol.md §12).
    await until("a reaches b across nodes", async () => {
      await a.chat("b@d", "during the outage", { ack: 1, id: lost });
      const answer = (await a.nextPacket()).json;
      if (answer.envelope.type !== 3) return false; // store_error while reconnecting
      const got = (await b.nextPacket()).json;
      await b.ack(got.envelope.id);
      return got.envelope.id === lost;
    }, 30_000);
    const after = await a.chat("b@d", "after the outage", { ack: 1 });
    assert.deepEqual([(await a.nextPacket()).json.envelope.type], [3]);
    assert.equal((await b.nextPacket()).json.envelope.id, after);
    assert.equal(await n2.isOnline("a@d"), true);
    // Neither process died on the way.
    for (const n of nodes) assert.equal(await settledNow(n.proc!.status), false);
  });
}

/** True when `p` has already settled (checked after one macrotask). */
async function settledNow(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(() => done = true, () => done = true);
  await new Promise((r) => setTimeout(r, 0));
  return done;
}
