// `sara bench SCENARIO... [options]`: load scenarios against any emsg server
// over TCP (conns, p2p, group, offline, cluster); progress on stderr, a table
// or one JSON line per scenario on stdout.

import { parseArgs } from "node:util";
import { parseEndpoints, sourceAddresses } from "../bench/addr.ts";
import { expandShortOptions, numberOption } from "../bench/cli_args.ts";
import { LiveLine } from "../bench/live_line.ts";
import { BENCH_DEFAULTS, type BenchOptions } from "../bench/options.ts";
import { runScenarios, type ScenarioName, SCENARIOS } from "../bench/run.ts";
import { openFileLimit, portsPerSourceAddress } from "../bench/system.ts";

const D = BENCH_DEFAULTS;
const USAGE = `Usage: sara bench SCENARIO... [options]

Scenarios (several may be given; "all" runs conns p2p group offline, and
cluster when two servers are given):
  conns    N idle logged-in connections: connect+login rate, server RSS per connection
  p2p      sender/recipient pairs with a window of outstanding messages:
           delivered msgs/s, latency p50/p90/p99/max, lost, reordered
  group    one sender into groups of G members (starts a member-list callback stub)
  offline  a backlog of K messages for an offline user, then its login time and order
  cluster  p2p with every pair split over two servers (--raddr a,b)

Options:
  -a, --raddr ADDRS        server host:port (cluster: two, comma-separated) [127.0.0.1:4222]
  -l, --laddr ADDRS        source addresses 127.x.y.z to use in turn [kernel's choice]
      --json               one JSON object per scenario on stdout
  -d, --duration S         measured period [${D.durationS}]
      --warmup S           warm-up before it [${D.warmupS}]
      --drain S            longest wait for acked messages after sending stops [${D.drainS}]
  -p, --pairs N            p2p/cluster pairs [${D.pairs}]
      --devices N          p2p/cluster: sessions per recipient, needs multi_login above 1 [${D.devices}]
  -w, --window N           outstanding (not server-acked) messages per sender [${D.window}]
  -s, --size BYTES         padding per message [${D.size}]
  -n, --conns N            conns: connections [${D.conns}]
  -c, --concurrency N      connections opened at once [${D.concurrency}]
      --groups N           group: groups [${D.groups}]
  -g, --members G          group: members per group, sender included [${D.members}]
      --callback-port P    group: port of the callback stub, 0 for any [${D.callbackPort}]
  -k, --messages K         offline: backlog size [${D.messages}]
      --delivery MODE      offline: the server's offline_delivery, delay or packets [${D.delivery}]
      --pid PID            conns: server pid for RSS [read from --pidfile]
      --pidfile PATH       [${D.pidfile}]
      --pwd PWD            login password [${D.pwd}]
      --domain DOMAIN      domain of the tool's jids [${D.domain}]
      --timeout S          connect and login timeout [${D.timeoutS}]
  -h, --help

Only loopback addresses are accepted. Exit code: 0 all checks passed,
1 a scenario failed its checks, 2 bad usage.`;

/** Runs `sara bench` with the arguments after the subcommand; returns the exit code. */
export async function benchCommand(args: string[]): Promise<number> {
  let names: ScenarioName[];
  let opts: BenchOptions;
  try {
    const parsed = parse(args);
    if (parsed === null) {
      console.log(USAGE);
      return 0;
    }
    [names, opts] = parsed;
  } catch (e) {
    console.error(`sara bench: ${e instanceof Error ? e.message : e} (see sara bench --help)`);
    return 2;
  }
  const abort = new AbortController();
  const onSigint = () => abort.abort();
  Deno.addSignalListener("SIGINT", onSigint);
  try {
    const ctx = { opts, progress: new LiveLine(Deno.stderr), signal: abort.signal };
    const ok = await runScenarios(names, ctx, (text) => console.log(text));
    return ok ? 0 : 1;
  } finally {
    Deno.removeSignalListener("SIGINT", onSigint);
  }
}

