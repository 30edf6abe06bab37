// Failover check of a sara cluster on a Redis Cluster (issue 14 point 7):
// three masters with a replica each (AOF, appendfsync always), two or more
// sara nodes on it, users sending to each other across the nodes with server
// acks and sequence numbers; under that load a master is SIGKILLed and its
// replica promoted. Prints one JSON line per run (figures defined in
// scripts/failover/figures.ts) and exits non-zero when any run lost,
// reordered or delayed an acked message. Loopback only, bounded in time and
// count; tests/integration/failover_test.ts runs its short form in `deno test`.

import { parseArgs } from "node:util";
import { sleep } from "../src/async.ts";
import { Ledger } from "../src/bench/ledger.ts";
import { userKeys } from "../src/store/redis_keys.ts";
import { type Owned, runEntry } from "./fault/entry.ts";
import { DEFAULT_PORTS, LocalNodes, parsePorts, usePorts } from "./fault/nodes.ts";
import { figures, LATE_MS } from "./failover/figures.ts";
import { WriteProbe } from "./failover/probe.ts";
import { inSlots, RedisCluster } from "./failover/redis_cluster.ts";
import { jidOf, Load, User } from "./failover/users.ts";

const HELP = `Usage: deno run -A scripts/failover.ts [options]

Per run: starts a Redis Cluster of 3 masters and 3 replicas (AOF, appendfsync
always, cluster-node-timeout --node-timeout) and --nodes sara nodes on it, all
on 127.0.0.1 in the --ports range; --users users (user i on node i mod N) send
to users of the other nodes at --rate msgs/s each, at most --window unacked,
acking what they receive. At --fault-at s a master is SIGKILLed; the run waits
for its replica to report role:master (the promotion). A direct probe writes a
key of each master every 10 ms meanwhile. After --duration s sending stops,
the users wait for their acks and live deliveries (--drain), then log in once
more (what still waited in an inbox comes then). Everything started is killed.

One JSON line per run on stdout:
  lost          acked, never received (not even at the final login)
  late          acked, first received more than ${LATE_MS} ms after the later of its
                first send and the promotion, or only at the final login
  reordered     per sender and recipient, a first receipt older than an earlier one
                (reordered_after_store_error: of those, messages refused with
                store_error once and sent again while newer ones were in flight)
  duplicates    receipts of an id already received (clients count before dedup);
                duplicates_at_relogin: those the final login brought
  write_stall_healthy_ms
                longest send-to-ack wait of a message to a user whose keys are on
                a master that was not killed (resends after store_error included);
                write_stall_healthy_worst: that message's id, sends, first send
                and ack (ms after the kill) and its store_error notices
  redis_refused_victim_ms, redis_refused_healthy_ms
                time the probe's writes to the killed master's slots (and, worst
                of the others, to a healthy master's) failed
  write_stall_healthy_beyond_redis_ms = stall - redis_refused_healthy_ms
Users treat a store_error notice as an SDK does: the message goes again after
200 ms (same id) and nothing newer goes to that recipient until it is acked.
Exit status: 0 when every run had 0 lost, 0 late and 0 reordered; 1 when not;
2 when the check could not run.

Options:
  --runs N               runs, each on a fresh cluster (default 1)
  --nodes N              sara nodes (default 2)
  --users N              users (default 100)
  --rate N               messages per second per user (default 20)
  --window N             unacked messages per user (default 20)
  --duration S           sending time per run (default 20)
  --fault-at S           SIGKILL of a master this long after the load started (default 6)
  --drain S              limit of the wait for acks and deliveries (default 20)
  --full-coverage yes|no cluster-require-full-coverage (default yes)
  --node-timeout MS      cluster-node-timeout (default 2000)
  --ports LO-HI|P1,P2,.. ports of Redis, its bus and the nodes, a range or a list
                         (default ${DEFAULT_PORTS})
  --keep                 keep the temp dirs (sara.log, Redis AOF) of each run
  --quiet                no progress on stderr
  -h, --help             this text`;

