// Erlang emsg_server parity (docs/protocol.md §10, issue 9) across two real `sara`
// node processes sharing one Redis or a 3-master Redis Cluster: blacklist,
// offline cap, per-type policies and both offline delivery modes.

import assert from "node:assert/strict";
import { userKeys } from "../../src/store/redis_keys.ts";
import { CallbackServer } from "../helpers/callback_server.ts";
import { TestClient } from "../helpers/client.ts";
import { SaraProcess } from "../helpers/process.ts";
import { startRedis, startRedisCluster } from "../helpers/redis.ts";
import { rpc } from "../helpers/rpc_client.ts";
import { client, until } from "../cluster/_redis.ts";

const TOKEN = "parity-it";
const CAP = 10;

type Packet = { envelope: Record<string, unknown>; payload?: { content?: string } };
type Delay = { total: number; packets?: Packet[] };

/** A `sara` process with its own config file. */
class Node implements AsyncDisposable {
  private constructor(
    readonly nodeid: string,
    readonly dir: string,
    readonly proc: SaraProcess,
    readonly tcp: number,
    readonly rpcPort: number,
  ) {}

  static async start(nodeid: string, conf: Record<string, unknown>): Promise<Node> {
    const dir = await Deno.makeTempDir({ prefix: `sara-${nodeid}-` });
    await Deno.writeTextFile(
      `${dir}/conf.json`,
      JSON.stringify({
        bind: "127.0.0.1",
        port: 0,
        rpcport: 0,
        nodeaddr: "127.0.0.1:0",
        enable_ws: false,
        nodeid,
        accesstoken: TOKEN,
        logfile: "",
        pidfile: `${dir}/sara.pid`,
        loglevel: 2,
        ...conf,
      }),
    );
    const proc = SaraProcess.start(["-c", `${dir}/conf.json`]);
    try {
      return new Node(nodeid, dir, proc, await proc.port("tcp"), await proc.port("rpc"));
    } catch (err) {
      await proc[Symbol.asyncDispose]();
      await Deno.remove(dir, { recursive: true });
      throw err;
    }
  }

  async login(jid: string): Promise<TestClient> {
    return (await TestClient.login(this.tcp, jid)).client;
  }

  /** Logs in and returns the client with the login answer's `delay`. */
  async loginDelay(jid: string): Promise<{ c: TestClient; delay: Delay; loginId: string }> {
    const { client: c, answer } = await TestClient.login(this.tcp, jid);
    return { c, delay: answer.json.delay as Delay, loginId: answer.json.envelope.id };
  }

  /** `emsg_black_list` as the Java SDK calls it: form POST to "/", the user's pwd, no token. */
  async blacklist(method: string, params: Record<string, unknown>) {
    const req = { sn: "bl", service: "emsg_black_list", method, params: { pwd: "pwd", ...params } };
    const r = await rpc(this.rpcPort, req, "form", "/");
    assert.equal(r.status, 200);
    return r.json;
  }

  async isOnline(jid: string): Promise<boolean> {
    const req = { sn: "t", service: "emsg_session", method: "isonline", params: { jid } };
    return (await rpc(this.rpcPort, { ...req, token: TOKEN })).json.success;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.proc[Symbol.asyncDispose]();
    await Deno.remove(this.dir, { recursive: true });
  }
}

/** Starts nodes in parallel; disposing stops them all. */
async function startNodes(confs: [string, Record<string, unknown>][]) {
  const started = await Promise.allSettled(confs.map(([id, conf]) => Node.start(id, conf)));
  const nodes = started.flatMap((s) => s.status === "fulfilled" ? [s.value] : []);
  const all = Object.assign(nodes, {
    async [Symbol.asyncDispose]() {
      await Promise.all(nodes.map((n) => n[Symbol.asyncDispose]()));
    },
  });
  const failed = started.find((s) => s.status === "rejected");
  if (failed) {
    await all[Symbol.asyncDispose]();
    throw (failed as PromiseRejectedResult).reason;
  }
  return all;
}