function parse(args: string[]): [ScenarioName[], BenchOptions] | null {
  const { values: v, positionals } = parseArgs({
    args: expandShortOptions(args, {}),
    allowPositionals: true,
    options: {
      raddr: { type: "string", short: "a", default: "127.0.0.1:4222" },
      laddr: { type: "string", short: "l", default: "" },
      json: { type: "boolean", default: false },
      duration: { type: "string", short: "d" },
      warmup: { type: "string" },
      drain: { type: "string" },
      pairs: { type: "string", short: "p" },
      devices: { type: "string" },
      window: { type: "string", short: "w" },
      size: { type: "string", short: "s" },
      conns: { type: "string", short: "n" },
      concurrency: { type: "string", short: "c" },
      groups: { type: "string" },
      members: { type: "string", short: "g" },
      "callback-port": { type: "string" },
      messages: { type: "string", short: "k" },
      delivery: { type: "string", default: D.delivery },
      pid: { type: "string" },
      pidfile: { type: "string", default: D.pidfile },
      pwd: { type: "string", default: D.pwd },
      domain: { type: "string", default: D.domain },
      timeout: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (v.help) return null;
  const raddrs = parseEndpoints(v.raddr);
  const names = scenarioNames(positionals, raddrs.length);
  if (names.includes("cluster") && raddrs.length < 2) {
    throw new RangeError("Scenario cluster needs two servers: --raddr host:port,host:port");
  }
  if (v.delivery !== "delay" && v.delivery !== "packets") {
    throw new RangeError(`Option --delivery: "${v.delivery}" is not delay or packets`);
  }
  if (!/^[^@/\s]+$/.test(v.domain)) throw new RangeError(`Option --domain: "${v.domain}"`);
  const fdRoom = Math.max(1, openFileLimit() - 100);
  const opts: BenchOptions = {
    raddrs,
    laddrs: [],
    json: v.json,
    pwd: v.pwd,
    domain: v.domain,
    warmupS: numberOption("warmup", v.warmup, D.warmupS, 0, 600, false),
    durationS: numberOption("duration", v.duration, D.durationS, 0.1, 3600, false),
    drainS: numberOption("drain", v.drain, D.drainS, 0, 600, false),
    pairs: numberOption("pairs", v.pairs, D.pairs, 1, Math.floor(fdRoom / 2)),
    devices: numberOption("devices", v.devices, D.devices, 1, 100),
    window: numberOption("window", v.window, D.window, 1, 100_000),
    size: numberOption("size", v.size, D.size, 0, 16 * 1024 * 1024),
    conns: numberOption("conns", v.conns, D.conns, 1, fdRoom),
    concurrency: numberOption("concurrency", v.concurrency, D.concurrency, 1, 10_000),
    groups: numberOption("groups", v.groups, D.groups, 1, 10_000),
    members: numberOption("members", v.members, D.members, 2, 100_000),
    callbackPort: numberOption("callback-port", v["callback-port"], D.callbackPort, 0, 65535),
    messages: numberOption("messages", v.messages, D.messages, 1, 10_000_000),
    delivery: v.delivery,
    pid: v.pid === undefined ? null : numberOption("pid", v.pid, 0, 1, 2 ** 31),
    pidfile: v.pidfile,
    timeoutS: numberOption("timeout", v.timeout, D.timeoutS, 0.1, 600, false),
  };
  const most = Math.max(
    opts.conns,
    opts.pairs * (1 + opts.devices),
    opts.groups * (opts.members - 1) + 1,
  );
  if (names.includes("group") && opts.groups * (opts.members - 1) + 1 > fdRoom) {
    throw new RangeError(`Option --groups/--members: more connections than the open-file limit`);
  }
  opts.laddrs = sourceAddresses(v.laddr, most, portsPerSourceAddress());
  return [names, opts];
}

function scenarioNames(positionals: string[], servers: number): ScenarioName[] {
  if (positionals.length === 0) throw new RangeError("Name a scenario");
  const names: ScenarioName[] = [];
  for (const p of positionals) {
    if (p === "all") {
      names.push("conns", "p2p", "group", "offline");
      if (servers >= 2) names.push("cluster");
    } else if ((SCENARIOS as readonly string[]).includes(p)) {
      names.push(p as ScenarioName);
    } else {
      throw new RangeError(`Unknown scenario "${p}" (one of ${SCENARIOS.join(", ")}, all)`);
    }
  }
  return names;
}
