// Throwaway redis-server processes for tests: one server or a 3-master Redis Cluster (with
// or without one replica per master), each node on a port reserved for this process (its
// cluster bus on another one) with its own temp dir and AOF on (so restart() keeps data).

import { findOnPath, spawnTied } from "../../scripts/fault/spawn.ts";
import { releasePort, withReservedPorts } from "./ports.ts";

/** Options of {@link startRedis}. */
export interface StartRedisOptions {
  /** AOF fsync policy; default "everysec" (what production runs). */
  appendfsync?: "always" | "everysec" | "no";
  /** Data dir to use (kept on stop); default: a fresh temp dir, removed by stop(). */
  dir?: string;
  /**
   * A lone cluster-enabled node that owns no slots: cluster_state:fail until slots are added
   * (CLUSTER ADDSLOTSRANGE), like a Redis Cluster not formed yet.
   */
  clusterNode?: boolean;
}

/** A running redis-server child process. */
export interface RedisServer extends AsyncDisposable {
  readonly port: number;
  /** "127.0.0.1:PORT", the form of the `dbaddr` config key. */
  readonly addr: string;
  /** Data dir holding the AOF (appendonlydir/). */
  readonly dir: string;
  /** Graceful shutdown (AOF flushed), awaits exit, removes an owned temp dir. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL, like a crash; awaits exit and keeps the dir so restart() can follow. */
  kill(): Promise<void>;
  /** Shuts down if running, then starts again on the same port and dir; waits for PING. */
  restart(): Promise<void>;
  /** False once stopped or killed (until restarted). */
  readonly running: boolean;
}

/** Options of {@link startRedisCluster}. */
export interface StartRedisClusterOptions {
  /** AOF fsync policy of every node; default "everysec". */
  appendfsync?: "always" | "everysec" | "no";
  /** Replicas per master (0 or 1); default 0. With 1 a killed master's replica takes over. */
  replicas?: 0 | 1;
  /**
   * `cluster-require-full-coverage`; default true (Redis' default): while any slot has no
   * master, every node refuses every key command (CLUSTERDOWN). False: only that slot's keys.
   */
  fullCoverage?: boolean;
}

/** A running Redis Cluster of 3 masters (and their replicas, if asked for). */
export interface RedisCluster extends AsyncDisposable {
  readonly ports: number[];
  /** "127.0.0.1:p1,127.0.0.1:p2,...", every node, the form of the `dbaddr` config key. */
  readonly addr: string;
  /** The nodes, e.g. to kill() one; masters and replicas alike (roles change on failover). */
  readonly nodes: RedisServer[];
  /** The node that masters `key`'s slot now, as the node answering on `via` sees it. */
  masterOf(key: string, via?: RedisServer): Promise<RedisServer>;
  /** The replica of `master` (with `replicas: 1`). */
  replicaOf(master: RedisServer): Promise<RedisServer>;
  /** Resolves once `node` reports role:master and every live node agrees it owns slots. */
  waitPromoted(node: RedisServer, ms?: number): Promise<void>;
  /** Stops every node and removes their dirs. Idempotent. */
  stop(): Promise<void>;
}

const HOST = "127.0.0.1";
const STARTUP_TIMEOUT_MS = 15_000;
const COMMAND_TIMEOUT_MS = 5_000;
const OUTPUT_TAIL_CHARS = 8_000;

/**
 * Starts redis-server on a reserved loopback port with AOF on and RDB snapshots off, and
 * resolves once it answers PING. Throws (never skips) when redis-server is not installed.
 */
export async function startRedis(opts: StartRedisOptions = {}): Promise<RedisServer> {
  const dir = opts.dir ?? await Deno.makeTempDir({ prefix: "sara-redis-" });
  const ownsDir = opts.dir === undefined;
  try {
    const count = opts.clusterNode ? 2 : 1;
    const { ports, value: [proc, args] } = await withReservedPorts(count, async ([p, bus]) => {
      // Announced: alone, a node does not know its address and CLUSTER SLOTS names none.
      const announce = ["--cluster-announce-ip", HOST];
      const cluster = opts.clusterNode ? [...clusterArgs(bus!, {}), ...announce] : [];
      const args = [...serverArgs(p!, dir, opts), ...cluster];
      return [await launch(args, p!), args] as const;
    });
    return new Server(ports[0]!, dir, ownsDir, proc, args, ports);
  } catch (err) {
    if (ownsDir) await Deno.remove(dir, { recursive: true });
    throw err;
  }
}