/** Config of a node with the parity settings under test. */
function parityConf(dbaddr: string, cb: CallbackServer, delivery: "delay" | "packets") {
  return { dbaddr, callback: cb.url, offline_max: CAP, offline_delivery: delivery };
}

/** Sends with ack 1 and waits for the server ack before the next: a fixed store order. */
async function sendAcked(c: TestClient, to: string, text: string, type = 1): Promise<string> {
  const id = await c.chat(to, text, { ack: 1, type });
  const got = (await c.nextPacket()).json.envelope;
  assert.deepEqual([got.id, got.type], [id, 3]);
  return id;
}

/**
 * Sends a group message and waits for its server ack; copies of other
 * members' group messages arriving meanwhile are acked on the way.
 */
async function sendGroup(c: TestClient, gid: string, text: string): Promise<void> {
  const id = crypto.randomUUID();
  await c.send({ envelope: { id, type: 2, from: c.jid, gid }, payload: { content: text } });
  for (;;) {
    const got = (await c.nextPacket()).json.envelope;
    if (got.type === 3 && got.id === id) return;
    assert.equal(got.type, 2, JSON.stringify(got));
    await c.ack(got.id);
  }
}

/** Receives the next packet, acks it, and returns it. */
async function receive(c: TestClient): Promise<Packet> {
  const p = (await c.nextPacket()).json;
  await c.ack(p.envelope.id);
  return p;
}

const contents = (ps: Packet[] | undefined) => (ps ?? []).map((p) => p.payload?.content);

/** Waits until `node` no longer sees `jid` online (its close reached the registry). */
async function offline(node: Node, jid: string): Promise<void> {
  await until(`${jid} offline`, async () => !(await node.isOnline(jid)));
}

/** Waits until Redis holds exactly `n` entries for `user` (acks are written a bit later). */
async function storedIs(dbaddr: string, user: string, n: number): Promise<void> {
  await using r = await client(dbaddr);
  await until(`${n} stored for ${user}`, async () => await r.zcard(userKeys(user).order) === n);
}

/**
 * A on n1 is blocked by B on n2 through n1's RPC: nothing from A reaches B
 * online, offline or through a group, B still reaches A, fetch answers on
 * both nodes, and remove (on n2's RPC) restores delivery.
 */
