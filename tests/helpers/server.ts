// Starts a whole sara node in-process on free ports with a fresh data dir,
// for tests; `await using` stops it and removes the data dir.

import type { Config } from "../../src/config/config.ts";
import { defaultConfig } from "../../src/config/config.ts";
import { Logger } from "../../src/log.ts";
import { type Server, startServer } from "../../src/server.ts";
import type { Store } from "../../src/store/store.ts";

/** A node for one test. */
export interface TestServer extends AsyncDisposable {
  server: Server;
  config: Config;
  /** Bound TCP port. */
  port: number;
  /** Bound WebSocket, TLS and WSS ports (0 when that listener is off). */
  wsPort: number;
  tlsPort: number;
  wssPort: number;
  /** Bound HTTP RPC port. */
  rpcPort: number;
  /** Bound Thrift push port. */
  thriftPort: number;
  /** Stops the node but keeps its data dir (for restart tests). */
  stop(): Promise<void>;
}

/** Config for tests: port 0 everywhere, quiet logs, a temp data dir. */
export async function testConfig(overrides: Partial<Config> = {}): Promise<Config> {
  const config = defaultConfig();
  Object.assign(config, {
    bind: "127.0.0.1",
    port: 0,
    wsport: 0,
    tlsport: 0,
    wssport: 0,
    rpcport: 0,
    nodeaddr: "127.0.0.1:0",
    enable_ws: false,
    datadir: await Deno.makeTempDir({ prefix: "sara-test-" }),
    logfile: "",
    loglevel: Number(Deno.env.get("SARA_TEST_LOGLEVEL") ?? -1),
    pidfile: "",
  }, overrides);
  return config;
}

/** Extra ways to set a test node up. */
export interface TestServerOptions {
  /** Makes the node's store (e.g. a fault-injecting wrapper of `openStore(config)`). */
  store?: (config: Config) => Promise<Store>;
  /** The node's logger (e.g. one whose lines the test reads back); quiet by default. */
  log?: Logger;
}

/** Starts a node; pass the same `datadir` again to restart on the same store. */
export async function startTestServer(
  overrides: Partial<Config> = {},
  opts: TestServerOptions = {},
): Promise<TestServer> {
  const config = await testConfig(overrides);
  const log = opts.log ?? new Logger({
    level: config.loglevel,
    format: config.logformat,
    file: "",
    stdout: config.loglevel >= 0,
  });
  const server = await startServer(config, log, { store: await opts.store?.(config) });
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await server.stop();
  };
  return {
    server,
    config,
    port: server.listeners.get("tcp")?.port ?? 0,
    wsPort: server.listeners.get("ws")?.port ?? 0,
    tlsPort: server.listeners.get("tls")?.port ?? 0,
    wssPort: server.listeners.get("wss")?.port ?? 0,
    rpcPort: server.listeners.get("rpc")?.port ?? 0,
    thriftPort: server.listeners.get("thrift push")?.port ?? 0,
    stop,
    async [Symbol.asyncDispose]() {
      await stop();
      if (!("datadir" in overrides)) await Deno.remove(config.datadir, { recursive: true });
    },
  };
}

/** Polls `/readyz` on `rpcPort` until it answers `status` (at most `ms`); returns the body. */
export async function readyzUntil(rpcPort: number, status: number, ms: number): Promise<string> {
  const deadline = Date.now() + ms;
  for (;;) {
    const res = await fetch(`http://127.0.0.1:${rpcPort}/readyz`);
    const body = await res.text();
    if (res.status === status) return body;
    if (Date.now() > deadline) throw new Error(`/readyz still ${res.status} (${body.trim()})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