interface Options {
  runs: number;
  nodes: number;
  users: number;
  rate: number;
  window: number;
  durationMs: number;
  faultAtMs: number;
  drainMs: number;
  fullCoverage: boolean;
  nodeTimeoutMs: number;
  ports: number[];
  keep: boolean;
  quiet: boolean;
}

function parseOptions(args: string[]): Options | string {
  const { values: v } = parseArgs({
    args,
    options: {
      runs: { type: "string", default: "1" },
      nodes: { type: "string", default: "2" },
      users: { type: "string", default: "100" },
      rate: { type: "string", default: "20" },
      window: { type: "string", default: "20" },
      duration: { type: "string", default: "20" },
      "fault-at": { type: "string", default: "6" },
      drain: { type: "string", default: "20" },
      "full-coverage": { type: "string", default: "yes" },
      "node-timeout": { type: "string", default: "2000" },
      ports: { type: "string", default: DEFAULT_PORTS },
      keep: { type: "boolean", default: false },
      quiet: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (v.help) return HELP;
  const num = (name: string, s: string, min: number, max = Infinity): number => {
    const n = Number(s);
    if (!Number.isFinite(n) || n < min || n > max) {
      throw new RangeError(`--${name} must be a number in ${min}..${max}`);
    }
    return n;
  };
  const int = (name: string, s: string, min: number, max: number) => {
    const n = num(name, s, min, max);
    if (!Number.isInteger(n)) throw new RangeError(`--${name} must be an integer`);
    return n;
  };
  if (v["full-coverage"] !== "yes" && v["full-coverage"] !== "no") {
    throw new RangeError("--full-coverage must be yes or no");
  }
  const opts: Options = {
    runs: int("runs", v.runs, 1, 20),
    nodes: int("nodes", v.nodes, 2, 10),
    users: int("users", v.users, 2, 5000),
    rate: num("rate", v.rate, 0.1, 10_000),
    window: int("window", v.window, 1, 10_000),
    durationMs: num("duration", v.duration, 1, 600) * 1000,
    faultAtMs: num("fault-at", v["fault-at"], 0, 600) * 1000,
    drainMs: num("drain", v.drain, 1, 600) * 1000,
    fullCoverage: v["full-coverage"] === "yes",
    nodeTimeoutMs: int("node-timeout", v["node-timeout"], 100, 60_000),
    ports: parsePorts(v.ports),
    keep: v.keep,
    quiet: v.quiet,
  };
  if (opts.faultAtMs >= opts.durationMs) {
    throw new RangeError("--fault-at must be before --duration");
  }
  return opts;
}

/** Processes an emergency exit must SIGKILL, and their dirs. */
const owned: Owned[] = [];

async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const until = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > until) return false;
    await sleep(20);
  }
  return true;
}