/**
 * Starts three cluster-enabled masters (and with `replicas: 1` one replica each), joins them
 * with `redis-cli --cluster create` and resolves once every node reports cluster_state:ok and
 * every replica is in sync. The node timeout is 2 s. Without replicas a node killed for longer
 * puts the cluster in state fail (CLUSTERDOWN) until it is restarted and rejoins; with them its
 * replica is promoted after about that time.
 */
export async function startRedisCluster(
  opts: StartRedisClusterOptions = {},
): Promise<RedisCluster> {
  const nodes: Server[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.stop()));
  };
  const replicas = opts.replicas ?? 0;
  try {
    for (let i = 0; i < 3 * (1 + replicas); i++) {
      const dir = await Deno.makeTempDir({ prefix: "sara-redis-cluster-" });
      try {
        const { ports, value: [proc, args] } = await withReservedPorts(2, async ([p, bus]) => {
          const args = [...serverArgs(p!, dir, opts), ...clusterArgs(bus!, opts)];
          return [await launch(args, p!), args] as const;
        });
        nodes.push(new Server(ports[0]!, dir, true, proc, args, ports));
      } catch (err) {
        await Deno.remove(dir, { recursive: true });
        throw err;
      }
    }
    const addrs = nodes.map((n) => n.addr);
    await runRedisCli([
      "--cluster",
      "create",
      ...addrs,
      "--cluster-replicas",
      String(replicas),
      "--cluster-yes",
    ]);
    await Promise.all(nodes.map((n) => waitClusterOk(n.port)));
    await Promise.all(nodes.map((n) => waitReplicaInSync(n.port, 3 * replicas)));
    const byPort = (port: number) => nodes.find((n) => n.port === port)!;
    return {
      ports: nodes.map((n) => n.port),
      addr: addrs.join(","),
      nodes,
      async masterOf(key, via) {
        const slot = await redisCommand((via ?? nodes[0]!).port, "CLUSTER", "KEYSLOT", key);
        const table = await clusterNodes((via ?? nodes[0]!).port);
        const owner = table.find((n) =>
          n.flags.includes("master") && n.slots.some(([a, b]) => a <= +slot! && +slot! <= b)
        );
        if (!owner) throw new Error(`no master owns slot ${slot} of ${key}`);
        return byPort(owner.port);
      },
      async replicaOf(master) {
        const id = String(await redisCommand(master.port, "CLUSTER", "MYID"));
        for (const n of nodes.filter((n) => n.running && n !== master)) {
          const self = (await clusterNodes(n.port)).find((e) => e.flags.includes("myself"));
          if (self?.master === id) return n;
        }
        throw new Error(`${master.addr} has no replica`);
      },
      async waitPromoted(node, ms = STARTUP_TIMEOUT_MS) {
        const deadline = Date.now() + ms;
        for (;;) {
          const info = String(await redisCommand(node.port, "INFO", "replication"));
          if (info.includes("role:master")) {
            const live = nodes.filter((n) => n.running);
            const views = await Promise.all(live.map((n) => clusterNodes(n.port)));
            const agreed = views.every((t) =>
              t.some((e) => e.port === node.port && e.flags.includes("master") && e.slots.length)
            );
            if (agreed) return;
          }
          if (Date.now() > deadline) throw new Error(`${node.addr} not promoted within ${ms} ms`);
          await delay(50);
        }
      },
      stop,
      [Symbol.asyncDispose]: stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** One line of CLUSTER NODES. */
interface ClusterNodeLine {
  id: string;
  port: number;
  flags: string[];
  /** Id of its master, for a replica. */
  master: string | null;
  slots: [number, number][];
}

async function clusterNodes(port: number): Promise<ClusterNodeLine[]> {
  const text = String(await redisCommand(port, "CLUSTER", "NODES"));
  return text.trim().split("\n").map((line) => {
    const f = line.split(" ");
    const slots = f.slice(8).filter((s) => !s.startsWith("[")).map((s) => {
      const [a, b] = s.split("-");
      return [Number(a), Number(b ?? a)] as [number, number];
    });
    return {
      id: f[0]!,
      port: Number(f[1]!.split(":")[1]!.split("@")[0]),
      flags: f[2]!.split(","),
      master: f[3] === "-" ? null : f[3]!,
      slots,
    };
  });
}

/**
 * Sends one command over a fresh TCP connection and returns the reply: a string for simple
 * and bulk strings, a number for integers, null for a nil bulk. Error replies reject.
 * Array replies are not supported (this is for PING / SET / GET / INFO-like checks).
 */
export async function redisCommand(
  port: number,
  ...args: string[]
): Promise<string | number | null> {
  const conn = await Deno.connect({ hostname: HOST, port });
  const timer = setTimeout(() => conn.close(), COMMAND_TIMEOUT_MS);
  try {
    await writeAll(conn, encodeCommand(args));
    return await readReply(conn);
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // already closed by the timeout
    }
  }
}

/** Runs redis-cli with the given arguments; resolves with its stdout, rejects on failure. */
export async function runRedisCli(args: string[]): Promise<string> {
  const cli = findOnPath("redis-cli");
  if (cli === null) throw notInstalled("redis-cli");
  const out = await new Deno.Command(cli, { args, stdin: "null" }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    const stderr = new TextDecoder().decode(out.stderr);
    throw new Error(`redis-cli ${args.join(" ")} failed (exit ${out.code}):\n${text}${stderr}`);
  }
  return text;
}

class Server implements RedisServer {
  readonly addr: string;
  #proc: RedisProcess | null;

  /** False once stopped or killed (until restarted). */
  get running(): boolean {
    return this.#proc !== null;
  }

  constructor(
    readonly port: number,
    readonly dir: string,
    private readonly ownsDir: boolean,
    proc: RedisProcess,
    private readonly args: string[],
    /** Reserved for it (its port, and a cluster node's bus port): released by stop(). */
    private readonly reserved: number[],
  ) {
    this.addr = `${HOST}:${port}`;
    this.#proc = proc;
  }

  async stop(): Promise<void> {
    await this.#end("SIGTERM");
    for (const p of this.reserved) releasePort(p);
    if (this.ownsDir) await Deno.remove(this.dir, { recursive: true }).catch(ignoreNotFound);
  }

  async kill(): Promise<void> {
    await this.#end("SIGKILL");
  }

  async restart(): Promise<void> {
    await this.#end("SIGTERM");
    this.#proc = await launch(this.args, this.port);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  async #end(signal: Deno.Signal): Promise<void> {
    const proc = this.#proc;
    if (proc === null) return;
    this.#proc = null;
    try {
      proc.child.kill(signal);
    } catch {
      // it has already exited
    }
    await proc.exited;
  }
}

/** A spawned redis-server; its output is drained (so the pipes never fill) and kept for errors. */
interface RedisProcess {
  child: Deno.ChildProcess;
  /** Resolves once the process has exited and its output pipes are closed. */
  exited: Promise<Deno.CommandStatus>;
}

function serverArgs(port: number, dir: string, opts: { appendfsync?: string }): string[] {
  return [
    "--port",
    String(port),
    "--bind",
    HOST,
    "--dir",
    dir,
    "--daemonize",
    "no",
    "--appendonly",
    "yes",
    "--appendfsync",
    opts.appendfsync ?? "everysec",
    "--save",
    "",
  ];
}

function clusterArgs(bus: number, opts: { fullCoverage?: boolean }): string[] {
  // nodes.conf lands in --dir, which is per node
  return [
    "--cluster-enabled",
    "yes",
    "--cluster-port",
    String(bus),
    "--cluster-config-file",
    "nodes.conf",
    "--cluster-node-timeout",
    "2000",
    "--cluster-require-full-coverage",
    opts.fullCoverage === false ? "no" : "yes",
    // A master stopped with SIGTERM would wait up to 10 s for its replica to catch up,
    // and would wait 5 s for more replicas before the first full sync.
    "--shutdown-timeout",
    "0",
    "--repl-diskless-sync-delay",
    "0",
  ];
}

async function launch(args: string[], port: number): Promise<RedisProcess> {
  const redis = findOnPath("redis-server");
  if (redis === null) throw notInstalled("redis-server");
  // Tied to this process: a crashed or killed test run leaves no server behind.
  const child = spawnTied(redis, args);
  let tail = "";
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      tail = (tail + chunk).slice(-OUTPUT_TAIL_CHARS);
    }
  };
  const drained = Promise.all([collect(child.stdout), collect(child.stderr)]);
  const exited = drained.then(() => child.status);
  try {
    await waitReady(port, exited);
  } catch (err) {
    try {
      child.kill("SIGKILL");
    } catch {
      // it has already exited
    }
    await exited;
    const why = err instanceof Error ? err.message : String(err);
    throw new Error(`redis-server on port ${port} did not start: ${why}\n--- output ---\n${tail}`);
  }
  return { child, exited };
}

