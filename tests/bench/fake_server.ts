// A minimal emsg relay for the load tool's tests (docs/protocol.md §3-§4) on a real
// socket: logs in anyone, routes type 1 by `to`, answers server acks and
// heartbeats, kicks a replaced session; can drop, hold back or refuse chosen
// message ids, or miss a user's devices, to prove the tool notices loss,
// reordering and refusals.

import { END, KILL, StreamDecoder } from "../../src/protocol/framing.ts";

/** Faults and canned answers of a fake server. */
export interface FakeServerOptions {
  /** Message ids to ack but never deliver. */
  drop?: Set<string>;
  /** Message ids to deliver only after the next message to the same recipient. */
  holdBack?: Set<string>;
  /** Message id -> notice reason to refuse that message with (no ack, no delivery). */
  notice?: Map<string, string>;
  /** Refuse these message ids with a notice that names a new id instead of theirs. */
  anonymousNotice?: Set<string>;
  /** Login answer reason to refuse every login with. */
  refuse?: string;
  /** Stored packets handed out in `delay` at the login of a jid. */
  delay?: Map<string, unknown[]>;
  /**
   * Keep every session of a jid logged in (none is kicked) but route to its
   * newest only: a server that does not fan out to a user's devices.
   */
  newestDeviceOnly?: boolean;
}

interface Session {
  conn: Deno.Conn;
  jid: string;
  held: string | null;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A fake server on 127.0.0.1, on a free port. */
export class FakeServer {
  readonly port: number;
  /** Every client packet received, as text, in order. */
  readonly packets: string[] = [];
  /** Source address of each accepted connection. */
  readonly remotes: string[] = [];
  readonly #listener: Deno.Listener;
  readonly #sessions = new Map<string, Session>();
  readonly #conns = new Set<Deno.Conn>();
  readonly #served: Promise<void>[] = [];
  readonly #accepting: Promise<void>;

  constructor(readonly opts: FakeServerOptions = {}) {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.port = (this.#listener.addr as Deno.NetAddr).port;
    this.#accepting = this.#accept();
  }

  async #accept(): Promise<void> {
    try {
      for await (const conn of this.#listener) {
        this.remotes.push((conn.remoteAddr as Deno.NetAddr).hostname);
        this.#conns.add(conn);
        this.#served.push(this.#serve(conn));
      }
    } catch {
      // Listener closed.
    }
  }

  async #serve(conn: Deno.Conn): Promise<void> {
    const s: Session = { conn, jid: "", held: null };
    const dec = new StreamDecoder(1 << 20, {
      packet: (b) => this.#packet(s, decoder.decode(b)),
      heartbeat: () => {
        if (s.jid) write(conn, "\x02");
      },
      oversize: () => conn.close(),
    });
    const buf = new Uint8Array(16 * 1024);
    try {
      for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
        dec.push(buf.subarray(0, n));
      }
    } catch {
      // Reset or closed by close().
    }
    this.#conns.delete(conn);
    if (this.#sessions.get(s.jid) === s) this.#sessions.delete(s.jid);
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }

  #packet(s: Session, text: string): void {
    this.packets.push(text);
    const p = JSON.parse(text);
    const env = p.envelope;
    if (!s.jid) {
      if (this.opts.refuse) {
        closeAfter(
          s.conn,
          write(
            s.conn,
            JSON.stringify({
              envelope: { id: env.id, type: 0 },
              entity: { result: "error", reason: this.opts.refuse },
            }),
          ),
        );
        return;
      }
      s.jid = String(env.jid).split("/")[0]!;
      const old = this.#sessions.get(s.jid);
      if (old && !this.opts.newestDeviceOnly) {
        closeAfter(old.conn, write(old.conn, String.fromCharCode(KILL)));
      }
      this.#sessions.set(s.jid, s);
      const stored = this.opts.delay?.get(s.jid) ?? [];
      const delay = stored.length ? { total: stored.length, packets: stored } : { total: 0 };
      write(
        s.conn,
        JSON.stringify({ envelope: { id: env.id, type: 0 }, entity: { result: "ok" }, delay }),
      );
      return;
    }
    if (env.type === 3 && env.to === "server_ack") return;
    const anonymous = this.opts.anonymousNotice?.has(env.id);
    const refusal = anonymous ? "rate_limited" : this.opts.notice?.get(env.id);
    if (refusal) {
      const id = anonymous ? crypto.randomUUID() : env.id;
      const entity = { result: "sys_notify", reason: refusal };
      write(s.conn, JSON.stringify({ envelope: { id, type: 4 }, entity, vsn: "0.0.1" }));
      return;
    }
    if (env.ack === 1) {
      write(s.conn, JSON.stringify({ envelope: { id: env.id, type: 3, ct: "1" } }));
    }
    const to = this.#sessions.get(String(env.to));
    if (!to || this.opts.drop?.has(env.id)) return;
    env.ct = String(Date.now());
    const out = JSON.stringify(p);
    if (this.opts.holdBack?.has(env.id)) {
      to.held = out;
      return;
    }
    write(to.conn, out);
    if (to.held) {
      write(to.conn, to.held);
      to.held = null;
    }
  }

  /** Stops listening and closes every connection. */
  async close(): Promise<void> {
    this.#listener.close();
    for (const c of this.#conns) {
      try {
        c.close();
      } catch {
        // Already closed.
      }
    }
    await this.#accepting;
    await Promise.all(this.#served);
  }
}

const chains = new WeakMap<Deno.Conn, Promise<void>>();

/** Writes one packet after those before it; resolves when written (or the peer is gone). */
function write(conn: Deno.Conn, text: string): Promise<void> {
  const bytes = encoder.encode(text + String.fromCharCode(END));
  const next = (chains.get(conn) ?? Promise.resolve()).then(async () => {
    for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
  }).catch(() => {});
  chains.set(conn, next);
  return next;
}

function closeAfter(conn: Deno.Conn, written: Promise<void>): void {
  written.then(() => {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  });
}
