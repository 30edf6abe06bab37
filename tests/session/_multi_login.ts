// The multi_login behaviours (docs/multi-login.md), written
// once against a topology: one node, or two nodes on Redis where device i
// logs in on node i % 2. Every step goes over real sockets.

import assert from "node:assert/strict";
import { TestClient } from "../helpers/client.ts";
import { rpc } from "../helpers/rpc_client.ts";
import type { TestServer } from "../helpers/server.ts";
import { groupKey } from "../../src/session/groups.ts";
import { until } from "../cluster/_redis.ts";

/** Nodes to log devices in on; device i goes to `nodes[i % nodes.length]`. */
export interface Topology {
  nodes: TestServer[];
  /** The RPC token of every node. */
  token: string;
}

type Delay = { total: number; packets?: { envelope: Record<string, unknown> }[] };

/** Logs `jid` (with its resource) in on the node of device `i`. */
export async function device(t: Topology, i: number, jid: string) {
  return await TestClient.login(t.nodes[i % t.nodes.length]!.port, jid);
}

async function call(t: Topology, method: string, params: unknown) {
  const body = { sn: "1", service: "emsg_session", method, params, token: t.token };
  return (await rpc(t.nodes[0]!.rpcPort, body)).json;
}

/** The sessions `emsg_session.sessions` lists for `uid`, by resource. */
export async function sessionsOf(t: Topology, uid: string) {
  const a = await call(t, "sessions", { uid });
  assert.equal(a.success, true);
  const list = a.entity as { resource: string; node: string; since: number }[];
  return list.sort((x, y) => x.resource.localeCompare(y.resource));
}

/** Waits until `uid` has exactly `n` sessions listed (a logout ends asynchronously). */
export async function untilSessions(t: Topology, uid: string, n: number) {
  // A bound in time, not in tries: on a loaded machine each RPC round takes longer.
  await until(`${uid} has ${n} sessions`, async () => (await sessionsOf(t, uid)).length === n);
}

export async function bareJidReachesEveryDevice(t: Topology) {
  await using a = (await device(t, 0, "a@d")).client;
  await using phone = (await device(t, 0, "b@d/phone")).client;
  await using desk = (await device(t, 1, "b@d/desk")).client;
  await untilSessions(t, "b@d", 2);
  const id = await a.chat("b@d", "to all", { ack: 1 });
  for (const c of [phone, desk]) {
    const got = (await c.nextPacket()).json;
    assert.equal(got.envelope.id, id);
    assert.deepEqual(got.payload, { content: "to all" });
    assert.equal(got.envelope.carbon, undefined, "a delivery is not a carbon");
  }
  // Safe once one device acks it.
  await phone.ack(id);
  const ack = (await a.nextPacket()).json;
  assert.deepEqual([ack.envelope.id, ack.envelope.type], [id, 3]);
}

export async function eachDeviceGetsOneSendersPacketsInOrder(t: Topology) {
  await using a = (await device(t, 0, "a@d")).client;
  await using phone = (await device(t, 0, "b@d/phone")).client;
  await using desk = (await device(t, 1, "b@d/desk")).client;
  await untilSessions(t, "b@d", 2);
  const sent: string[] = [];
  // Bare and full JIDs mixed: the full-JID ones go to one device only.
  for (let i = 0; i < 60; i++) {
    const to = i % 10 === 3 ? "b@d/desk" : "b@d";
    sent.push(await a.chat(to, `m${i}`, { ack: i % 2 }));
  }
  const forPhone = sent.filter((_, i) => i % 10 !== 3);
  const got = async (c: TestClient, n: number) => {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) ids.push((await c.nextPacket()).json.envelope.id as string);
    return ids;
  };
  assert.deepEqual(await got(phone, forPhone.length), forPhone);
  assert.deepEqual(await got(desk, sent.length), sent);
  await phone.nothing(200);
}

