// The `sara` command line: global options, then a subcommand as in Go sara
// (run by default, setup, stop, version, help, makeconn, bench, pprof).

import { parseArgs } from "node:util";
import { benchCommand } from "./bench.ts";
import { MAIN_HELP } from "./help.ts";
import { makeconnCommand } from "./makeconn.ts";
import { DEBUG_PORT, pprofCommand } from "./pprof.ts";
import { runServer } from "./run.ts";
import { setupCommand } from "./setup.ts";
import { stopCommand } from "./stop.ts";
import { VERSION } from "./version.ts";
import { errMsg } from "../log.ts";

type Command = (args: string[]) => Promise<number>;

const COMMANDS: Record<string, Command> = {
  setup: setupCommand,
  makeconn: makeconnCommand,
  bench: benchCommand,
  pprof: pprofCommand,
  stop: stopCommand,
  version: () => {
    console.log(`sara version ${VERSION}`);
    return Promise.resolve(0);
  },
  help: () => {
    console.log(MAIN_HELP);
    return Promise.resolve(0);
  },
};
COMMANDS.h = COMMANDS.help!;

const GLOBAL = {
  config: { type: "string", short: "c" },
  debug: { type: "boolean" },
  "debug-port": { type: "string" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "v" },
  port: { type: "string" },
  wsport: { type: "string" },
  rpcport: { type: "string" },
  nodeid: { type: "string" },
  nodeaddr: { type: "string" },
  datadir: { type: "string" },
  dbaddr: { type: "string" },
  loglevel: { type: "string" },
  logfile: { type: "string" },
  pidfile: { type: "string" },
} as const;

const OVERRIDES = [
  "port",
  "wsport",
  "rpcport",
  "nodeid",
  "nodeaddr",
  "datadir",
  "dbaddr",
  "loglevel",
  "logfile",
  "pidfile",
] as const;

/** Runs the CLI with `args` (without the program name); resolves to the exit code. */
export async function main(args: string[]): Promise<number> {
  // A lenient pass finds the command; options after it are the command's own.
  const scan = parseArgs({
    args,
    options: GLOBAL,
    allowPositionals: true,
    tokens: true,
    strict: false,
  });
  const first = scan.tokens.find((t) => t.kind === "positional");
  if (first) {
    const cmd = COMMANDS[first.value];
    if (!cmd) {
      console.error(`sara: unknown command "${first.value}"\n\n${MAIN_HELP}`);
      return 2;
    }
    // Options after the command belong to it; before it they were global.
    return await cmd(args.slice(first.index + 1));
  }
  let v;
  try {
    v = parseArgs({ args, options: GLOBAL }).values;
  } catch (err) {
    console.error(`sara: ${errMsg(err)}\n\n${MAIN_HELP}`);
    return 2;
  }
  if (v.help) {
    console.log(MAIN_HELP);
    return 0;
  }
  if (v.version) return await COMMANDS.version!([]);
  const overrides: Record<string, string> = {};
  for (const key of OVERRIDES) if (v[key] !== undefined) overrides[key] = v[key];
  const debugPort = v.debug ? Number(v["debug-port"] ?? DEBUG_PORT) : null;
  return await runServer({ config: v.config, debugPort, overrides });
}
