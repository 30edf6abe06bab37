// The message pump of the p2p, cluster and group scenarios: every flow keeps
// `window` messages outstanding (sent, not yet server-acked), receivers ack
// what asks for it, and the ledger and histogram record what happened
// during a measured period after a warm-up, then a bounded drain.

import process from "node:process";
import type { BenchConn } from "./conn.ts";
import { LatencyHistogram, type LatencySummary } from "./latency.ts";
import type { Ledger, LedgerSummary } from "./ledger.ts";
import { type LiveLine, RateMeter } from "./live_line.ts";
import { ackPacket, padding } from "./packets.ts";
import { intField, stringField, tagField, tagSeq, tagStream } from "./scan.ts";

/** One sender's stream of messages (to one recipient or one group). */
export interface Flow {
  /** Connection the messages go out on and the server acks come back on. */
  sender: BenchConn;
  /** Ledger stream of these messages. */
  stream: number;
  /** Packet text of one message. */
  packet(id: string, content: string): string;
}

/** A connection that receives every message of one ledger stream. */
export interface Recipient {
  conn: BenchConn;
  /** Ledger receiver index. */
  receiver: number;
}

/** Timing and size of a run. */
export interface TrafficOptions {
  label: string;
  window: number;
  /** Padding bytes per message. */
  size: number;
  warmupMs: number;
  durationMs: number;
  drainMs: number;
  progress: LiveLine;
  signal?: AbortSignal;
}

/** What a run measured. */
export interface TrafficResult {
  ledger: LedgerSummary;
  /** Send to first receipt, of messages sent in the measured period. */
  latency: LatencySummary;
  /** First receipts in the measured period, per second. */
  deliveredPerS: number;
  /** Server acks in the measured period, per second. */
  ackedPerS: number;
  /** Notices (type 4) by reason. */
  notices: Record<string, number>;
  /** Messages refused with a notice naming them (never acked, not expected). */
  rejected: number;
  /** Outstanding messages given up after refusals that named no message. */
  writtenOff: number;
  /** Received packets that were not the tool's messages. */
  other: number;
  /** Connections the server closed during the run. */
  closed: number;
  /** Time from the end of the period until the drain ended. */
  drainMs: number;
  /** CPU time of this process during the period, in percent of one core. */
  clientCpuPct: number;
  /** True when every acked message arrived before the drain ended. */
  drained: boolean;
  aborted: boolean;
}

interface FlowState {
  flow: Flow;
  /** Sent, neither acked nor refused nor written off. */
  outstanding: number;
  /** Messages sent so far (the next sequence number). */
  next: number;
  pausedUntil: number;
  lastAck: number;
  /** A refusal on this flow's connection named no message (docs/protocol.md §2 allows a new id). */
  suspect: boolean;
  /** Messages below this sequence were written off: their acks free no slot. */
  writtenOffBelow: number;
}

/** Period of the drain and abort checks; progress shows every PROGRESS_TICKS of them. */
const TICK_MS = 50;
const PROGRESS_TICKS = 5;

/** Pause of a flow after a refusal (a notice naming one of its messages). */
const REFUSAL_PAUSE_MS = 100;
/**
 * A suspect flow without an ack for this long writes off what it has
 * outstanding, so that refusals the tool cannot match do not stall it.
 */
const STALL_MS = 500;

