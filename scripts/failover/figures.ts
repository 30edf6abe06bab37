// The figures of one failover run, from what the users and the probe
// recorded. Definitions (also in `scripts/failover.ts --help` and
// BENCHMARKS.md, "Failover"):
// - lost: acked, never received, not even at the final login (docs/protocol.md §12);
// - late: acked, and first received more than LATE_MS after the later of its
//   first send and the promotion, or only at the final login;
// - reordered, duplicates: docs/protocol.md §12, as the clients saw them (before any dedup);
//   reordered_after_store_error: those of them whose message had been refused with
//   store_error and sent again while newer ones to the same recipient were in flight;
// - write stall: longest wait from first send to server ack of a message
//   whose recipient's keys live on a master that was not killed (resends
//   after store_error included);
// - redis refused: how long the direct probe's writes to those keys failed.

import type { Ledger } from "../../src/bench/ledger.ts";
import type { ProbeResult } from "./probe.ts";
import { type Load, msgKey, type Receipt } from "./users.ts";

/** "Delivered live within 2 s of the promotion" (the target). */
export const LATE_MS = 2000;

/** Times of a run (performance.now()). */
export interface Timeline {
  kill: number;
  promoted: number;
}

/** The figures of one run (the JSON the script prints, without its parameters). */
export interface Figures {
  sent: number;
  acked: number;
  unacked_at_end: number;
  lost: number;
  late: number;
  late_at_relogin: number;
  reordered: number;
  reordered_after_store_error: number;
  /** The first few reordered receipts and the receipt each came behind (to find the cause). */
  reordered_examples: ReorderExample[];
  duplicates: number;
  /** Of the duplicates, those the final login brought (the rest came live). */
  duplicates_at_relogin: number;
  /** Longest time from the later of send and promotion to first receipt. */
  delivery_after_promotion_max_ms: number;
  promoted_after_kill_ms: number;
  redis_refused_victim_ms: number;
  redis_refused_healthy_ms: number;
  write_stall_healthy_ms: number;
  /**
   * The message of that longest wait: its id (`sender.recipient.seq`, as in
   * the nodes' logs), how often it was sent, first sent and acked (ms after
   * the kill), and how many store_error notices it got on the way.
   */
  write_stall_healthy_worst:
    | { id: string; sends: number; sent_ms: number; acked_ms: number; store_errors: number }
    | null;
  write_stall_healthy_beyond_redis_ms: number;
  write_stall_victim_ms: number;
  ack_wait_p99_before_kill_ms: number;
  store_error_notices: number;
  notices: Record<string, number>;
  login_failures: Record<string, number>;
  retries: number;
  unexpected: number;
}

/** A message (ms after the kill; null: never) as a reordered receipt's evidence. */
export interface MessageTrace {
  seq: number;
  sent_ms: number;
  acked_ms: number | null;
  /** Times its sender sent it. */
  sends: number;
  received_ms: number;
  /** When the sending node accepted it (its `ct`). */
  accepted_ms: number;
  /** The recipient's login it came on (1 = the first). */
  login: number;
  in_login: boolean;
  store_error: boolean;
}

/** A receipt that came behind a newer one of the same sender and recipient. */
export interface ReorderExample {
  from: number;
  to: number;
  late: MessageTrace;
  ahead: MessageTrace;
}

/** How many reordered receipts the JSON shows in detail. */
const EXAMPLES = 5;

