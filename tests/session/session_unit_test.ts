// A Session built from fakes (no node, no socket): the login steps and what
// the session does while it waits at each of them, in the order a real node
// would produce only by luck of timing.

import assert from "node:assert/strict";
import type { Conn } from "../../src/session/conn.ts";
import { Session, type SessionDeps } from "../../src/session/session.ts";
import { DedupCache } from "../../src/session/dedup.ts";
import { Metrics } from "../../src/metrics/metrics.ts";
import { silentLogger } from "../../src/log.ts";
import type { InboxEntry } from "../../src/store/store.ts";
import type { Recipient } from "../../src/router.ts";
import { parseProm, Scrape } from "../metrics/_prom.ts";
import { deferred } from "../helpers/deferred.ts";
import { LoginThrottle } from "../../src/session/login_throttle.ts";

class FakeConn implements Conn {
  readonly transport = "fake";
  readonly remote = "fake:0";
  readonly sent: string[] = [];
  closed = false;
  send(packet: string): void {
    if (!this.closed) this.sent.push(packet);
  }
  sendHeartbeat(): void {}
  sendKill(): void {}
  close(): void {
    this.closed = true;
  }
  /** The envelope ids and types of what was sent. */
  envelopes(): { id: string; type: number; result?: string }[] {
    return this.sent.map((t) => {
      const p = JSON.parse(t);
      return { id: p.envelope.id, type: p.envelope.type, result: p.entity?.result };
    });
  }
}

function entry(user: string, id: string, from = "s@d"): InboxEntry {
  const packet = JSON.stringify({ envelope: { id, type: 1, from, to: user, ack: 1, ct: 1 } });
  return { user, id, from, type: 1, ct: 1, packet };
}

/** Fakes of everything a session uses, with handles to steer and observe them. */
function fakes(opts: { offline_delivery?: "delay" | "packets" } = {}) {
  const auth = deferred<boolean>();
  const inbox = deferred<InboxEntry[]>();
  const attached: Recipient[] = [];
  const detached: Recipient[] = [];
  const removed: string[] = [];
  const delivered: InboxEntry[] = [];
  const metrics = new Metrics();
  const deps: SessionDeps = {
    config: {
      nodeid: "n1",
      login_timeout: 10,
      idle_timeout: 100,
      rate_limit: 1000,
      offline_delivery: opts.offline_delivery ?? "delay",
      max_conns: 10,
      max_packet: 65536,
    },
    log: silentLogger(),
    store: {
      inbox: () => inbox.promise,
      recentIds: () => Promise.resolve([]),
      blacklist: () => Promise.resolve([]),
    },
    writer: {
      settled: () => Promise.resolve(),
      remove: (_user, id) => void removed.push(id),
      sent: () => {},
    },
    router: {
      attach: (s) => {
        attached.push(s);
        return Promise.resolve();
      },
      detach: (s) => void detached.push(s),
      deliver: (e) => {
        delivered.push(e);
        return Promise.resolve();
      },
    },
    dedup: new DedupCache(10),
    auth: () => auth.promise,
    logins: new LoginThrottle(silentLogger()),
    groups: () => Promise.resolve(null),
    sessions: new Set(),
    metrics,
  };
  const closedBy = async (reason: string) =>
    new Scrape(parseProm((await metrics.render()).text))
      .get("sara_sessions_closed_total", { reason }, 0);
  return { deps, auth, inbox, attached, detached, removed, delivered, closedBy };
}

const turns = async (n = 3) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setTimeout(r, 0));
};

/** A session of a@d whose login passed auth: it now waits for the inbox read. */
async function authenticated() {
  const f = fakes();
  const conn = new FakeConn();
  const s = new Session(conn, f.deps);
  s.packet(login("l1", "a@d"));
  f.auth.resolve(true);
  await turns();
  return { f, conn, s };
}

