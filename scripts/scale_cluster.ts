// Scale-out run (issue 14 point 7): N sara nodes on one Redis Cluster (3
// masters + 3 replicas, AOF always), each holding C logged-in TCP
// connections opened by a `sara makeconn` process of its own (one process may
// have at most 20,000 open files), then, with all of them held, cross-node
// p2p load from `sara bench cluster` processes over pairs of nodes. Prints
// one JSON object: logins, RSS per node (before, with the connections, after
// the load), KiB per connection, delivered msgs/s and latency p99. Loopback
// only; every process it starts is killed at the end.

import { parseArgs } from "node:util";
import { sleep } from "../src/async.ts";
import { portsPerSourceAddress, readRssKib } from "../src/bench/system.ts";
import { type Owned, runEntry } from "./fault/entry.ts";
import { DEFAULT_PORTS, LocalNodes, parsePorts, usePorts } from "./fault/nodes.ts";
import { RedisCluster } from "./failover/redis_cluster.ts";
import { ToolProcess } from "./scale/tool.ts";

/** How long the connections are held after the load before the last RSS reading. */
const SETTLE_S = 30;

const HELP = `Usage: deno run -A scripts/scale_cluster.ts [options]

Starts a Redis Cluster (3 masters, 3 replicas, AOF always) and --nodes sara
nodes on it; one \`sara makeconn\` per node opens --conns logged-in connections
to it (from source addresses 127.0.(10+i).x of its own) and holds them; once all
are in, RSS is read per node; then --load-procs \`sara bench cluster --json\`
processes (node i -> node i+1) run --pairs pairs each for --load-seconds while
the connections stay, and the connections are held ${SETTLE_S} s more (RSS again:
V8 returns heap slack after a while). Prints one JSON object; exit status 0
when every connection logged in and stayed, and the load lost and reordered
nothing. The nodes run with idle_timeout 3600: makeconn heartbeats only once
all its connections are open.

Options:
  --nodes N          sara nodes (default 5)
  --conns N          connections per node (default 19000)
  --concurrency N    logins in flight per makeconn (default 200)
  --load-procs N     bench cluster processes (default 2; 0 with one node: RSS only)
  --pairs N          pairs per bench cluster process (default 20)
  --window N         outstanding messages per sender (default 10)
  --load-seconds S   measured load period (default 10)
  --ports SPEC       ports of Redis, its bus and the nodes: LO-HI or P1,P2,...
                     (default ${DEFAULT_PORTS})
  --keep             keep the temp dirs
  -h, --help`;

interface Options {
  nodes: number;
  conns: number;
  concurrency: number;
  loadProcs: number;
  pairs: number;
  window: number;
  loadS: number;
  ports: number[];
  keep: boolean;
}