/** Computes the figures; `masterOf[u]` is the port of the master holding user u's keys. */
export function figures(
  load: Load,
  ledger: Ledger,
  probe: ProbeResult[],
  t: Timeline,
  masterOf: number[],
  victim: number,
  unacked: number,
): Figures {
  const sum = ledger.summary();
  const acked = new Set<number>();
  for (const a of load.acks) acked.add(msgKey(a.stream, a.seq));
  let late = 0;
  let atRelogin = 0;
  let worst = 0;
  let reorderedRefused = 0;
  const examples: ReorderExample[] = [];
  const ackOf = new Map<number, (typeof load.acks)[number]>();
  for (const a of load.acks) ackOf.set(msgKey(a.stream, a.seq), a);
  const trace = (r: Receipt): MessageTrace => {
    const key = msgKey(r.stream, r.seq);
    const acked = ackOf.get(key);
    return {
      seq: r.seq,
      sent_ms: Math.round(ledger.sentAt(r.stream, r.seq) - t.kill),
      acked_ms: acked === undefined ? null : Math.round(acked.at - t.kill),
      sends: acked?.sends ?? 0,
      received_ms: Math.round(r.at - t.kill),
      accepted_ms: Math.round(r.acceptedAt - t.kill),
      login: r.login,
      in_login: r.inLogin,
      store_error: load.refused.has(key),
    };
  };
  const newest = new Map<number, Receipt>();
  for (const r of load.receipts) {
    // Receipts are in arrival order: the same walk as the ledger's reordered count.
    const ahead = newest.get(r.stream);
    if (ahead && r.seq < ahead.seq) {
      if (load.refused.has(msgKey(r.stream, r.seq))) reorderedRefused++;
      if (examples.length < EXAMPLES) {
        const [from, to] = load.pair(r.stream);
        examples.push({ from, to, late: trace(r), ahead: trace(ahead) });
      }
    } else newest.set(r.stream, r);
    if (!acked.has(msgKey(r.stream, r.seq))) continue;
    const after = r.at - Math.max(ledger.sentAt(r.stream, r.seq), t.promoted);
    worst = Math.max(worst, after);
    if (r.relogin) atRelogin++;
    if (r.relogin || after > LATE_MS) late++;
  }
  let healthy = 0;
  let worstHealthy: (typeof load.acks)[number] | null = null;
  let hit = 0;
  const before: number[] = [];
  for (const a of load.acks) {
    const wait = a.at - a.sentAt;
    if (masterOf[a.recipient] === victim) hit = Math.max(hit, wait);
    else if (wait > healthy) [healthy, worstHealthy] = [wait, a];
    if (a.at < t.kill) before.push(wait);
  }
  before.sort((a, b) => a - b);
  const refusedHealthy = Math.max(0, ...probe.filter((p) => !p.victim).map((p) => p.refused_ms));
  const ms = (x: number) => Math.round(x);
  return {
    sent: sum.sent,
    acked: sum.acked,
    unacked_at_end: unacked,
    lost: sum.lost,
    late,
    late_at_relogin: atRelogin,
    reordered: sum.reordered,
    reordered_after_store_error: reorderedRefused,
    reordered_examples: examples,
    duplicates: sum.duplicates,
    duplicates_at_relogin: sum.duplicates - load.duplicatesLive,
    delivery_after_promotion_max_ms: ms(worst),
    promoted_after_kill_ms: ms(t.promoted - t.kill),
    redis_refused_victim_ms: probe.find((p) => p.victim)?.refused_ms ?? 0,
    redis_refused_healthy_ms: refusedHealthy,
    write_stall_healthy_ms: ms(healthy),
    write_stall_healthy_worst: worstHealthy && {
      id: `${load.pair(worstHealthy.stream).join(".")}.${worstHealthy.seq}`,
      sends: worstHealthy.sends,
      sent_ms: ms(worstHealthy.sentAt - t.kill),
      acked_ms: ms(worstHealthy.at - t.kill),
      store_errors: worstHealthy.refusals,
    },
    write_stall_healthy_beyond_redis_ms: ms(Math.max(0, healthy - refusedHealthy)),
    write_stall_victim_ms: ms(hit),
    ack_wait_p99_before_kill_ms: ms(before[Math.floor(before.length * 0.99)] ?? 0),
    store_error_notices: load.notices.get("store_error") ?? 0,
    notices: Object.fromEntries(load.notices),
    login_failures: Object.fromEntries(load.loginFailures),
    retries: load.retries,
    unexpected: load.unexpected + sum.unknown,
  };
}