export async function fullJidReachesOnlyThatDevice(t: Topology) {
  await using a = (await device(t, 0, "a@d")).client;
  await using phone = (await device(t, 1, "b@d/phone")).client;
  await using desk = (await device(t, 0, "b@d/desk")).client;
  await untilSessions(t, "b@d", 2);
  // Both ways round: the named device on the sender's node and on the other one.
  for (const [to, yes, no] of [["b@d/phone", phone, desk], ["b@d/desk", desk, phone]] as const) {
    const id = await a.chat(to, `only ${to}`, { ack: 1 });
    assert.equal((await yes.nextPacket()).json.envelope.id, id);
    await no.nothing(300);
    await yes.ack(id);
    assert.equal((await a.nextPacket()).json.envelope.id, id);
  }
}

export async function fullJidNotOnlineGoesToEveryDevice(t: Topology) {
  await using a = (await device(t, 0, "a@d")).client;
  await using phone = (await device(t, 0, "b@d/phone")).client;
  await using desk = (await device(t, 1, "b@d/desk")).client;
  await untilSessions(t, "b@d", 2);
  const id = await a.chat("b@d/tablet", "no tablet", { ack: 1 });
  assert.equal((await phone.nextPacket()).json.envelope.id, id);
  assert.equal((await desk.nextPacket()).json.envelope.id, id);
}

export async function sendersOtherDevicesGetTheCarbon(t: Topology) {
  await using b = (await device(t, 0, "b@d")).client;
  await using desk = (await device(t, 0, "a@d/desk")).client;
  await using phone = (await device(t, 1, "a@d/phone")).client;
  await untilSessions(t, "a@d", 2);
  const id = await desk.chat("b@d", "hi", { ack: 1 });
  const got = (await b.nextPacket()).json;
  assert.equal(got.envelope.carbon, undefined, "the recipient's copy has no carbon field");
  const carbon = (await phone.nextPacket()).json;
  assert.equal(carbon.envelope.id, id);
  assert.equal(carbon.envelope.carbon, true);
  assert.equal(carbon.envelope.to, "b@d");
  assert.equal(carbon.envelope.from, "a@d/desk");
  assert.deepEqual(carbon.payload, { content: "hi" });
  assert.equal(carbon.envelope.ct, got.envelope.ct, "the same packet, stamped once");
  // The sending device gets its server ack, not a carbon of its own packet.
  assert.deepEqual((await desk.nextPacket()).json.envelope, { id, type: 3, ct: got.envelope.ct });
  await desk.nothing(200);
}

export async function sameResourceReplacesOnlyThatSession(t: Topology) {
  await using a = (await device(t, 0, "a@d")).client;
  await using phone = (await device(t, 0, "b@d/phone")).client;
  await using desk = (await device(t, 1, "b@d/desk")).client;
  await untilSessions(t, "b@d", 2);
  // The new phone logs in on the other node than the old one.
  await using phone2 = (await device(t, 1, "b@d/phone")).client;
  const rest = await phone.closedByServer();
  assert.deepEqual(rest.map((r) => r.kind), ["kill"]);
  await untilSessions(t, "b@d", 2);
  const id = await a.chat("b@d", "after", { ack: 1 });
  assert.equal((await phone2.nextPacket()).json.envelope.id, id);
  assert.equal((await desk.nextPacket()).json.envelope.id, id, "desk kept its session");
}

export async function sessionBeyondMaxKicksTheOldest(t: Topology) {
  const devices: TestClient[] = [];
  try {
    for (let i = 0; i < 5; i++) {
      devices.push((await device(t, i, `b@d/r${i}`)).client);
      // Logins a few ms apart, so "oldest" is unambiguous.
      await untilSessions(t, "b@d", i + 1);
    }
    devices.push((await device(t, 5, "b@d/r5")).client);
    const rest = await devices[0]!.closedByServer();
    assert.deepEqual(rest.map((r) => r.kind), ["kill"]);
    await untilSessions(t, "b@d", 5);
    assert.deepEqual((await sessionsOf(t, "b@d")).map((s) => s.resource), [
      "r1",
      "r2",
      "r3",
      "r4",
      "r5",
    ]);
    for (const c of devices.slice(1)) assert.equal(c.closed, false);
  } finally {
    for (const c of devices) await c.close();
  }
}