async function blacklistAcrossNodes(n1: Node, n2: Node, cb: CallbackServer, dbaddr: string) {
  cb.groups.set("bl", ["a", "b", "c"]);
  await using a = await n1.login("a@d");
  await using m = await n1.login("m@d"); // an unblocked sender next to a
  await using c = await n2.login("c@d");
  {
    await using b = await n2.login("b@d");
    assert.deepEqual(await n1.blacklist("append", { from: "a@d/phone", to: "b@d" }), {
      sn: "bl",
      success: true,
    });
    // At once, online: a is server-acked as usual (not told), b gets nothing.
    await sendAcked(a, "b@d", "blocked chat");
    await a.chat("b@d", "blocked, no ack asked");
    await sendAcked(a, "b@d", "blocked event", 7);
    await sendGroup(a, "bl", "blocked group");
    assert.deepEqual(contents([await receive(c)]), ["blocked group"]);
    const marker = await sendAcked(m, "b@d", "marker");
    assert.equal((await receive(b)).envelope.id, marker);
    await b.nothing(300);
    // The other way round is not blocked.
    const back = await sendAcked(b, "a@d", "b to a");
    assert.equal((await receive(a)).envelope.id, back);
    for (const n of [n1, n2]) {
      const rows = (await n.blacklist("fetch", { to: "b@d" })).entity as { jid: string }[];
      assert.deepEqual(rows.map((r) => r.jid), ["a@d"], `fetch on ${n.nodeid}`);
    }
  }
  await offline(n1, "b@d");
  // Offline: neither stored nor (for the group) kept for b.
  await a.chat("b@d", "offline, no ack asked");
  await sendAcked(a, "b@d", "offline chat");
  await sendGroup(a, "bl", "offline group");
  assert.deepEqual(contents([await receive(c)]), ["offline group"]);
  const offMarker = await sendAcked(m, "b@d", "offline marker");
  await storedIs(dbaddr, "b@d", 1);
  {
    const { c: b, delay, loginId } = await n2.loginDelay("b@d");
    await using _b = b;
    assert.deepEqual(delay.packets?.map((p) => p.envelope.id), [offMarker]);
    await b.ack(loginId);
    // Remove on the RPC of the owner's own node; fetch is empty everywhere.
    assert.deepEqual(await n2.blacklist("remove", { from: "a@d", to: "b@d" }), {
      sn: "bl",
      success: true,
    });
    for (const n of [n1, n2]) {
      assert.deepEqual((await n.blacklist("fetch", { to: "b@d" })).entity, []);
    }
    const again = await sendAcked(a, "b@d", "unblocked chat");
    assert.equal((await receive(b)).envelope.id, again);
    await sendGroup(a, "bl", "unblocked group");
    assert.deepEqual(contents([await receive(b)]), ["unblocked group"]);
    assert.deepEqual(contents([await receive(c)]), ["unblocked group"]);
  }
  await offline(n1, "b@d");
  const stored = await sendAcked(a, "b@d", "unblocked offline");
  await storedIs(dbaddr, "b@d", 1);
  const { c: b, delay } = await n1.loginDelay("b@d");
  await using _b = b;
  assert.deepEqual(delay.packets?.map((p) => p.envelope.id), [stored]);
}

/**
 * Blocks and unblocks made on n1's RPC are in force on n2 once the RPC has
 * answered, even for a sender next to the owner on n2: a blocked message is
 * never delivered and the first message after a remove is never dropped.
 */
async function blacklistInForceOnAnswer(n1: Node, n2: Node) {
  await using w = await n2.login("w@d");
  await using o = await n2.login("o@d");
  for (let i = 0; i < 20; i++) {
    assert.equal((await n1.blacklist("append", { from: "w@d", to: "o@d" })).success, true);
    await sendAcked(w, "o@d", `blocked ${i}`);
    assert.equal((await n1.blacklist("remove", { from: "w@d", to: "o@d" })).success, true);
    const id = await sendAcked(w, "o@d", `unblocked ${i}`);
    assert.equal((await receive(o)).envelope.id, id, `round ${i}`);
  }
}

/**
 * Senders on both nodes fill an offline inbox past the cap of 10: the newest
 * 10 come at login on either node, in order, for 1:1 and group copies.
 */
async function capAcrossNodes(n1: Node, n2: Node, cb: CallbackServer) {
  await using s1 = await n1.login("s1@d");
  await using s2 = await n2.login("s2@d");
  const sent: string[] = [];
  for (let i = 0; i < 15; i++) {
    const s = i % 2 === 0 ? s1 : s2;
    sent.push(await sendAcked(s, "r@d", `m${i}`));
  }
  {
    const { c: r, delay, loginId } = await n2.loginDelay("r@d");
    await using _r = r;
    assert.equal(delay.total, CAP);
    assert.deepEqual(delay.packets?.map((p) => p.envelope.id), sent.slice(-CAP));
    await r.ack(loginId);
  }
  cb.groups.set("cap", ["s1", "s2", "r", "q"]);
  await offline(n1, "r@d");
  for (let i = 0; i < 15; i++) await sendGroup(i % 2 === 0 ? s1 : s2, "cap", `g${i}`);
  const want = Array.from({ length: CAP }, (_, i) => `g${i + 15 - CAP}`);
  for (const [n, user] of [[n1, "r@d"], [n2, "q@d"]] as const) {
    const { c: r, delay } = await n.loginDelay(user);
    await using _r = r;
    assert.equal(delay.total, CAP);
    assert.deepEqual(contents(delay.packets), want, `group copies for ${user}`);
    for (const p of delay.packets!) {
      assert.deepEqual([p.envelope.type, p.envelope.gid, p.envelope.to], [2, "cap", user]);
    }
  }
}

