// What the clients of a fault check share: the nodes, the delivery ledger,
// the phase of the run, counters for the report, and connecting to a live node.

import { BenchConn } from "../../src/bench/conn.ts";
import type { Ledger } from "../../src/bench/ledger.ts";
import type { Nodes } from "./nodes.ts";

/** Knobs of the client behaviour (see `--help`). */
export interface ClientOptions {
  senders: number;
  recipients: number;
  /** Messages per second per sender. */
  rate: number;
  /** Unacked messages a sender may have before it waits. */
  window: number;
  /** Chance per second that a sender drops its connection (then resends unacked). */
  senderDrops: number;
  /** Chance per received message that a recipient crashes before acking it. */
  recipientDrops: number;
  /** Chance per login that a recipient crashes before acking the stored batch. */
  skipLoginAck: number;
}

/** Counters reported at the end (stderr). */
export class Stats {
  senderLogins = 0;
  recipientLogins = 0;
  loginFailures = 0;
  resent = 0;
  senderDrops = 0;
  recipientDrops = 0;
  loginAcksSkipped = 0;
  misrouted = 0;
  /** Parsed packets that were neither a message, an ack nor a known notice. */
  unexpected = 0;
  /** First receipts that came only with the final login of the drain. */
  late = 0;
  notices = new Map<string, number>();

  notice(reason: string): void {
    this.notices.set(reason, (this.notices.get(reason) ?? 0) + 1);
  }
}

/** The shared state of one run. */
export interface Context {
  readonly nodes: Nodes;
  readonly ledger: Ledger;
  readonly opts: ClientOptions;
  readonly stats: Stats;
  /** New messages may be sent. */
  sending: boolean;
  /** Clients misbehave on purpose (drops, skipped acks). */
  chaos: boolean;
  /** Receipts now are the final login's. */
  final: boolean;
  /** Everything stops. */
  done: boolean;
}

/** Stream (and receiver) index of messages from sender `s` to recipient `r`. */
export function streamOf(ctx: Context, s: number, r: number): number {
  return s * ctx.opts.recipients + r;
}

/** Connects to a random live node; null when none is up or the connect fails. */
export async function connectAny(ctx: Context): Promise<BenchConn | null> {
  const ports: number[] = [];
  for (let i = 0; i < ctx.nodes.size; i++) {
    const p = ctx.nodes.port(i);
    if (p !== null) ports.push(p);
  }
  if (ports.length === 0) return null;
  const port = ports[Math.floor(Math.random() * ports.length)]!;
  try {
    return await BenchConn.connect({ host: "127.0.0.1", port, timeoutMs: 3000 });
  } catch {
    return null;
  }
}

/** Sleeps `min` to `max` ms: reconnect backoff, as SDKs do. */
export function pause(min: number, max: number): Promise<void> {
  return new Promise((r) => setTimeout(r, min + Math.random() * (max - min)));
}
