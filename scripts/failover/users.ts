// The users of a failover run: each is logged in on one sara node and sends
// to users of the other nodes, as the SDKs do: every message keeps its id
// until the server acks it; a `store_error` notice makes it wait and go again
// (same id, in send order, nothing newer to that recipient meanwhile); a lost
// connection resends everything unacked after the next login. As recipients
// they ack every message and record when each first arrived.

import { BenchConn } from "../../src/bench/conn.ts";
import type { Ledger } from "../../src/bench/ledger.ts";
import { ackPacket, chatPacket } from "../../src/bench/packets.ts";
import { pause } from "../fault/context.ts";

/** A store_error'd message goes again after this long. */
const RETRY_MS = 200;
/** A message with no answer at all goes again after this long (an SDK's timeout). */
const UNANSWERED_MS = 5000;

/** Load knobs. */
export interface LoadOptions {
  users: number;
  /** Messages per second per user. */
  rate: number;
  /** Unacked messages a user may have before it waits. */
  window: number;
}

/** A first receipt: when message `seq` of `stream` first reached its recipient. */
export interface Receipt {
  stream: number;
  seq: number;
  at: number;
  /** It came with the final login of the drain, not live. */
  relogin: boolean;
  /** It came in a login answer (any login), not as a live packet. */
  inLogin: boolean;
  /** When the sending node accepted it (its `ct`), on this clock; NaN without one. */
  acceptedAt: number;
  /** The recipient's login it came on (1 = the first). */
  login: number;
}

/** A server ack: of message `seq` of `stream` to `recipient`, first sent at `sentAt`. */
export interface AckRecord {
  stream: number;
  seq: number;
  recipient: number;
  sentAt: number;
  at: number;
  /** store_error notices it got before the ack. */
  refusals: number;
  /** Times it was sent (resends after a new login or a timeout included). */
  sends: number;
}

/** What the users share. */
export class Load {
  readonly receipts: Receipt[] = [];
  readonly acks: AckRecord[] = [];
  /** Messages refused with store_error at least once, as `stream * 2 ** 24 + seq`. */
  readonly refused = new Set<number>();
  readonly notices = new Map<string, number>();
  readonly loginFailures = new Map<string, number>();
  sending = true;
  /** Receipts now are the final login's. */
  final = false;
  done = false;
  unexpected = 0;
  retries = 0;
  /** Duplicates received before the final login (the rest came with it). */
  duplicatesLive = 0;

  constructor(
    readonly ledger: Ledger,
    readonly opts: LoadOptions,
    /** Port of node `i` (users are spread over them in turn). */
    readonly nodePorts: number[],
  ) {
    for (let s = 0; s < opts.users; s++) {
      for (let r = 0; r < opts.users; r++) ledger.addReceiver(ledger.addStream());
    }
  }

  stream(s: number, r: number): number {
    return s * this.opts.users + r;
  }

  /** Sender and recipient of a stream. */
  pair(stream: number): [number, number] {
    return [Math.floor(stream / this.opts.users), stream % this.opts.users];
  }

  count(map: Map<string, number>, key: string): void {
    map.set(key, (map.get(key) ?? 0) + 1);
  }
}

interface Pending {
  text: string;
  stream: number;
  seq: number;
  recipient: number;
  sentAt: number;
  lastSent: number;
  /** Refused with store_error and not sent again yet; goes again at `retryAt`. */
  failed: boolean;
  retryAt: number;
  /** Refused at least once: its recipient is held until it is acked. */
  refused: boolean;
  refusals: number;
  sends: number;
}

/** One user `u<index>@failover`. */
export class User {
  readonly jid: string;
  readonly node: number;
  /** Users on other nodes: the recipients of this one's messages. */
  readonly peers: number[];
  // Insertion order is send order: resends keep it.
  readonly #pending = new Map<string, Pending>();
  /** Recipients with a refused message still unacked: nothing newer goes to them. */
  readonly #held = new Map<number, number>();
  #conn: BenchConn | null = null;
  #credit = 0;
  #logins = 0;
  loginsDone = 0;

  constructor(readonly index: number, readonly load: Load) {
    const nodes = load.nodePorts.length;
    this.jid = jidOf(index);
    this.node = index % nodes;
    this.peers = [];
    for (let r = 0; r < load.opts.users; r++) if (r % nodes !== this.node) this.peers.push(r);
  }

  get unacked(): number {
    return this.#pending.size;
  }