/**
 * Senders on both nodes write types 100 (keep first) and 101 (keep last) to
 * an offline user: per sender, the first 100 and the last 101 are kept.
 */
async function policiesAcrossNodes(n1: Node, n2: Node) {
  await using t1 = await n1.login("t1@d");
  await using t2 = await n2.login("t2@d");
  const script: [TestClient, number, string][] = [
    [t1, 100, "t1-first"],
    [t2, 100, "t2-first"],
    [t1, 101, "t1-loc1"],
    [t1, 100, "t1-second"],
    [t2, 101, "t2-loc1"],
    [t1, 1, "t1-chat"],
    [t2, 100, "t2-second"],
    [t1, 101, "t1-loc2"],
    [t2, 101, "t2-loc2"],
  ];
  for (const [c, type, text] of script) await sendAcked(c, "pol@d", text, type);
  const { c: r, delay } = await n1.loginDelay("pol@d");
  await using _r = r;
  assert.deepEqual(contents(delay.packets), [
    "t1-first",
    "t2-first",
    "t1-chat",
    "t1-loc2",
    "t2-loc2",
  ]);
}

/**
 * One sender's mix of packets with and without `ack: 1` (and a group copy)
 * to a recipient on the other node keeps its send order, online and stored.
 */
async function mixedAcksInOrder(n1: Node, n2: Node, cb: CallbackServer, dbaddr: string) {
  cb.groups.set("mix", ["x", "y"]);
  const items = ["1", "2", "3", "g", "4", "5", "6"];
  // Sent in one burst; server acks come for the ack 1 packets and the group message.
  const send = async (x: TestClient) => {
    let acks = 0;
    for (const [i, text] of items.entries()) {
      if (text === "g") {
        const envelope = { id: crypto.randomUUID(), type: 2, from: "x@d", gid: "mix" };
        await x.send({ envelope, payload: { content: text } });
        acks++;
      } else if (i % 2 === 0) {
        await x.chat("y@d", text, { ack: 1 });
        acks++;
      } else {
        await x.chat("y@d", text);
      }
    }
    for (let i = 0; i < acks; i++) assert.equal((await x.nextPacket()).json.envelope.type, 3);
  };
  await using x = await n1.login("x@d");
  {
    await using y = await n2.login("y@d");
    await send(x);
    const got: Packet[] = [];
    while (got.length < items.length) got.push(await receive(y));
    assert.deepEqual(contents(got), items, "online");
  }
  await offline(n1, "y@d");
  await send(x);
  await storedIs(dbaddr, "y@d", items.length);
  const { c: y, delay } = await n1.loginDelay("y@d");
  await using _y = y;
  assert.deepEqual(contents(delay.packets), items, "stored");
}

/**
 * `offline_delivery: "packets"` on both nodes: stored messages follow the
 * login answer as packets, in order; a client acking only `ack: 1` packets
 * (as the Java SDK does) logs in on the other node and gets back only the
 * ack 1 packet it left unacked.
 */
