// The message pump of the p2p, cluster and group scenarios: every flow keeps
// `window` messages outstanding (sent, not yet server-acked), receivers ack
// what asks for it, and the ledger and histogram record what happened
// during a measured period after a warm-up, then a bounded drain.

import type { BenchConn } from "./conn.ts";
import { LatencyHistogram, type LatencySummary } from "./latency.ts";
import type { Ledger, LedgerSummary } from "./ledger.ts";
import type { LiveLine } from "./live_line.ts";
import { RateMeter } from "./live_line.ts";
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
  /** Messages refused with a notice (never acked, not expected). */
  rejected: number;
  /** Received packets that were not the tool's messages. */
  other: number;
  /** Connections the server closed during the run. */
  closed: number;
  /** Time the drain took; equal to drainMs when it gave up. */
  drainMs: number;
  /** True when every acked message arrived before the drain ended. */
  drained: boolean;
  aborted: boolean;
}

interface FlowState {
  flow: Flow;
  outstanding: number;
  pausedUntil: number;
}

/** Period of the drain and abort checks; progress shows every PROGRESS_TICKS of them. */
const TICK_MS = 50;
const PROGRESS_TICKS = 5;

/** Pause of a flow after a `rate_limited` notice, so as not to spin against the limit. */
const RATE_LIMIT_PAUSE_MS = 100;

/** Runs the flows and recipients until the period and the drain are over. */
export function runTraffic(
  ledger: Ledger,
  flows: Flow[],
  recipients: Recipient[],
  opts: TrafficOptions,
): Promise<TrafficResult> {
  const states: FlowState[] = [];
  for (const flow of flows) states[flow.stream] = { flow, outstanding: 0, pausedUntil: 0 };
  const hist = new LatencyHistogram();
  const pad = padding(opts.size);
  const notices: Record<string, number> = {};
  let rejected = 0;
  let other = 0;
  let closed = 0;
  let sent = 0;
  let received = 0;
  let receivedInPeriod = 0;
  let ackedInPeriod = 0;
  let outstanding = 0;

  const start = performance.now();
  const periodStart = start + opts.warmupMs;
  const periodEnd = periodStart + opts.durationMs;
  let sending = true;

  const fill = (s: FlowState, now: number) => {
    if (!sending || now >= periodEnd || now < s.pausedUntil) return;
    const stream = s.flow.stream;
    while (s.outstanding < opts.window) {
      const seq = ledger.send(stream, now);
      const tag = `${stream}.${seq}`;
      s.flow.sender.send(s.flow.packet(tag, `${tag}.${pad}`));
      s.outstanding++;
      outstanding++;
      sent++;
    }
  };

  const onSenderPacket = (p: string) => {
    const type = intField(p, "type");
    if (type !== 3 && type !== 4) {
      other++;
      return;
    }
    const tag = tagField(p, "id");
    const s = tag === -1 ? undefined : states[tagStream(tag)];
    if (type === 4) {
      const reason = stringField(p, "reason") ?? "unknown";
      notices[reason] = (notices[reason] ?? 0) + 1;
      if (s === undefined) return;
      // A refused message is neither acked nor delivered: free its slot.
      rejected++;
      s.outstanding--;
      outstanding--;
      if (reason === "rate_limited") {
        s.pausedUntil = performance.now() + RATE_LIMIT_PAUSE_MS;
        setTimeout(() => fill(s, performance.now()), RATE_LIMIT_PAUSE_MS);
      }
      return;
    }
    if (s === undefined || !ledger.ack(tagStream(tag), tagSeq(tag))) {
      other++;
      return;
    }
    s.outstanding--;
    outstanding--;
    const now = performance.now();
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

  const senders = new Set(flows.map((f) => f.sender));
  for (const sender of senders) {
    sender.onPacket = onSenderPacket;
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
    let drainStart = 0;
    let ticks = 0;
    const finish = (drained: boolean, aborted: boolean) => {
      clearInterval(timer);
      const periodS = opts.durationMs / 1000;
      const now = performance.now();
      resolve({
        ledger: ledger.summary(),
        latency: hist.summary(),
        deliveredPerS: Math.round(receivedInPeriod / periodS),
        ackedPerS: Math.round(ackedInPeriod / periodS),
        notices,
        rejected,
        other,
        closed,
        drainMs: Math.round(drainStart === 0 ? 0 : now - drainStart),
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
      if (now < periodEnd) return;
      if (sending) {
        sending = false;
        drainStart = now;
      }
      const p = ledger.progress();
      if (outstanding <= 0 && p.received >= p.expected) return finish(true, false);
      if (now - drainStart >= opts.drainMs) finish(false, false);
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
    not_acked: l.sent - l.acked - t.rejected,
    drain_ms: t.drainMs,
    notices: notices === "" ? null : notices,
    closed_by_server: t.closed,
  };
  const errors: string[] = [];
  if (t.aborted) errors.push("interrupted");
  if (l.lost > 0) errors.push(`${l.lost} acked messages never received`);
  if (l.reordered > 0) errors.push(`${l.reordered} messages received out of send order`);
  if (!t.drained && !t.aborted) {
    errors.push(`drain gave up after ${t.drainMs} ms: ${metrics.not_acked} never acked`);
  }
  if (t.closed > 0) errors.push(`the server closed ${t.closed} connections during the run`);
  if (t.notices["rate_limited"]) {
    errors.push(
      "the server's rate_limit capped the senders: raise it in conf.json or use more pairs",
    );
  }
  return { metrics, errors };
}