  /** Logs in on its node again and again until the run is done. */
  async run(): Promise<void> {
    const { load } = this;
    while (!load.done) {
      let conn: BenchConn;
      try {
        conn = await BenchConn.connect({
          host: "127.0.0.1",
          port: load.nodePorts[this.node]!,
          timeoutMs: 3000,
        });
      } catch {
        load.count(load.loginFailures, "connect");
        await pause(100, 300);
        continue;
      }
      const closed = new Promise<void>((r) => conn.onClose = r);
      // Live packets right behind the login answer wait for its stored batch.
      let early: string[] | null = [];
      conn.onPacket = (text) => early ? early.push(text) : this.#packet(conn, text);
      const loginId = `${this.jid}-login-${++this.#logins}`;
      try {
        const answer = await conn.login(this.jid, "pwd", loginId);
        if (!answer.ok) throw new Error(answer.reason);
        for (const p of answer.packets) this.#message(conn, p as Packet, true);
        for (const text of early) this.#packet(conn, text);
        early = null;
      } catch (err) {
        load.count(load.loginFailures, (err as Error).message);
        conn.destroy();
        await pause(100, 300);
        continue;
      }
      conn.send(ackPacket(loginId, this.jid));
      this.loginsDone++;
      const now = performance.now();
      for (const m of this.#pending.values()) {
        m.lastSent = now;
        m.failed = false;
        m.sends++;
        conn.send(m.text);
      }
      this.#conn = conn;
      await closed;
      this.#conn = null;
      if (!load.done) await pause(20, 200);
    }
  }

  /** Sends what `dtMs` of rate allows within the window; resends what is due. */
  tick(dtMs: number, now: number): void {
    const conn = this.#conn;
    if (!conn) return;
    for (const m of this.#pending.values()) {
      const due = m.failed ? now >= m.retryAt : now - m.lastSent >= UNANSWERED_MS;
      if (!due) continue;
      m.failed = false;
      m.lastSent = now;
      m.sends++;
      this.load.retries++;
      conn.send(m.text);
    }
    if (!this.load.sending) return;
    const { opts, ledger } = this.load;
    this.#credit = Math.min(this.#credit + opts.rate * dtMs / 1000, opts.window);
    while (this.#credit >= 1 && this.#pending.size < opts.window) {
      this.#credit--;
      const r = this.peers[Math.floor(Math.random() * this.peers.length)]!;
      if (this.#held.has(r)) continue;
      const stream = this.load.stream(this.index, r);
      const seq = ledger.send(stream, now);
      const id = `${this.index}.${r}.${seq}`;
      const text = chatPacket(id, this.jid, jidOf(r), "x");
      this.#pending.set(id, {
        text,
        stream,
        seq,
        recipient: r,
        sentAt: now,
        lastSent: now,
        failed: false,
        retryAt: 0,
        refused: false,
        refusals: 0,
        sends: 1,
      });
      conn.send(text);
    }
  }

  /** Drops the connection so that the loop logs in again (the final login). */
  relogin(): void {
    this.#conn?.destroy();
  }

  stop(): void {
    this.#conn?.destroy();
  }

  #packet(conn: BenchConn, text: string): void {
    let p: Packet;
    try {
      p = JSON.parse(text);
    } catch {
      this.load.unexpected++;
      return;
    }
    const env = p.envelope;
    if (env?.type === 3 && env.from === undefined && typeof env.id === "string") {
      this.#acked(env.id);
    } else if (env?.type === 4) {
      const reason = String(p.entity?.reason);
      this.load.count(this.load.notices, reason);
      const m = typeof env.id === "string" ? this.#pending.get(env.id) : undefined;
      if (m && !m.failed) {
        m.failed = true;
        m.retryAt = performance.now() + RETRY_MS;
        if (!m.refused) this.#held.set(m.recipient, (this.#held.get(m.recipient) ?? 0) + 1);
        m.refused = true;
        m.refusals++;
        this.load.refused.add(msgKey(m.stream, m.seq));
      }
    } else this.#message(conn, p);
  }

  #acked(id: string): void {
    const m = this.#pending.get(id);
    // A second ack (of a resent message) finds nothing: fine.
    if (!m) return;
    this.#pending.delete(id);
    const held = this.#held.get(m.recipient);
    if (m.refused && held !== undefined) {
      if (held <= 1) this.#held.delete(m.recipient);
      else this.#held.set(m.recipient, held - 1);
    }
    this.load.ledger.ack(m.stream, m.seq);
    this.load.acks.push({
      stream: m.stream,
      seq: m.seq,
      recipient: m.recipient,
      sentAt: m.sentAt,
      at: performance.now(),
      refusals: m.refusals,
      sends: m.sends,
    });
  }

  #message(conn: BenchConn, p: Packet, inLogin = false): void {
    const env = p.envelope;
    const parts = typeof env?.id === "string" ? env.id.split(".") : [];
    const [s, r, seq] = parts.map(Number);
    if (parts.length !== 3 || s === undefined || r !== this.index || seq === undefined) {
      this.load.unexpected++;
      return;
    }
    const stream = this.load.stream(s, r);
    if (this.load.ledger.receive(stream, seq)) {
      this.load.receipts.push({
        stream,
        seq,
        at: performance.now(),
        relogin: this.load.final,
        inLogin,
        acceptedAt: performance.now() - (Date.now() - Number(env?.ct)),
        login: this.#logins,
      });
    }
    if (env?.ack === 1) conn.send(ackPacket(String(env.id), this.jid));
  }
}

type Packet = {
  envelope?: { id?: unknown; type?: unknown; from?: unknown; ack?: unknown; ct?: unknown };
  entity?: { reason?: unknown };
};

/** One number per message of a run. */
export function msgKey(stream: number, seq: number): number {
  return stream * 2 ** 24 + seq;
}

/** The jid of user `i`. */
export function jidOf(i: number): string {
  return `u${i}@failover`;
}
