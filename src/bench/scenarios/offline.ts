// Scenario `offline`: a backlog of K messages for a user who never logged in
// (all server-acked), then that user's login: how long until the whole login
// answer arrived, and whether the stored messages came complete and in send
// order, inside `delay` or (--delivery packets) as packets after the answer.
// Finally checks that acked stored messages do not come again.

import { formatEndpoint } from "../addr.ts";
import { BenchConn, type LoginAnswer } from "../conn.ts";
import { newRunId, type ScenarioContext, sourceFor } from "../context.ts";
import { sleep } from "../../async.ts";
import { Ledger } from "../ledger.ts";
import { ackPacket, chatPacket, padding } from "../packets.ts";
import type { ScenarioResult } from "../report.ts";
import { intField, stringField, tagField, tagPrefix, tagSeq, tagStream } from "../scan.ts";

/** Longest time for storing the backlog. */
const BACKLOG_DEADLINE_MS = 60_000;
/** How long to listen for stored messages coming again after they were acked. */
const REDELIVERY_WAIT_MS = 500;

/** Runs the offline scenario against the first server. */
export async function runOffline(ctx: ScenarioContext): Promise<ScenarioResult> {
  const { opts } = ctx;
  const node = opts.raddrs[0]!;
  const result: ScenarioResult = {
    scenario: "offline",
    ok: false,
    params: {
      raddr: formatEndpoint(node),
      messages: opts.messages,
      window: opts.window,
      size: opts.size,
      delivery: opts.delivery,
    },
    metrics: {},
    errors: [],
  };
  const run = newRunId();
  const from = `${run}s@${opts.domain}`;
  const to = `${run}r@${opts.domain}`;
  const connect = () =>
    BenchConn.connect({
      host: node.host,
      port: node.port,
      localAddress: sourceFor(opts, 0),
      timeoutMs: opts.timeoutS * 1000,
    });
  const ledger = new Ledger();
  const stream = ledger.addStream();
  const receiver = ledger.addReceiver(stream);
  const conns: BenchConn[] = [];
  try {
    const sender = await connect();
    conns.push(sender);
    const login = await sender.login(from, opts.pwd, `${run}Ls`, opts.timeoutS * 1000);
    if (!login.ok) throw new Error(`sender login refused: ${login.reason}`);

    const backlog = await storeBacklog(ctx, sender, ledger, stream, from, to);
    Object.assign(result.metrics, {
      stored_per_s: Math.round(backlog.acked / (backlog.ms / 1000)),
      acked: backlog.acked,
    });
    if (backlog.acked < opts.messages) {
      result.errors.push(
        `${opts.messages - backlog.acked} of ${opts.messages} messages not acked` +
          (backlog.notices ? ` (notices: ${backlog.notices})` : ""),
      );
      return result;
    }
    sender.close();

    // The recipient: every packet after the answer is a stored message (packets mode).
    let lastAt = 0;
    let other = 0;
    const recipient = await connect();
    conns.push(recipient);
    recipient.onPacket = (p) => {
      const tag = intField(p, "type") === 1 ? tagField(p, "content") : -1;
      if (tag !== -1 && tagStream(tag) === stream) {
        ledger.receive(receiver, tagSeq(tag));
        lastAt = performance.now();
      } else {
        other++;
      }
      if (intField(p, "ack") === 1) {
        const id = stringField(p, "id");
        if (id !== undefined) recipient.send(ackPacket(id, to));
      }
    };
    const t0 = performance.now();
    const answer = await recipient.login(to, opts.pwd, `${run}Lr`, opts.timeoutS * 1000);
    if (!answer.ok) throw new Error(`recipient login refused: ${answer.reason}`);
    result.metrics.login_ms = round3(answer.ms);
    result.metrics.answer_chars = answer.chars;
    result.metrics.delay_total = answer.total;

    if (opts.delivery === "delay") {
      if (answer.total === 0 && answer.packets.length === 0) {
        result.errors.push("the login answer holds no stored messages: try --delivery packets");
      }
      for (const pkt of answer.packets) {
        const tag = tagOf(pkt);
        if (tag !== -1 && tagStream(tag) === stream) ledger.receive(receiver, tagSeq(tag));
        else other++;
      }
      if (answer.total !== answer.packets.length) {
        result.errors.push(`delay.total ${answer.total} != ${answer.packets.length} packets`);
      }
      recipient.send(ackPacket(`${run}Lr`, to));
    } else {
      if (answer.total > 0) {
        result.errors.push("the login answer holds the stored messages: try --delivery delay");
      }
      const deadline = performance.now() + opts.drainS * 1000;
      while (
        ledger.progress().received < backlog.acked && performance.now() < deadline &&
        !recipient.closed && !ctx.signal.aborted
      ) {
        ctx.progress.update(`offline receiving ${ledger.progress().received}/${backlog.acked}`);
        await sleep(10, ctx.signal);
      }
      result.metrics.all_received_ms = lastAt === 0 ? null : round3(lastAt - t0);
    }
    const s = ledger.summary();
    Object.assign(result.metrics, {
      received: s.received,
      lost: s.lost,
      reordered: s.reordered,
      duplicates: s.duplicates,
      other_packets: other,
    });
    if (s.lost > 0) {
      result.errors.push(`${s.lost} stored messages missing (offline_max below ${opts.messages}?)`);
    }
    if (s.reordered > 0) result.errors.push(`${s.reordered} stored messages out of send order`);

    recipient.close();
    const again = await redelivered(ctx, connect, to, `${run}Lr2`, conns);
    result.metrics.redelivered_after_ack = again;
    if (again > 0) result.errors.push(`${again} stored messages came again after their ack`);
    result.ok = result.errors.length === 0;
    return result;
  } catch (e) {
    result.errors.push(e instanceof Error ? e.message : String(e));
    return result;
  } finally {
    for (const c of conns) c.close();
  }
}

