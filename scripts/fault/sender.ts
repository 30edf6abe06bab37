// A sending client of the fault check, behaving like the SDKs: it keeps
// every message until the server acks it, and after any reconnect sends all
// unacked ones again, in order and with the same ids, before anything new.

import type { BenchConn } from "../../src/bench/conn.ts";
import { chatPacket } from "../../src/bench/packets.ts";
import { connectAny, type Context, pause, streamOf } from "./context.ts";

interface Unacked {
  text: string;
  stream: number;
  seq: number;
}

/** One sender `s<index>@fault`. */
export class Sender {
  readonly jid: string;
  // Insertion order is send order: resends keep it.
  readonly #unacked = new Map<string, Unacked>();
  #conn: BenchConn | null = null;
  #credit = 0;
  #logins = 0;

  constructor(readonly index: number, readonly ctx: Context) {
    this.jid = `s${index}@fault`;
  }

  /** Messages sent and not acked yet. */
  get unacked(): number {
    return this.#unacked.size;
  }

  /** Connects, logs in, resends, and starts over whenever the connection is lost. */
  async run(): Promise<void> {
    const { ctx } = this;
    while (!ctx.done) {
      const conn = await connectAny(ctx);
      if (!conn) {
        await pause(50, 200);
        continue;
      }
      const closed = new Promise<void>((r) => conn.onClose = r);
      conn.onPacket = (text) => this.#packet(conn, text);
      try {
        const answer = await conn.login(this.jid, "pwd", `${this.jid}-login-${++this.#logins}`);
        if (!answer.ok) throw new Error(answer.reason);
      } catch {
        ctx.stats.loginFailures++;
        conn.destroy();
        await pause(50, 200);
        continue;
      }
      ctx.stats.senderLogins++;
      for (const m of this.#unacked.values()) conn.send(m.text);
      ctx.stats.resent += this.#unacked.size;
      this.#conn = conn;
      await closed;
      this.#conn = null;
      if (!ctx.done) await pause(20, 200);
    }
  }

  /** Sends what `dtMs` of rate allows, within the window; sometimes drops the connection. */
  tick(dtMs: number): void {
    const { ctx } = this;
    const conn = this.#conn;
    if (!conn || !ctx.sending) return;
    if (ctx.chaos && Math.random() < ctx.opts.senderDrops * dtMs / 1000) {
      ctx.stats.senderDrops++;
      conn.destroy();
      return;
    }
    this.#credit = Math.min(this.#credit + ctx.opts.rate * dtMs / 1000, ctx.opts.window);
    while (this.#credit >= 1 && this.#unacked.size < ctx.opts.window) {
      this.#credit--;
      const r = Math.floor(Math.random() * ctx.opts.recipients);
      const stream = streamOf(ctx, this.index, r);
      const seq = ctx.ledger.send(stream, performance.now());
      const id = `${this.index}.${r}.${seq}`;
      const text = chatPacket(id, this.jid, `r${r}@fault`, "x");
      this.#unacked.set(id, { text, stream, seq });
      conn.send(text);
    }
  }

  /** Closes the connection (end of the run). */
  stop(): void {
    this.#conn?.destroy();
  }

  #packet(conn: BenchConn, text: string): void {
    let p: { envelope?: { id?: unknown; type?: unknown; from?: unknown }; entity?: unknown };
    try {
      p = JSON.parse(text);
    } catch {
      this.ctx.stats.unexpected++;
      return;
    }
    const env = p.envelope;
    if (env?.type === 3 && env.from === undefined && typeof env.id === "string") {
      const m = this.#unacked.get(env.id);
      // A second ack (of a resent message) finds nothing: fine.
      if (!m) return;
      this.#unacked.delete(env.id);
      this.ctx.ledger.ack(m.stream, m.seq);
    } else if (env?.type === 4) {
      const reason = String((p.entity as { reason?: unknown })?.reason);
      this.ctx.stats.notice(reason);
      // Not kept: reconnect, which resends everything unacked in order.
      if (reason === "store_error") conn.destroy();
    } else {
      this.ctx.stats.unexpected++;
    }
  }
}
