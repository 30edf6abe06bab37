// Seeded fuzzing of the session core (issue 6.5) through a fake Conn on a
// real node's core: random bytes, truncated and mutated packets, odd field
// types, deep JSON. Whatever comes in, the server answers well-formed packets,
// routes nothing under a `from` other than the sender's, and keeps working.

import assert from "node:assert/strict";
import type { Conn } from "../../src/session/conn.ts";
import { openSession, type Session } from "../../src/session/session.ts";
import { bareJid } from "../../src/protocol/packet.ts";
import { groupKey } from "../../src/session/groups.ts";
import { startTestServer } from "../helpers/server.ts";
import { TestClient } from "../helpers/client.ts";
import { deepJson, mutate, Prng, SEED } from "./_prng.ts";

const RUNS = Number(Deno.env.get("SARA_FUZZ_RUNS") ?? 300);
const dec = new TextDecoder();

/** Records what the core sends to one connection. */
class FakeConn implements Conn {
  readonly transport = "fuzz";
  readonly remote = "fuzz:0";
  readonly sent: string[] = [];
  kills = 0;
  closed = false;
  send(packet: string): void {
    if (!this.closed) this.sent.push(packet);
  }
  sendHeartbeat(): void {}
  sendKill(): void {
    this.kills++;
  }
  close(): void {
    this.closed = true;
  }
}

type Json = { envelope: Record<string, unknown>; [k: string]: unknown };

function loginText(id: string, jid: string): string {
  return JSON.stringify({ envelope: { id, type: 0, jid, pwd: "p" }, vsn: "0.0.1" });
}

/** Mostly `good`, sometimes one of the odd values. */
function mostly<T>(rng: Prng, good: T, odd: readonly unknown[]): unknown {
  return rng.chance(0.75) ? good : rng.pick(odd);
}

function messageText(rng: Prng, me: string): string {
  const envelope = {
    id: mostly(rng, `m${rng.int(40)}`, [rng.text(10), 5, null, undefined]),
    type: mostly(rng, rng.pick([1, 1, 1, 2, 4, 7, 100]), [0, 3, "1", -1, 1.5, "x", undefined]),
    from: mostly(rng, rng.pick([me, `${me}/res`]), ["other@d", "r@d", undefined, 42, "bad jid"]),
    to: mostly(rng, "r@d", ["server_ack", "nobody@d", "bad", undefined, 7, me]),
    ack: mostly(rng, 1, [0, "1", true, undefined, {}]),
    gid: mostly(rng, "g", ["nogroup", "", undefined, 3]),
  };
  const payload = rng.chance(0.05)
    ? JSON.parse(deepJson(1 + rng.int(5000), rng.chance(0.5)))
    : { content: rng.text(30) };
  return JSON.stringify({ envelope, payload, vsn: "0.0.1" });
}

/** One input for a session: text for `packet()`, or a transport event. */
function input(rng: Prng, me: string): string | "heartbeat" | "oversize" {
  const valid = messageText(rng, me);
  // Non-JSON closes the session (docs/protocol.md §2), so it is kept rare enough for
  // sessions to live through several packets.
  const r = rng.next();
  if (r < 0.04) return dec.decode(rng.bytes(rng.int(100)));
  if (r < 0.08) return valid.slice(0, rng.int(valid.length));
  if (r < 0.2) return mutate(rng, valid);
  if (r < 0.25) return loginText(rng.text(5), me);
  if (r < 0.3) return "heartbeat";
  if (r < 0.31) return "oversize";
  return valid;
}

/** Every packet the server writes is a JSON object with an object envelope and a string id. */
function wellFormed(text: string): Json {
  const p = JSON.parse(text) as Json;
  assert.equal(typeof p.envelope, "object", text);
  assert.ok(p.envelope !== null && !Array.isArray(p.envelope), text);
  assert.equal(typeof p.envelope.id, "string", text);
  return p;
}

const turns = async (n: number) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setTimeout(r, 0));
};

Deno.test(`the session core survives random, truncated and mutated packets and never routes a spoofed from (seed ${SEED}, ${RUNS} runs)`, async () => {
  await using srv = await startTestServer();
  const core = srv.server.core;
  const rng = new Prng(SEED + 10);
  let recipient = new FakeConn();
  let rSession: Session | null = null;
  const loginRecipient = () => {
    recipient = new FakeConn();
    rSession = openSession(recipient, core)!;
    rSession.packet(loginText("lr", "r@d"));
  };
  loginRecipient();
  await turns(2);
  const everLoggedIn = new Set<string>(["r@d"]);
  let delivered = 0;

  for (let run = 0; run < RUNS; run++) {
    const me = `f${run}@d`;
    await core.store.setGroupMembers(groupKey("g", "d"), ["r", `f${run}`], 3600);
    const conn = new FakeConn();
    const s = openSession(conn, core)!;
    if (rng.chance(0.8)) s.packet(loginText(`l${run}`, me));
    const before = recipient.sent.length;
    for (let i = 1 + rng.int(20); i > 0 && !conn.closed; i--) {
      const x = input(rng, me);
      if (x === "heartbeat") s.heartbeat();
      else if (x === "oversize") s.oversize();
      else s.packet(x);
    }
    await turns(2);
    await core.writer.drain();
    await turns(2);
    const loggedIn = s.state === "open" || conn.sent.some((t) => t.includes('"result":"ok"'));
    if (loggedIn) everLoggedIn.add(me);

    for (const text of conn.sent) {
      const p = wellFormed(text);
      if (p.envelope.type === 0 && Array.isArray((p.delay as { packets?: unknown })?.packets)) {
        for (const d of (p.delay as { packets: Json[] }).packets) {
          assert.ok(everLoggedIn.has(bareJid(d.envelope.from)!), JSON.stringify(d));
        }
      }
      // Anything forwarded to this session during its run was its own.
      if (p.envelope.from !== undefined) assert.equal(bareJid(p.envelope.from), me, text);
    }
    for (const text of recipient.sent.slice(before)) {
      const p = wellFormed(text);
      assert.equal(bareJid(p.envelope.from), me, `run ${run}: ${text}`);
      assert.ok(loggedIn, `run ${run}: routed for a session that never logged in`);
      delivered++;
    }
    s.close();
    if (recipient.kills > 0 || recipient.closed) loginRecipient();
    await turns(1);
  }
  // Fuzzing that never routes anything would prove little.
  assert.ok(delivered > RUNS / 4, `only ${delivered} deliveries`);
  rSession!.close();

  // The node still serves real clients.
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  const id = await a.chat("b@d", "still alive", { ack: 1 });
  assert.equal((await b.nextPacket()).json.envelope.id, id);
});