function parseOptions(args: string[]): Options | string {
  const { values: v } = parseArgs({
    args,
    options: {
      nodes: { type: "string", default: "5" },
      conns: { type: "string", default: "19000" },
      concurrency: { type: "string", default: "200" },
      "load-procs": { type: "string", default: "2" },
      pairs: { type: "string", default: "20" },
      window: { type: "string", default: "10" },
      "load-seconds": { type: "string", default: "10" },
      ports: { type: "string", default: DEFAULT_PORTS },
      keep: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (v.help) return HELP;
  const int = (name: string, s: string, min: number, max: number): number => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new RangeError(`--${name} must be an integer in ${min}..${max}`);
    }
    return n;
  };
  const nodes = int("nodes", v.nodes, 1, 20);
  return {
    nodes,
    conns: int("conns", v.conns, 1, 19_500),
    concurrency: int("concurrency", v.concurrency, 1, 10_000),
    // A bench cluster process needs two nodes.
    loadProcs: int("load-procs", v["load-procs"], 0, nodes < 2 ? 0 : nodes),
    pairs: int("pairs", v.pairs, 1, 1000),
    window: int("window", v.window, 1, 10_000),
    loadS: int("load-seconds", v["load-seconds"], 1, 600),
    ports: parsePorts(v.ports),
    keep: v.keep,
  };
}

const owned: Owned[] = [];
const mib = (kib: number | null) => kib === null ? null : Math.round(kib / 102.4) / 10;

async function run(opts: Options) {
  usePorts(opts.ports);
  const say = (s: string) => console.error(`scale: ${s}`);
  const cluster = await RedisCluster.create({ nodeTimeoutMs: 5000, fullCoverage: true });
  owned.push(cluster);
  const tools: ToolProcess[] = [];
  owned.push({ killNow: () => tools.forEach((t) => t.signal("SIGKILL")) });
  let nodes: LocalNodes | null = null;
  try {
    nodes = await LocalNodes.create(
      Array.from({ length: opts.nodes }, (_, i) => ({
        dbaddr: cluster.addr,
        nodeid: `n${String(i + 1).padStart(2, "0")}`,
        // makeconn heartbeats only once all its connections are in, which takes longer
        // than the default 100 s on a busy machine: the first ones must not time out.
        idle_timeout: 3600,
      })),
    );
    const sara = nodes;
    owned.push(sara);
    for (let i = 0; i < sara.size; i++) await sara.start(i);
    await sleep(1000);
    const rss = () => Array.from({ length: sara.size }, (_, i) => readRssKib(sara.pid(i) ?? 0));
    const rssBase = rss();
    say(`${opts.nodes} nodes up, opening ${opts.conns} connections to each`);

    const t0 = performance.now();
    // Source addresses of their own per makeconn, as many as its connections need ports.
    const perAddress = Math.ceil(opts.conns / portsPerSourceAddress());
    const laddrs = (i: number) =>
      Array.from({ length: perAddress }, (_, j) => `127.0.${10 + i}.${j + 1}`).join(",");
    const makeconns = sara.ports.map((port, i) => {
      const t = new ToolProcess([
        "makeconn",
        ...["-t", String(opts.conns), "-a", `127.0.0.1:${port}`, "-l", laddrs(i)],
        ...["-b", "20", "-d", "3600", "-c", String(opts.concurrency), "--timeout", "60"],
      ]);
      tools.push(t);
      return t;
    });
    const logins = await Promise.all(
      makeconns.map(async (t) => {
        const m = await t.waitLine(/total: (\d+) finished, fail: (\d+), time: (\d+) ms/, 600_000);
        return { finished: Number(m[1]), failed: Number(m[2]), ms: Number(m[3]) };
      }),
    );
    const loginS = (performance.now() - t0) / 1000;
    const failed = logins.reduce((n, l) => n + l.failed, 0);
    say(`all makeconns done in ${loginS.toFixed(1)} s, ${failed} failed logins; settling`);
    await sleep(3000);
    const rssConns = rss();

    say(`cross-node load: ${opts.loadProcs} x bench cluster, ${opts.pairs} pairs`);
    const loads = Array.from({ length: opts.loadProcs }, (_, i) => {
      const a = sara.ports[i]!;
      const b = sara.ports[(i + 1) % sara.size]!;
      const t = new ToolProcess([
        "bench",
        "cluster",
        "--json",
        ...["--raddr", `127.0.0.1:${a},127.0.0.1:${b}`, "-l", `127.0.0.${100 + i}`],
        ...["-p", String(opts.pairs), "-w", String(opts.window), "-d", String(opts.loadS)],
      ]);
      tools.push(t);
      return t;
    });
    const results = await Promise.all(loads.map(async (t) => {
      const m = await t.waitLine(/^\{"scenario":"cluster".*\}$/, (opts.loadS + 120) * 1000);
      return JSON.parse(m[0]) as { ok: boolean; metrics: Record<string, number> };
    }));
    const rssLoad = rss();
    // V8 gives back heap slack after a while of low allocation (BENCHMARKS.md, conns).
    say(`load done; holding the connections ${SETTLE_S} s more`);
    await sleep(SETTLE_S * 1000);
    const rssSettled = rss();
    // Ends the hold; makeconn then says how many of its connections the server closed.
    for (const t of makeconns) t.signal("SIGINT");
    const closed = await Promise.all(makeconns.map(async (t) => {
      const m = await t.waitLine(/closed by the server (\d+)/, 60_000);
      return Number(m[1]);
    }));

    const perConn = (after: (number | null)[]) =>
      after.map((r, i) =>
        r === null || rssBase[i] === null
          ? null
          : Math.round((r - rssBase[i]!) / opts.conns * 10) / 10
      );
    return {
      nodes: opts.nodes,
      conns_per_node: opts.conns,
      connections: logins.reduce((n, l) => n + l.finished - l.failed, 0),
      failed_logins: failed,
      login_phase_s: Math.round(loginS * 10) / 10,
      logins_per_s: Math.round(logins.reduce((n, l) => n + l.finished - l.failed, 0) / loginS),
      node_rss_base_mib: rssBase.map(mib),
      node_rss_with_conns_mib: rssConns.map(mib),
      node_rss_after_load_mib: rssLoad.map(mib),
      node_rss_settled_mib: rssSettled.map(mib),
      node_kib_per_conn: perConn(rssConns),
      node_kib_per_conn_settled: perConn(rssSettled),
      load: results.map((r, i) => ({
        raddr: `${sara.ports[i]}->${sara.ports[(i + 1) % sara.size]}`,
        ok: r.ok,
        delivered_per_s: r.metrics.delivered_per_s,
        latency_ms_p50: r.metrics.latency_ms_p50,
        latency_ms_p99: r.metrics.latency_ms_p99,
        lost: r.metrics.lost,
        reordered: r.metrics.reordered,
        duplicates: r.metrics.duplicates,
      })),
      delivered_per_s_total: results.reduce((n, r) => n + (r.metrics.delivered_per_s ?? 0), 0),
      latency_ms_p99_worst: results.length === 0
        ? null
        : Math.max(...results.map((r) => r.metrics.latency_ms_p99 ?? 0)),
      closed_by_server: closed,
      ok: failed === 0 && results.every((r) => r.ok) && closed.every((n) => n === 0),
    };
  } finally {
    await Promise.all(tools.map((t) => t.stop("SIGINT")));
    try {
      await nodes?.close(opts.keep);
    } finally {
      await cluster.close(opts.keep);
    }
  }
}

if (import.meta.main) {
  await runEntry({
    name: "scale_cluster",
    help: HELP,
    parse: parseOptions,
    owned,
    // As before this entry existed: an aborted scale run leaves its temp dirs.
    keep: () => true,
    limitMs: () => 20 * 60_000,
    run: async (opts) => {
      const r = await run(opts);
      console.log(JSON.stringify(r));
      return r.ok ? 0 : 1;
    },
  });
}
