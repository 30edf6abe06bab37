// Options of `sara bench`, shared by every scenario, with their defaults
// (small enough that each scenario finishes in about 10-20 s).

import type { Endpoint } from "./addr.ts";

/** Delivery of stored messages the server is configured for (docs/protocol.md §10). */
export type OfflineDelivery = "delay" | "packets";

/** Everything a scenario may need. */
export interface BenchOptions {
  /** Servers (`cluster` uses two, the others the first). */
  raddrs: Endpoint[];
  /** Source addresses, used in turn; [] lets the kernel choose. */
  laddrs: string[];
  json: boolean;
  pwd: string;
  /** Domain of the tool's jids. */
  domain: string;
  warmupS: number;
  durationS: number;
  /** Longest wait, after sending stops, for acked messages still on their way. */
  drainS: number;
  /** p2p / cluster: sender-recipient pairs. */
  pairs: number;
  /** p2p / cluster: sessions per recipient (resources d0, d1, ...; above 1 needs multi_login). */
  devices: number;
  /** Messages per sender stream not yet server-acked. */
  window: number;
  /** Padding bytes in each message's content. */
  size: number;
  /** conns: connections to open. */
  conns: number;
  /** Connections being opened at once. */
  concurrency: number;
  /** group: groups the sender writes to, and members per group (sender included). */
  groups: number;
  members: number;
  /** group: port of the member-list callback stub (0: any free port). */
  callbackPort: number;
  /** offline: backlog size. */
  messages: number;
  delivery: OfflineDelivery;
  /** conns: server pid for RSS (else read from `pidfile`). */
  pid: number | null;
  pidfile: string;
  /** Connect and login timeout, seconds. */
  timeoutS: number;
}

/** Defaults of every option but the addresses. */
export const BENCH_DEFAULTS: Omit<BenchOptions, "raddrs" | "laddrs"> = {
  json: false,
  pwd: "bench",
  domain: "bench.sara",
  warmupS: 1,
  durationS: 5,
  drainS: 5,
  pairs: 20,
  devices: 1,
  window: 10,
  size: 64,
  conns: 5000,
  concurrency: 200,
  groups: 4,
  members: 10,
  callbackPort: 4290,
  messages: 1000,
  delivery: "delay",
  pid: null,
  pidfile: "/tmp/sara.pid",
  timeoutS: 10,
};
