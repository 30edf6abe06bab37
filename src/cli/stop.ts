// `sara stop`: signals the server named by the pid file and waits for it to exit.

import { parseArgs } from "node:util";
import { DEFAULT_CONFIG_PATH } from "../config/config.ts";
import { loadConfig } from "../config/load.ts";
import { STOP_HELP } from "./help.ts";

const WAIT_MS = 30_000;

/** Runs `sara stop [--pidfile PATH] [-c CONFIG]`; returns the exit code. */
export async function stopCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      pidfile: { type: "string" },
      config: { type: "string", short: "c" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(STOP_HELP);
    return 0;
  }
  let pidfile = values.pidfile;
  if (pidfile === undefined) {
    const { config } = await loadConfig(values.config ?? DEFAULT_CONFIG_PATH, !!values.config);
    pidfile = config.pidfile;
  }
  let pid: number;
  try {
    pid = Number((await Deno.readTextFile(pidfile)).trim());
  } catch {
    console.error(`sara stop: no pid file ${pidfile}: is sara running?`);
    return 1;
  }
  if (!Number.isInteger(pid) || pid <= 0) {
    console.error(`sara stop: pid file ${pidfile} holds no pid`);
    return 1;
  }
  try {
    Deno.kill(pid, "SIGTERM");
  } catch {
    console.error(`sara stop: no process ${pid} (stale pid file ${pidfile})`);
    return 1;
  }
  const deadline = Date.now() + WAIT_MS;
  while (Date.now() < deadline) {
    if (!alive(pid)) {
      console.log(`sara stop: stopped ${pid}`);
      return 0;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  console.error(`sara stop: ${pid} still running after ${WAIT_MS / 1000}s`);
  return 1;
}

function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // A zombie has exited; only its parent has not reaped it yet.
    return !/^\d+ \(.*\) Z /.test(stat);
  } catch {
    return false;
  }
}
