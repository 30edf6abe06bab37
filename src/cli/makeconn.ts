// `sara makeconn`: the seed's connection load tool (flags --total/-t,
// --laddr/-l, --raddr/-a, --heartbeat/-b, --messagegap/-mg, --messagesize/-ms).

import { parseArgs } from "node:util";
import { parseEndpoint, sourceAddresses } from "../bench/addr.ts";
import { expandShortOptions, numberOption } from "../bench/cli_args.ts";
import { LiveLine } from "../bench/live_line.ts";
import { type MakeconnOptions, runMakeconn } from "../bench/makeconn.ts";
import { openFileLimit, portsPerSourceAddress } from "../bench/system.ts";

const USAGE = `Usage: sara makeconn [options]

Opens and logs in N connections, keeps them alive with heartbeats and,
with --messagesize, sends messages to random peers; shows SEND RECV SEND/s RECV/s.

Options:
  -t,  --total N            connections [1024]
  -a,  --raddr HOST:PORT    server (loopback only) [localhost:4222]
  -l,  --laddr ADDRS        source addresses 127.x.y.z, comma-separated, used in turn
                            [the kernel's choice; several 127.0.0.x when N needs more
                            ports than one address has]
  -b,  --heartbeat S        heartbeat period [50]
  -mg, --messagegap S       seconds between messages of one connection [5]
  -ms, --messagesize KIB    message size in KiB, 0 for no messages [0]
                            (keep it under the server's max_packet, 64 KiB by default)
  -d,  --duration S         how long to hold the connections [60]
  -c,  --concurrency N      connections opened at once [200]
       --pwd PWD            login password [bench]
       --domain DOMAIN      domain of the jids [bench.sara]
       --timeout S          connect and login timeout [10]
  -h,  --help`;

/** Runs `sara makeconn` with the arguments after the subcommand; returns the exit code. */
export async function makeconnCommand(args: string[]): Promise<number> {
  let opts: MakeconnOptions;
  try {
    const parsed = parse(args);
    if (parsed === null) {
      console.log(USAGE);
      return 0;
    }
    opts = parsed;
  } catch (e) {
    console.error(
      `sara makeconn: ${e instanceof Error ? e.message : e} (see sara makeconn --help)`,
    );
    return 2;
  }
  const abort = new AbortController();
  const onSigint = () => abort.abort();
  Deno.addSignalListener("SIGINT", onSigint);
  try {
    const summary = await runMakeconn(opts, new LiveLine(Deno.stdout), abort.signal);
    return summary.failed === 0 ? 0 : 1;
  } finally {
    Deno.removeSignalListener("SIGINT", onSigint);
  }
}

function parse(args: string[]): MakeconnOptions | null {
  const { values: v } = parseArgs({
    args: expandShortOptions(args, { mg: "messagegap", ms: "messagesize" }),
    options: {
      total: { type: "string", short: "t" },
      raddr: { type: "string", short: "a", default: "localhost:4222" },
      laddr: { type: "string", short: "l", default: "" },
      heartbeat: { type: "string", short: "b" },
      messagegap: { type: "string" },
      messagesize: { type: "string" },
      duration: { type: "string", short: "d" },
      concurrency: { type: "string", short: "c" },
      pwd: { type: "string", default: "bench" },
      domain: { type: "string", default: "bench.sara" },
      timeout: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (v.help) return null;
  const total = numberOption("total", v.total, 1024, 1, Math.max(1, openFileLimit() - 100));
  if (!/^[^@/\s]+$/.test(v.domain)) throw new RangeError(`Option --domain: "${v.domain}"`);
  return {
    raddr: parseEndpoint(v.raddr),
    laddrs: sourceAddresses(v.laddr, total, portsPerSourceAddress()),
    total,
    heartbeatS: numberOption("heartbeat", v.heartbeat, 50, 0.1, 3600, false),
    messageGapS: numberOption("messagegap", v.messagegap, 5, 0.1, 3600, false),
    messageSizeKib: numberOption("messagesize", v.messagesize, 0, 0, 16_384, false),
    durationS: numberOption("duration", v.duration, 60, 0, 86_400, false),
    concurrency: numberOption("concurrency", v.concurrency, 200, 1, 10_000),
    pwd: v.pwd,
    domain: v.domain,
    timeoutS: numberOption("timeout", v.timeout, 10, 0.1, 600, false),
  };
}
