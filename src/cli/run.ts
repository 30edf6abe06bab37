// Running the server: load config (file, then flags), write the pid file,
// start, and stop cleanly on SIGINT/SIGTERM; SIGHUP reopens the log file.

import inspector from "node:inspector";
import { DEFAULT_CONFIG_PATH } from "../config/config.ts";
import type { Config } from "../config/config.ts";
import { loadConfig, setKey } from "../config/load.ts";
import { errMsg, Logger } from "../log.ts";
import { startServer } from "../server.ts";

/** Global options of `sara` that run the server. */
export interface RunOptions {
  config?: string;
  /** Open the V8 inspector on 127.0.0.1 at this port (for `sara pprof`), or null. */
  debugPort: number | null;
  overrides: Partial<Record<keyof Config, string>>;
}

const INT_FLAGS = new Set(["port", "wsport", "rpcport", "loglevel"]);

/** Runs the server until a signal stops it; returns the exit code. */
export async function runServer(opts: RunOptions): Promise<number> {
  const path = opts.config ?? DEFAULT_CONFIG_PATH;
  let config: Config;
  let warnings: string[];
  try {
    ({ config, warnings } = await loadConfig(path, opts.config !== undefined));
    for (const [key, raw] of Object.entries(opts.overrides)) {
      const value = INT_FLAGS.has(key) ? Number(raw) : raw;
      setKey(config, key as keyof Config, value, `flag --${key}`);
    }
  } catch (err) {
    console.error(`sara: ${errMsg(err)}`);
    return 2;
  }
  const log = new Logger({
    level: config.loglevel,
    format: config.logformat,
    file: config.logfile,
    stdout: true,
  });
  for (const w of warnings) log.warn(w);
  // A stray rejection is a bug to log, never a reason to drop every session.
  globalThis.addEventListener("unhandledrejection", (e) => {
    e.preventDefault();
    log.error(`unhandled rejection: ${errMsg(e.reason)}`);
  });

  // Listening before startup: a signal during it must not kill the process
  // with its default action; it aborts the startup instead (docs/operations.md).
  const { promise: signalled, resolve } = Promise.withResolvers<string>();
  const abort = new AbortController();
  let stopSignal: Deno.Signal | null = null;
  const onStop = (sig: Deno.Signal) => () => {
    stopSignal ??= sig;
    abort.abort(new Error(`${sig} received`));
    resolve(sig);
  };
  const handlers: [Deno.Signal, () => void][] = [
    ["SIGINT", onStop("SIGINT")],
    ["SIGTERM", onStop("SIGTERM")],
    ["SIGHUP", () => log.reopen()],
  ];
  for (const [sig, fn] of handlers) Deno.addSignalListener(sig, fn);
  if (opts.debugPort !== null) {
    // Loopback only: the inspector runs arbitrary code for whoever reaches it.
    inspector.open(opts.debugPort, "127.0.0.1");
    // The port it got, for --debug-port 0 (any free port).
    const port = new URL(inspector.url()!.replace(/^ws:/, "http:")).port;
    log.warn(`debug: V8 inspector on 127.0.0.1:${port} (sara pprof --port ${port})`);
  }
  const deadline = setTimeout(
    () =>
      abort.abort(new Error(`not listening within startup_timeout (${config.startup_timeout} s)`)),
    config.startup_timeout * 1000,
  );
  let server;
  try {
    server = await unlessAbortedLong(
      startServer(config, log, { signal: abort.signal }),
      abort.signal,
    );
  } catch (err) {
    for (const [s, fn] of handlers) Deno.removeSignalListener(s, fn);
    if (stopSignal) log.info(`${stopSignal} received during startup, stopped before listening`);
    else log.error(`startup failed: ${errMsg(err)}`);
    log.close();
    return stopSignal ? 0 : 1;
  } finally {
    clearTimeout(deadline);
  }
  try {
    // Written before any client's packet is handled (an async write could
    // finish after the first logins were answered; cli_test failed so once).
    Deno.writeTextFileSync(config.pidfile, `${Deno.pid}\n`);
  } catch (err) {
    log.warn(`cannot write pid file ${config.pidfile}: ${errMsg(err)}`);
  }

  const sig = await signalled;
  log.info(`${sig} received, stopping`);
  for (const [s, fn] of handlers) Deno.removeSignalListener(s, fn);
  await server.stop();
  await removePidfile(config.pidfile);
  log.close();
  return 0;
}

// How long an aborted startup may take to undo what it started before the process exits anyway.
const UNWIND_GRACE_MS = 5000;

/**
 * `start`, or its abort reason once `signal` has been aborted for UNWIND_GRACE_MS: a stage
 * that does not heed the signal cannot keep the process from exiting.
 */
function unlessAbortedLong<T>(start: Promise<T>, signal: AbortSignal): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort = () => {};
  const late = new Promise<never>((_, reject) => {
    onAbort = () => timer = setTimeout(() => reject(signal.reason), UNWIND_GRACE_MS);
    signal.addEventListener("abort", onAbort, { once: true });
  });
  return Promise.race([start, late]).finally(() => {
    signal.removeEventListener("abort", onAbort);
    clearTimeout(timer);
  });
}

async function removePidfile(path: string): Promise<void> {
  try {
    if ((await Deno.readTextFile(path)).trim() === String(Deno.pid)) await Deno.remove(path);
  } catch {
    // Already gone, or never written.
  }
}