interface Backlog {
  acked: number;
  ms: number;
  /** Notices by reason, as one line, or "". */
  notices: string;
}

/** Sends K messages to the offline recipient, `window` unacked at a time. */
function storeBacklog(
  ctx: ScenarioContext,
  sender: BenchConn,
  ledger: Ledger,
  stream: number,
  from: string,
  to: string,
): Promise<Backlog> {
  const { opts } = ctx;
  const pad = padding(opts.size);
  const notices = new Map<string, number>();
  const t0 = performance.now();
  let sent = 0;
  let acked = 0;
  let refused = 0;
  const fill = () => {
    while (sent - acked - refused < opts.window && sent < opts.messages) {
      const seq = ledger.send(stream, performance.now());
      const tag = `${stream}.${seq}`;
      sender.send(chatPacket(tag, from, to, `${tag}.${pad}`));
      sent++;
    }
  };
  return new Promise((resolve) => {
    const finish = () => {
      clearInterval(timer);
      const notes = [...notices].map(([k, v]) => `${k}:${v}`).join(", ");
      resolve({ acked, ms: performance.now() - t0, notices: notes });
    };
    sender.onPacket = (p) => {
      const type = intField(p, "type");
      const tag = tagField(p, "id");
      if (type === 3 && tag !== -1 && ledger.ack(tagStream(tag), tagSeq(tag))) acked++;
      else if (type === 4) {
        const reason = stringField(p, "reason") ?? "unknown";
        notices.set(reason, (notices.get(reason) ?? 0) + 1);
        refused++;
      }
      if (acked + refused === opts.messages) finish();
      else fill();
    };
    const timer = setInterval(() => {
      ctx.progress.update(`offline storing ${acked}/${opts.messages}`);
      const late = performance.now() - t0 > BACKLOG_DEADLINE_MS;
      if (late || sender.closed || ctx.signal.aborted) finish();
    }, 250);
    fill();
  });
}

/** Logs in again and counts stored messages that come again after they were acked. */
async function redelivered(
  ctx: ScenarioContext,
  connect: () => Promise<BenchConn>,
  jid: string,
  loginId: string,
  conns: BenchConn[],
): Promise<number> {
  // The ack was written before the close; give the server a moment to apply it.
  await sleep(200, ctx.signal);
  const conn = await connect();
  conns.push(conn);
  let packets = 0;
  conn.onPacket = (p) => {
    if (intField(p, "type") === 1) packets++;
  };
  const answer: LoginAnswer = await conn.login(
    jid,
    ctx.opts.pwd,
    loginId,
    ctx.opts.timeoutS * 1000,
  );
  if (ctx.opts.delivery === "packets") await sleep(REDELIVERY_WAIT_MS, ctx.signal);
  return answer.packets.length + packets;
}

/** Tag in the content of a stored packet (an object from `delay.packets`). */
function tagOf(pkt: unknown): number {
  const content = (pkt as { payload?: { content?: unknown } })?.payload?.content;
  return typeof content === "string" ? tagPrefix(content) : -1;
}

function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}