async function waitReady(port: number, exited: Promise<Deno.CommandStatus>): Promise<void> {
  const seen: { status?: Deno.CommandStatus } = {};
  exited.then((s) => seen.status = s);
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  let lastError = "no answer";
  while (Date.now() < deadline) {
    if (seen.status) throw new Error(`exited with code ${seen.status.code}`);
    try {
      // "-LOADING" while the AOF is replayed rejects, so we keep polling
      if (await redisCommand(port, "PING") === "PONG") return;
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
    }
    await delay(20);
  }
  throw new Error(`no PONG within ${STARTUP_TIMEOUT_MS} ms (last: ${lastError})`);
}

async function waitClusterOk(port: number): Promise<void> {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  let info: unknown = null;
  while (Date.now() < deadline) {
    info = await redisCommand(port, "CLUSTER", "INFO");
    if (typeof info === "string" && info.includes("cluster_state:ok")) return;
    await delay(50);
  }
  throw new Error(`cluster node ${HOST}:${port} not ok within ${STARTUP_TIMEOUT_MS} ms:\n${info}`);
}

/**
 * Waits until the node on `port` knows `replicas` replicas (so that it can vote for them
 * in a failover) and, if it is one, its master link is up.
 */
async function waitReplicaInSync(port: number, replicas: number): Promise<void> {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  let info = "";
  while (Date.now() < deadline) {
    info = String(await redisCommand(port, "INFO", "replication"));
    const known = (await clusterNodes(port)).filter((n) => n.master !== null).length;
    const synced = info.includes("role:master") || info.includes("master_link_status:up");
    if (synced && known === replicas) return;
    await delay(50);
  }
  throw new Error(
    `${HOST}:${port}: replicas not in sync within ${STARTUP_TIMEOUT_MS} ms:\n${info}`,
  );
}