export async function storedUntilADeviceLogsInWhenAllAreGone(t: Topology) {
  await using a = (await device(t, 0, "a@d")).client;
  const phone = (await device(t, 0, "b@d/phone")).client;
  const desk = (await device(t, 1, "b@d/desk")).client;
  await untilSessions(t, "b@d", 2);
  await phone.close();
  await desk.close();
  await untilSessions(t, "b@d", 0);
  const id1 = await a.chat("b@d", "one", { ack: 1 });
  const id2 = await a.chat("b@d/phone", "two", { ack: 1 });
  // Both are safe (stored) with no device online.
  assert.equal((await a.nextPacket()).json.envelope.id, id1);
  assert.equal((await a.nextPacket()).json.envelope.id, id2);
  // The first device to log in gets them, oldest first, whichever resource.
  const { client: tablet, answer } = await device(t, 1, "b@d/tablet");
  await using _t = tablet;
  const delay = answer.json.delay as Delay;
  assert.deepEqual(delay.packets?.map((p) => p.envelope.id), [id1, id2]);
  await tablet.ack(answer.json.envelope.id as string);
  // The ack is still on its way over the socket when ack() returns: wait
  // until the tablet's node has removed both (a bound in time, not in tries).
  const tabletNode = t.nodes[1 % t.nodes.length]!.server.core;
  await until("the tablet's ack removes both stored packets", async () => {
    await tabletNode.writer.drain();
    return (await tabletNode.store.inbox("b@d")).length === 0;
  });
  // Acked by that device: a later device finds nothing waiting.
  const { client: laptop, answer: later } = await device(t, 0, "b@d/laptop");
  await using _l = laptop;
  assert.deepEqual(later.json.delay, { total: 0 });
}

export async function unackedStaysForTheNextDevice(t: Topology) {
  await using a = (await device(t, 0, "a@d")).client;
  const phone = (await device(t, 1, "b@d/phone")).client;
  await untilSessions(t, "b@d", 1);
  const id = await a.chat("b@d", "not acked", { ack: 1 });
  assert.equal((await phone.nextPacket()).json.envelope.id, id);
  // Not acked: the server ack comes once it is written.
  assert.equal((await a.nextPacket()).json.envelope.id, id);
  await phone.close();
  await untilSessions(t, "b@d", 0);
  const { client: desk, answer } = await device(t, 0, "b@d/desk");
  await using _d = desk;
  assert.deepEqual((answer.json.delay as Delay).packets?.map((p) => p.envelope.id), [id]);
}

export async function isonlineWhileAnyDeviceIs(t: Topology) {
  const online = async () => (await call(t, "isonline", { jid: "b@d" })).success;
  assert.equal(await online(), false);
  const phone = (await device(t, 0, "b@d/phone")).client;
  const desk = (await device(t, 1, "b@d/desk")).client;
  await untilSessions(t, "b@d", 2);
  const list = await sessionsOf(t, "b@d");
  assert.deepEqual(list.map((s) => s.resource), ["desk", "phone"]);
  const nodeOf = (i: number) => t.nodes[i % t.nodes.length]!.config.nodeid;
  assert.deepEqual(list.map((s) => s.node), [nodeOf(1), nodeOf(0)]);
  for (const s of list) {
    assert.ok(Math.abs(Date.now() - s.since) < 60_000, "since is ms since epoch");
  }
  assert.equal(await online(), true);
  await phone.close();
  await untilSessions(t, "b@d", 1);
  assert.equal(await online(), true, "desk is still online");
  await desk.close();
  await untilSessions(t, "b@d", 0);
  assert.equal(await online(), false);
}