const login = (id: string, jid: string) => JSON.stringify({ envelope: { id, type: 0, jid } });
const chat = (id: string, from: string, to: string) =>
  JSON.stringify({ envelope: { id, type: 1, from, to, ack: 1 }, payload: {} });

Deno.test("a login walks awaiting_login, awaiting_auth, awaiting_inbox, open; packets sent meanwhile run after it, in order", async () => {
  const f = fakes();
  const conn = new FakeConn();
  const s = new Session(conn, f.deps);
  assert.equal(s.state, "awaiting_login");
  s.packet(login("l1", "a@d"));
  assert.equal(s.state, "awaiting_auth");
  s.packet(chat("m1", "a@d", "b@d"));
  s.packet(chat("m2", "a@d", "b@d"));
  assert.equal(f.delivered.length, 0, "nothing routed before the login");
  f.auth.resolve(true);
  await turns();
  assert.equal(s.state, "awaiting_inbox");
  assert.deepEqual(f.attached, [s]);
  f.inbox.resolve([]);
  await turns();
  assert.equal(s.state, "open");
  assert.deepEqual(conn.envelopes()[0], { id: "l1", type: 0, result: "ok" });
  assert.deepEqual(f.delivered.map((e) => e.id), ["m1", "m2"]);
});

Deno.test("live messages arriving while the inbox is read are held, then sent after the stored ones without repeats", async () => {
  const { f, conn, s } = await authenticated();
  assert.equal(s.state, "awaiting_inbox");
  assert.equal(s.push(entry("a@d", "live1")), true);
  assert.equal(s.push(entry("a@d", "stored1")), true, "also in the inbox read");
  assert.deepEqual(conn.sent, [], "held, not written before the login answer");
  f.inbox.resolve([entry("a@d", "stored1")]);
  await turns();
  const [answer, ...rest] = conn.sent.map((t) => JSON.parse(t));
  assert.equal(answer.delay.packets[0].envelope.id, "stored1");
  assert.deepEqual(rest.map((p) => p.envelope.id), ["live1"]);
});

Deno.test("the ack of the login id removes the stored packets of the login answer, once", async () => {
  const f = fakes();
  const conn = new FakeConn();
  const s = new Session(conn, f.deps);
  s.packet(login("l1", "a@d"));
  f.auth.resolve(true);
  f.inbox.resolve([entry("a@d", "s1"), entry("a@d", "s2")]);
  await turns();
  assert.equal(s.state, "open");
  const ack = (id: string) => JSON.stringify({ envelope: { id, type: 3, to: "server_ack" } });
  s.packet(ack("l1"));
  assert.deepEqual(f.removed, ["s1", "s2"]);
  s.packet(ack("l1"));
  assert.deepEqual(f.removed, ["s1", "s2", "l1"], "a second ack is an ordinary ack");
});

Deno.test("a store failure during the inbox read fails the login and detaches the session exactly once", async () => {
  const { f, conn, s } = await authenticated();
  f.inbox.reject(new Error("store down"));
  await turns();
  assert.equal(s.state, "closed");
  assert.deepEqual(conn.envelopes(), [{ id: "l1", type: 0, result: "error" }]);
  assert.deepEqual(f.detached, [s]);
  s.closed(); // the transport reports the close it was asked for
  assert.deepEqual(f.detached, [s]);
  assert.equal(await f.closedBy("login_failed"), 1);
  assert.equal(await f.closedBy("connection_closed"), 0, "counted once, under the first reason");
});

Deno.test("a connection lost while the auth answer is pending never registers and is counted as connection_closed", async () => {
  const f = fakes();
  const conn = new FakeConn();
  const s = new Session(conn, f.deps);
  s.packet(login("l1", "a@d"));
  s.closed();
  f.auth.resolve(true);
  await turns();
  assert.equal(s.state, "closed");
  assert.deepEqual(f.attached, []);
  assert.deepEqual(f.detached, [], "never attached: nothing to detach");
  assert.equal(f.deps.sessions.size, 0);
  assert.equal(await f.closedBy("connection_closed"), 1);
});