function notInstalled(binary: string): Error {
  return new Error(`${binary} is not installed: run scripts/install_deps.sh (as root)`);
}

function ignoreNotFound(err: unknown): void {
  if (!(err instanceof Deno.errors.NotFound)) throw err;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function encodeCommand(args: string[]): Uint8Array {
  const enc = new TextEncoder();
  let text = `*${args.length}\r\n`;
  for (const arg of args) text += `$${enc.encode(arg).length}\r\n${arg}\r\n`;
  return enc.encode(text);
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

async function readReply(conn: Deno.Conn): Promise<string | number | null> {
  const dec = new TextDecoder();
  const buf = new Uint8Array(64 * 1024);
  let text = "";
  for (;;) {
    const reply = parseReply(text);
    if (reply !== undefined) return reply;
    const n = await conn.read(buf);
    if (n === null) throw new Error("connection closed before a complete reply");
    text += dec.decode(buf.subarray(0, n), { stream: true });
  }
}

/** Parses one non-array reply; undefined while incomplete. */
function parseReply(text: string): string | number | null | undefined {
  const eol = text.indexOf("\r\n");
  if (eol < 0) return undefined;
  const kind = text[0];
  const line = text.slice(1, eol);
  switch (kind) {
    case "+":
      return line;
    case "-":
      throw new Error(`Redis error reply: ${line}`);
    case ":":
      return Number(line);
    case "$": {
      const len = Number(line);
      if (len < 0) return null;
      // len counts bytes; compare in bytes so multi-byte text is not cut short
      const body = new TextEncoder().encode(text.slice(eol + 2));
      if (body.length < len + 2) return undefined;
      return new TextDecoder().decode(body.subarray(0, len));
    }
    default:
      throw new Error(`unsupported reply type ${JSON.stringify(kind)}`);
  }
}