export async function groupCopiesReachEverySessionOfEveryMember(t: Topology) {
  await t.nodes[0]!.server.core.store.setGroupMembers(groupKey("g1", "d"), ["a", "b", "c"], 60);
  await using desk = (await device(t, 0, "a@d/desk")).client;
  await using aPhone = (await device(t, 1, "a@d/phone")).client;
  await using b1 = (await device(t, 0, "b@d/1")).client;
  await using b2 = (await device(t, 1, "b@d/2")).client;
  await using c = (await device(t, 1, "c@d/1")).client;
  for (const [u, n] of [["a@d", 2], ["b@d", 2], ["c@d", 1]] as const) await untilSessions(t, u, n);
  const id = "g-msg-1";
  await desk.send({
    envelope: { id, type: 2, from: "a@d/desk", gid: "g1", ack: 1 },
    payload: { content: "to the group" },
  });
  const copies = [];
  for (const member of [b1, b2, c]) {
    const got = (await member.nextPacket()).json;
    assert.equal(got.envelope.gid, "g1");
    assert.deepEqual(got.payload, { content: "to the group" });
    copies.push(got.envelope);
  }
  assert.equal(copies[0]!.id, copies[1]!.id, "one copy per member, the same on each device");
  assert.notEqual(copies[0]!.id, copies[2]!.id);
  const carbon = (await aPhone.nextPacket()).json;
  assert.deepEqual([carbon.envelope.id, carbon.envelope.gid, carbon.envelope.carbon], [
    id,
    "g1",
    true,
  ]);
  // Acked by one device of each member: the group message is safe.
  await b2.ack(copies[0]!.id as string);
  await c.ack(copies[2]!.id as string);
  assert.deepEqual((await desk.nextPacket()).json.envelope.id, id);
}

export async function kickRpcNamesOneResourceOrAll(t: Topology) {
  const phone = (await device(t, 0, "b@d/phone")).client;
  const desk = (await device(t, 1, "b@d/desk")).client;
  const tab = (await device(t, 2, "b@d/tab")).client;
  try {
    await untilSessions(t, "b@d", 3);
    const one = await call(t, "kick", { uid: "b@d", resource: "desk" });
    assert.deepEqual([one.success, one.entity], [true, { kicked: 1 }]);
    assert.deepEqual((await desk.closedByServer()).map((r) => r.kind), ["kill"]);
    await untilSessions(t, "b@d", 2);
    assert.equal(phone.closed, false);
    const all = await call(t, "kick", { uid: "b@d" });
    assert.deepEqual(all.entity, { kicked: 2 });
    for (const c of [phone, tab]) await c.closedByServer();
    await untilSessions(t, "b@d", 0);
    const none = await call(t, "kick", { uid: "b@d" });
    assert.deepEqual([none.success, none.entity], [false, { kicked: 0 }]);
  } finally {
    for (const c of [phone, desk, tab]) await c.close();
  }
}

/** Every behaviour above, by test name. */
export const SCENARIOS: [string, (t: Topology) => Promise<void>][] = [
  ["two resources online together both get a packet to the bare jid", bareJidReachesEveryDevice],
  ["each device gets one sender's packets in order", eachDeviceGetsOneSendersPacketsInOrder],
  ["a packet to a full jid reaches only that resource", fullJidReachesOnlyThatDevice],
  ["a full jid that is not online is delivered as the bare jid", fullJidNotOnlineGoesToEveryDevice],
  ["the sender's other session gets the carbon", sendersOtherDevicesGetTheCarbon],
  [
    "a second login with the same resource kills only that session",
    sameResourceReplacesOnlyThatSession,
  ],
  ["the 6th session kicks the oldest", sessionBeyondMaxKicksTheOldest],
  [
    "stored while every device is gone, for the first device to log in",
    storedUntilADeviceLogsInWhenAllAreGone,
  ],
  ["a packet no device acked waits for the next login", unackedStaysForTheNextDevice],
  ["emsg_session.kick kicks one resource, or every session", kickRpcNamesOneResourceOrAll],
  ["group messages reach every session of every member", groupCopiesReachEverySessionOfEveryMember],
  ["isonline is true while any session is online; sessions lists them", isonlineWhileAnyDeviceIs],
];
