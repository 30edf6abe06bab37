// A receiving client of the fault check: logs in, takes the stored batch and
// live messages, records every receipt in the ledger (deduplicating by id, as
// SDKs do) and acks them; in the chaos phase it sometimes crashes before an
// ack or goes offline for a while.

import type { BenchConn } from "../../src/bench/conn.ts";
import { ackPacket } from "../../src/bench/packets.ts";
import { connectAny, type Context, pause, streamOf } from "./context.ts";

type Envelope = { id?: unknown; from?: unknown; to?: unknown; ack?: unknown };

/** One recipient `r<index>@fault`. */
export class Recipient {
  readonly jid: string;
  #conn: BenchConn | null = null;
  #logins = 0;
  /** Logins completed (stored batch received and acked). */
  loginsDone = 0;

  constructor(readonly index: number, readonly ctx: Context) {
    this.jid = `r${index}@fault`;
  }

  /** Logs in again and again until the run is done. */
  async run(): Promise<void> {
    const { ctx } = this;
    while (!ctx.done) {
      const conn = await connectAny(ctx);
      if (!conn) {
        await pause(50, 200);
        continue;
      }
      const closed = new Promise<void>((r) => conn.onClose = r);
      let crashed = false;
      const crash = () => {
        crashed = true;
        conn.destroy();
      };
      // Live packets right behind the login answer wait for its stored
      // batch: receipts are recorded in the order they arrived.
      let early: string[] | null = [];
      conn.onPacket = (text) => {
        if (early) early.push(text);
        else if (!crashed) this.#live(conn, text, crash);
      };
      const loginId = `${this.jid}-login-${++this.#logins}`;
      try {
        const answer = await conn.login(this.jid, "pwd", loginId);
        if (!answer.ok) throw new Error(answer.reason);
        for (const p of answer.packets) this.#receive((p as { envelope?: Envelope }).envelope);
        for (const text of early) if (!crashed) this.#live(conn, text, crash);
        early = null;
      } catch {
        ctx.stats.loginFailures++;
        conn.destroy();
        await pause(50, 200);
        continue;
      }
      ctx.stats.recipientLogins++;
      if (ctx.chaos && Math.random() < ctx.opts.skipLoginAck) {
        ctx.stats.loginAcksSkipped++;
        crash();
      } else {
        conn.send(ackPacket(loginId, this.jid));
        this.loginsDone++;
        this.#conn = conn;
      }
      await closed;
      this.#conn = null;
      // After a crash, stay away a while: messages go to the inbox meanwhile.
      if (!ctx.done) await (crashed ? pause(100, 1000) : pause(20, 200));
    }
  }

  /** Drops the connection so that the loop logs in again (the final login). */
  relogin(): void {
    this.#conn?.destroy();
  }

  /** Closes the connection (end of the run). */
  stop(): void {
    this.#conn?.destroy();
  }

  #live(conn: BenchConn, text: string, crash: () => void): void {
    let env: Envelope | undefined;
    try {
      env = (JSON.parse(text) as { envelope?: Envelope }).envelope;
    } catch {
      this.ctx.stats.unexpected++;
      return;
    }
    if (typeof env?.from !== "string") {
      this.ctx.stats.unexpected++;
      return;
    }
    this.#receive(env);
    if (this.ctx.chaos && Math.random() < this.ctx.opts.recipientDrops) {
      this.ctx.stats.recipientDrops++;
      return crash();
    }
    if (env.ack === 1) conn.send(ackPacket(String(env.id), this.jid));
  }

  #receive(env: Envelope | undefined): void {
    const { ctx } = this;
    const parts = typeof env?.id === "string" ? env.id.split(".") : [];
    const [s, r, seq] = parts.map(Number);
    if (parts.length !== 3 || s === undefined || r === undefined || seq === undefined) {
      ctx.stats.unexpected++;
      return;
    }
    if (r !== this.index || env?.to !== this.jid) {
      ctx.stats.misrouted++;
      return;
    }
    if (ctx.ledger.receive(streamOf(ctx, s, r), seq) && ctx.final) ctx.stats.late++;
  }
}