async function packetsModeAcrossNodes(p1: Node, p2: Node, cb: CallbackServer, dbaddr: string) {
  cb.groups.set("pk", ["ps", "pr"]);
  const items = ["1", "2", "g", "3", "4", "5"];
  {
    // pr was last seen on p1.
    await using _pr = await p1.login("pr@d");
  }
  await offline(p2, "pr@d");
  await using ps = await p2.login("ps@d");
  for (const text of items) {
    if (text === "g") await sendGroup(ps, "pk", text);
    else if (Number(text) % 2 === 1) await sendAcked(ps, "pr@d", text);
    else await ps.chat("pr@d", text);
  }
  await storedIs(dbaddr, "pr@d", items.length);
  let unacked = "";
  {
    await using pr = await TestClient.connect(p2.tcp);
    const answer = await pr.login("pr@d");
    assert.deepEqual(answer.json.delay, { total: 0 });
    const got: Packet[] = [];
    for (const _ of items) got.push((await pr.nextPacket()).json);
    assert.deepEqual(contents(got), items);
    const ackable = got.filter((p) => p.envelope.ack === 1);
    assert.deepEqual(contents(ackable), ["1", "g", "3", "5"]);
    // Acks every ack 1 packet but the last, like an SDK cut off mid-way.
    for (const p of ackable.slice(0, -1)) await pr.ack(p.envelope.id as string);
    unacked = ackable.at(-1)!.envelope.id as string;
    await storedIs(dbaddr, "pr@d", 1);
  }
  await offline(p1, "pr@d");
  {
    await using pr = await TestClient.connect(p1.tcp);
    assert.deepEqual((await pr.login("pr@d")).json.delay, { total: 0 });
    const again = await receive(pr);
    assert.deepEqual([again.envelope.id, again.payload?.content], [unacked, "5"]);
    await pr.nothing(200);
    await storedIs(dbaddr, "pr@d", 0);
  }
}

/** The parity steps both topologies (one Redis, Redis Cluster) must pass with two nodes. */
async function parityAcrossNodes(
  t: Deno.TestContext,
  n1: Node,
  n2: Node,
  cb: CallbackServer,
  dbaddr: string,
): Promise<void> {
  await t.step(
    "a blacklist set on one node's RPC applies at once to the owner on the other node; remove restores",
    () => blacklistAcrossNodes(n1, n2, cb, dbaddr),
  );
  await t.step(
    "blacklist changes made on one node's RPC are in force on the other once the RPC answers",
    () => blacklistInForceOnAnswer(n1, n2),
  );
  await t.step(
    "offline_max keeps the newest 10 in order, for 1:1 and group copies from both nodes",
    () => capAcrossNodes(n1, n2, cb),
  );
  await t.step(
    "type 100 keeps the first and type 101 the last per sender, senders on both nodes",
    () => policiesAcrossNodes(n1, n2),
  );
  await t.step(
    "packets with and without ack: 1 keep their send order across nodes, online and stored",
    () => mixedAcksInOrder(n1, n2, cb, dbaddr),
  );
}

Deno.test("two nodes on one Redis: blacklist, offline cap, type 100/101 policies and both offline delivery modes work across nodes", async (t) => {
  await using redis = await startRedis();
  await using cb = CallbackServer.start();
  await using nodes = await startNodes([
    ["n1", parityConf(redis.addr, cb, "delay")],
    ["n2", parityConf(redis.addr, cb, "delay")],
    ["p1", parityConf(redis.addr, cb, "packets")],
    ["p2", parityConf(redis.addr, cb, "packets")],
  ]);
  const [n1, n2, p1, p2] = nodes as unknown as [Node, Node, Node, Node];
  await parityAcrossNodes(t, n1, n2, cb, redis.addr);
  await t.step(
    "offline_delivery packets: a client acking only ack: 1 packets gets the rest on the other node",
    () => packetsModeAcrossNodes(p1, p2, cb, redis.addr),
  );
});

Deno.test("two nodes on a 3-master Redis Cluster: blacklist, offline cap, type 100/101 policies and mixed-ack send order work across nodes", async (t) => {
  await using redis = await startRedisCluster();
  await using cb = CallbackServer.start();
  await using nodes = await startNodes([
    ["n1", parityConf(redis.addr, cb, "delay")],
    ["n2", parityConf(redis.addr, cb, "delay")],
  ]);
  const [n1, n2] = nodes as unknown as [Node, Node];
  await parityAcrossNodes(t, n1, n2, cb, redis.addr);
});