/** Runs the flows and recipients until the period and the drain are over. */
export function runTraffic(
  ledger: Ledger,
  flows: Flow[],
  recipients: Recipient[],
  opts: TrafficOptions,
): Promise<TrafficResult> {
  const start = performance.now();
  const periodStart = start + opts.warmupMs;
  const periodEnd = periodStart + opts.durationMs;
  const states: FlowState[] = [];
  for (const flow of flows) {
    states[flow.stream] = {
      flow,
      outstanding: 0,
      next: 0,
      pausedUntil: 0,
      lastAck: start,
      suspect: false,
      writtenOffBelow: 0,
    };
  }
  const hist = new LatencyHistogram();
  const pad = padding(opts.size);
  const notices: Record<string, number> = {};
  let rejected = 0;
  let writtenOff = 0;
  let other = 0;
  let closed = 0;
  let sent = 0;
  let received = 0;
  let receivedInPeriod = 0;
  let ackedInPeriod = 0;
  let outstanding = 0;
  let sending = true;

  const fill = (s: FlowState, now: number) => {
    if (!sending || now >= periodEnd || now < s.pausedUntil) return;
    const stream = s.flow.stream;
    while (s.outstanding < opts.window) {
      const seq = ledger.send(stream, now);
      const tag = `${stream}.${seq}`;
      s.flow.sender.send(s.flow.packet(tag, `${tag}.${pad}`));
      s.next = seq + 1;
      s.outstanding++;
      outstanding++;
      sent++;
    }
  };

  /** Frees the slot of a message that was acked or refused. */
  const release = (s: FlowState, seq: number) => {
    if (seq < s.writtenOffBelow) return;
    s.outstanding--;
    outstanding--;
  };

  /** Pauses a flow rather than spin against a limit or a misconfiguration. */
  const pause = (s: FlowState, now: number) => {
    if (now < s.pausedUntil) return;
    s.pausedUntil = now + REFUSAL_PAUSE_MS;
    setTimeout(() => {
      s.pausedUntil = 0;
      fill(s, performance.now());
    }, REFUSAL_PAUSE_MS);
  };

  const writeOffStalled = (now: number) => {
    for (const s of states) {
      if (!s?.suspect) continue;
      if (s.outstanding > 0 && now - s.lastAck < STALL_MS) continue;
      writtenOff += s.outstanding;
      outstanding -= s.outstanding;
      s.outstanding = 0;
      s.writtenOffBelow = s.next;
      s.suspect = false;
      s.lastAck = now;
      fill(s, now);
    }
  };

  const onSenderPacket = (conn: BenchConn, own: FlowState[], p: string) => {
    const type = intField(p, "type");
    if (type !== 3 && type !== 4) {
      other++;
      return;
    }
    const now = performance.now();
    const tag = tagField(p, "id");
    const s = tag === -1 ? undefined : states[tagStream(tag)];
    const ours = s !== undefined && s.flow.sender === conn && tagSeq(tag) < s.next;
    if (type === 4) {
      const reason = stringField(p, "reason") ?? "unknown";
      notices[reason] = (notices[reason] ?? 0) + 1;
      if (ours) {
        // A refused message is neither acked nor delivered.
        rejected++;
        release(s, tagSeq(tag));
        pause(s, now);
      } else {
        for (const f of own) {
          f.suspect = true;
          pause(f, now);
        }
      }
      return;
    }
    if (!ours || !ledger.ack(tagStream(tag), tagSeq(tag))) {
      other++;
      return;
    }
    release(s, tagSeq(tag));
    s.lastAck = now;
    if (now >= periodStart && now < periodEnd) ackedInPeriod++;
    fill(s, now);
  };

  const onRecipientPacket = (conn: BenchConn, receiver: number, stream: number, p: string) => {
    const now = performance.now();
    const type = intField(p, "type");
    if (type !== 1 && type !== 2) {
      other++;
      return;
    }
    const tag = tagField(p, "content");
    if (tag !== -1 && tagStream(tag) === stream) {
      const seq = tagSeq(tag);
      if (ledger.receive(receiver, seq)) {
        received++;
        if (now >= periodStart && now < periodEnd) receivedInPeriod++;
        const sentAt = ledger.sentAt(stream, seq);
        if (sentAt >= periodStart && sentAt < periodEnd) hist.record(now - sentAt);
      }
    } else {
      other++;
    }
    if (intField(p, "ack") === 1) {
      const id = stringField(p, "id");
      if (id !== undefined) conn.send(ackPacket(id, conn.jid));
    }
  };

  const bySender = new Map<BenchConn, FlowState[]>();
  for (const s of states) {
    if (!s) continue;
    const own = bySender.get(s.flow.sender);
    if (own) own.push(s);
    else bySender.set(s.flow.sender, [s]);
  }
  for (const [sender, own] of bySender) {
    sender.onPacket = (p) => onSenderPacket(sender, own, p);
    sender.onClose = () => closed++;
  }
  for (const r of recipients) {
    const stream = ledger.streamOf(r.receiver);
    r.conn.onPacket = (p) => onRecipientPacket(r.conn, r.receiver, stream, p);
    r.conn.onClose = () => closed++;
  }

  for (const s of states) if (s) fill(s, start);

  const meter = new RateMeter();
  return new Promise((resolve) => {
    let ticks = 0;
    // CPU of this process over the period, sampled at the ticks nearest its ends.
    let cpuStart: { usage: NodeJS.CpuUsage; at: number } | null = null;
    let cpuPct = 0;
    const finish = (drained: boolean, aborted: boolean) => {
      clearInterval(timer);
      const periodS = opts.durationMs / 1000;
      resolve({
        ledger: ledger.summary(),
        latency: hist.summary(),
        deliveredPerS: Math.round(receivedInPeriod / periodS),
        ackedPerS: Math.round(ackedInPeriod / periodS),
        notices,
        rejected,
        writtenOff,
        other,
        closed,
        drainMs: Math.max(0, Math.round(performance.now() - periodEnd)),
        clientCpuPct: cpuPct,
        drained,
        aborted,
      });
    };
    const timer = setInterval(() => {
      const now = performance.now();
      if (++ticks % PROGRESS_TICKS === 0) {
        const phase = now < periodStart ? "warm-up" : now < periodEnd ? "measure" : "drain";
        opts.progress.update(
          `${opts.label} ${phase} ${((now - start) / 1000).toFixed(1)}s  sent ${sent}` +
            `  recv ${received}  recv/s ${meter.rate(received, now)}  outstanding ${outstanding}`,
        );
      }
      if (opts.signal?.aborted) return finish(false, true);
      writeOffStalled(now);
      if (cpuStart === null && now >= periodStart) {
        cpuStart = { usage: process.cpuUsage(), at: now };
      }
      if (now < periodEnd) return;
      if (sending) {
        sending = false;
        if (cpuStart !== null && now > cpuStart.at) {
          const used = process.cpuUsage(cpuStart.usage);
          cpuPct = Math.round((used.user + used.system) / 10 / (now - cpuStart.at));
        }
      }
      const p = ledger.progress();
      if (outstanding <= 0 && p.received >= p.expected) return finish(true, false);
      if (now - periodEnd >= opts.drainMs) finish(false, false);
    }, TICK_MS);
  });
}