/** One run on a fresh cluster; resolves with its JSON object. */
async function run(opts: Options, n: number, say: (s: string) => void) {
  const started = performance.now();
  const cluster = await RedisCluster.create({
    nodeTimeoutMs: opts.nodeTimeoutMs,
    fullCoverage: opts.fullCoverage,
  });
  owned.push({ dirs: cluster.dirs, killNow: () => cluster.killNow() });
  let nodes: LocalNodes | null = null;
  const users: User[] = [];
  const loops: Promise<void>[] = [];
  let ticker: ReturnType<typeof setInterval> | undefined;
  let probe: WriteProbe | null = null;
  let load: Load | null = null;
  try {
    nodes = await LocalNodes.create(
      Array.from({ length: opts.nodes }, (_, i) => ({
        dbaddr: cluster.addr,
        nodeid: `n${String(i + 1).padStart(2, "0")}`,
      })),
    );
    const sara = nodes;
    owned.push({ dirs: [sara.dir], killNow: () => sara.killNow() });
    for (let i = 0; i < sara.size; i++) await sara.start(i);
    const masters = await cluster.masters();
    const masterOf: number[] = [];
    for (let u = 0; u < opts.users; u++) {
      const slot = await cluster.keySlot(userKeys(jidOf(u)).inbox);
      masterOf.push(masters.find((m) => inSlots(m.slots, slot))!.port);
    }
    const ledger = new Ledger();
    load = new Load(ledger, opts, sara.ports);
    const l = load;
    for (let u = 0; u < opts.users; u++) users.push(new User(u, l));
    probe = await WriteProbe.start(cluster, masters);
    loops.push(...users.map((u) => u.run()));
    if (!await waitFor(() => users.every((u) => u.loginsDone > 0), 30_000)) {
      throw new Error("not every user logged in within 30 s");
    }
    say(`run ${n}: ${opts.users} users logged in on ${opts.nodes} nodes, sending`);
    let last = performance.now();
    ticker = setInterval(() => {
      const now = performance.now();
      for (const u of users) u.tick(now - last, now);
      last = now;
    }, 10);
    const t0 = performance.now();
    await sleep(opts.faultAtMs);
    const victim = masters[Math.floor(Math.random() * masters.length)]!;
    const kill = performance.now();
    await cluster.kill(victim.port);
    say(`run ${n}: master 127.0.0.1:${victim.port} SIGKILLed (${new Date().toISOString()})`);
    const promoted = await cluster.waitPromoted(victim.replica!, 60_000);
    say(
      `run ${n}: replica 127.0.0.1:${victim.replica} promoted after ${
        Math.round(promoted - kill)
      } ms`,
    );
    await sleep(Math.max(0, opts.durationMs - (performance.now() - t0)));
    l.sending = false;
    const unacked = () => users.reduce((s, u) => s + u.unacked, 0);
    await waitFor(() => unacked() === 0, opts.drainMs);
    await waitFor(() => {
      const p = ledger.progress();
      return p.received >= p.expected;
    }, Math.min(opts.drainMs, 5000));
    // The login the contract promises: whatever still waits in an inbox comes now.
    l.duplicatesLive = ledger.summary().duplicates;
    l.final = true;
    const logins = users.map((u) => u.loginsDone);
    for (const u of users) u.relogin();
    await waitFor(() => users.every((u, i) => u.loginsDone > logins[i]!), opts.drainMs);
    await sleep(300);
    const seen = await probe.stop(kill, victim.port);
    probe = null;
    return {
      run: n,
      full_coverage: opts.fullCoverage ? "yes" : "no",
      nodes: opts.nodes,
      users: opts.users,
      rate: opts.rate,
      window: opts.window,
      killed_master: `127.0.0.1:${victim.port}`,
      ...figures(l, ledger, seen, { kill, promoted }, masterOf, victim.port, unacked()),
      probe: seen.map((p) => ({ port: p.port, victim: p.victim, refused_ms: p.refused_ms })),
      elapsed_s: Math.round((performance.now() - started) / 100) / 10,
    };
  } finally {
    clearInterval(ticker);
    if (load) load.done = true;
    for (const u of users) u.stop();
    await Promise.all(loops);
    if (probe) await probe.stop(0, 0);
    try {
      // Nodes first: a node stopping still writes to Redis.
      await nodes?.close(opts.keep);
    } finally {
      await cluster.close(opts.keep);
      owned.length = 0;
    }
    if (opts.keep) say(`run ${n}: kept ${[nodes?.dir, ...cluster.dirs].join(" ")}`);
  }
}

async function main(opts: Options): Promise<number> {
  usePorts(opts.ports);
  const say = (s: string) => opts.quiet || console.error(`failover: ${s}`);
  let failed = false;
  for (let n = 1; n <= opts.runs; n++) {
    const r = await run(opts, n, say);
    console.log(JSON.stringify(r));
    if (r.acked === 0) throw new Error(`run ${n}: nothing was acked, so nothing was checked`);
    failed ||= r.lost > 0 || r.late > 0 || r.reordered > 0;
  }
  return failed ? 1 : 0;
}

if (import.meta.main) {
  await runEntry({
    name: "failover",
    help: HELP,
    parse: parseOptions,
    owned,
    keep: (opts) => opts.keep,
    limitMs: (opts) => opts.runs * (opts.durationMs + 3 * opts.drainMs + 120_000),
    run: main,
  });
}
