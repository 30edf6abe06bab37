// Metrics read from the node's state when /metrics is scraped, at no cost
// between scrapes: open connections, sessions, writer backlog, the store's
// drop counters, cross-node publishes, memory and CPU.

import process from "node:process";
import type { Registry } from "prom-client";
import type { Store } from "../store/store.ts";
import { labelled, scrapedCounter, scrapedGauge, single } from "./scraped.ts";

/** Counts a cluster node keeps of its traffic with the other nodes. */
export interface ClusterCounts {
  /** Publishes to other nodes' channels, and those that surely did not arrive. */
  readonly published: { readonly ok: number; readonly failed: number };
  /** Messages other nodes published to this one. */
  readonly received: number;
  /** Stored messages handed over again after a failed hand-over or fan-out (Router.retried). */
  readonly retried: number;
}

/** Where the scraped values come from. */
export interface NodeState {
  nodeid: string;
  /** Every connection's session, logged in or not. */
  sessions: Iterable<{ readonly conn: { readonly transport: string } }>;
  /** Sessions logged in on this node. */
  online(): number;
  /** Users with a session on this node (fewer than sessions with multi_login). */
  users(): number;
  /** Appends and removes waiting for their group commit. */
  backlog(): number;
  store: Pick<Store, "dropped" | "retries">;
  /** Null on a standalone node. */
  cluster: ClusterCounts | null;
}

const START_SECONDS = Date.now() / 1000;
const SEEDED_TRANSPORTS = ["tcp", "tls", "ws", "wss"];

/** Registers the gauges (and store-kept counters) of `node` on `registry`. */
export function watchNode(registry: Registry, node: NodeState): void {
  const gauge = (name: string, help: string, read: () => number) =>
    scrapedGauge(registry, { name, help, rows: () => single(read()) });
  const counter = (name: string, help: string, read: () => number) =>
    scrapedCounter(registry, { name, help, rows: () => single(read()) });

  scrapedGauge(registry, {
    name: "sara_info",
    help: "Always 1; labels name the node and the Deno runtime.",
    labelNames: ["nodeid", "deno"],
    rows: () => [[{ nodeid: node.nodeid, deno: Deno.version.deno }, 1]],
  });
  scrapedGauge(registry, {
    name: "sara_connections",
    help: "Open client connections (logged in or not), by transport.",
    labelNames: ["transport"],
    rows: () => {
      // Known transports read 0 rather than vanish when idle.
      const counts = new Map<string, number>(SEEDED_TRANSPORTS.map((t) => [t, 0]));
      for (const s of node.sessions) {
        counts.set(s.conn.transport, (counts.get(s.conn.transport) ?? 0) + 1);
      }
      return labelled("transport", [...counts.keys()], [...counts.values()]);
    },
  });
  gauge(
    "sara_sessions_online",
    "Sessions logged in on this node (one per user unless multi_login).",
    node.online,
  );
  gauge("sara_users_online", "Users with at least one session on this node.", node.users);
  gauge(
    "sara_inbox_writer_backlog",
    "Inbox appends and removes waiting for their group commit.",
    node.backlog,
  );
  counter(
    "sara_offline_expired_total",
    "Stored messages deleted after offline_expire.",
    () => node.store.dropped.expired,
  );
  scrapedCounter(registry, {
    name: "sara_offline_dropped_total",
    help:
      "Messages the store did not keep: offline_max or offline_max_bytes cap, offline_policy, or a blacklist.",
    labelNames: ["reason"],
    rows: () => {
      const d = node.store.dropped;
      return labelled("reason", ["cap", "policy", "blocked"], [d.cap, d.policy, d.blocked]);
    },
  });
  if (node.store.retries) {
    scrapedCounter(registry, {
      name: "sara_store_retries_total",
      help: "Store commands sent again after a Redis Cluster error (failover, resharding), " +
        "by whether they then succeeded.",
      labelNames: ["result"],
      rows: () => {
        const r = node.store.retries!;
        return labelled("result", ["ok", "failed"], [r.ok, r.failed]);
      },
    });
  }
  const cluster = node.cluster;
  if (cluster) {
    scrapedCounter(registry, {
      name: "sara_cluster_publishes_total",
      help: "Publishes to other nodes (messages, kicks, blacklist changes), by result.",
      labelNames: ["result"],
      rows: () =>
        labelled("result", ["ok", "failed"], [cluster.published.ok, cluster.published.failed]),
    });
    counter(
      "sara_cluster_received_total",
      "Messages other nodes published to this one.",
      () => cluster.received,
    );
    counter(
      "sara_cluster_retries_total",
      "Stored messages handed to their recipient's node again after a failed hand-over or fan-out.",
      () => cluster.retried,
    );
  }
  gauge("sara_process_resident_memory_bytes", "Resident set size.", () => Deno.memoryUsage().rss);
  gauge("sara_process_heap_used_bytes", "V8 heap in use.", () => Deno.memoryUsage().heapUsed);
  gauge("sara_process_heap_total_bytes", "V8 heap reserved.", () => Deno.memoryUsage().heapTotal);
  counter("sara_process_cpu_seconds_total", "User and system CPU time.", () => {
    const { user, system } = process.cpuUsage();
    return (user + system) / 1e6;
  });
  gauge(
    "sara_process_start_time_seconds",
    "Start time, seconds since the epoch.",
    () => START_SECONDS,
  );
}