/** Metrics and failed checks of a traffic run, for a scenario result. */
export function describeTraffic(
  t: TrafficResult,
): { metrics: Record<string, number | string | null>; errors: string[] } {
  const l = t.ledger;
  const notices = Object.entries(t.notices).map(([k, v]) => `${k}:${v}`).join(", ");
  const metrics = {
    delivered_per_s: t.deliveredPerS,
    acked_per_s: t.ackedPerS,
    latency_ms_p50: t.latency.p50,
    latency_ms_p90: t.latency.p90,
    latency_ms_p99: t.latency.p99,
    latency_ms_max: t.latency.max,
    latency_samples: t.latency.count,
    sent: l.sent,
    acked: l.acked,
    received: l.received,
    lost: l.lost,
    reordered: l.reordered,
    duplicates: l.duplicates,
    rejected: t.rejected,
    written_off: t.writtenOff,
    not_acked: l.sent - l.acked - t.rejected,
    drain_ms: t.drainMs,
    client_cpu_pct: t.clientCpuPct,
    notices: notices === "" ? null : notices,
    closed_by_server: t.closed,
  };
  const errors: string[] = [];
  if (t.aborted) errors.push("interrupted");
  if (l.lost > 0) errors.push(`${l.lost} acked messages never received`);
  if (l.reordered > 0) errors.push(`${l.reordered} messages received out of send order`);
  if (!t.drained && !t.aborted) {
    const unacked = metrics.not_acked > 0 ? `, ${metrics.not_acked} never acked` : "";
    errors.push(`drain gave up after ${t.drainMs} ms${unacked}`);
  }
  if (t.closed > 0) errors.push(`the server closed ${t.closed} connections during the run`);
  if (t.notices["rate_limited"]) {
    errors.push(
      "the server's rate_limit capped the senders: raise it in conf.json or use more pairs",
    );
  }
  return { metrics, errors };
}
