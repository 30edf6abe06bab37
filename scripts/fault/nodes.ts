// The sara nodes a fault check runs against, as child processes of `main.ts`
// that can be SIGKILLed and restarted on the same data. `Nodes` is what the
// check needs; LocalNodes runs any number of them, each with its own config.

import { spawnTied } from "./spawn.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const ROOT = new URL("../../", import.meta.url).pathname;
const START_TIMEOUT_MS = 30_000;
// Kept for the report when a node fails to start.
const OUTPUT_TAIL = 4000;

/** A set of nodes the check can address, kill and restart. */
export interface Nodes {
  /** Number of nodes (alive or not). */
  readonly size: number;
  /** TCP port of node `i` while it is up, else null. */
  port(i: number): number | null;
  /** Starts node `i` (again) on its own data; resolves once it accepts connections. */
  start(i: number): Promise<void>;
  /** SIGKILLs node `i` and waits for it to be gone. */
  kill(i: number): Promise<void>;
  /** Stops every node (SIGTERM, then SIGKILL) and removes what the check created. */
  close(keep: boolean): Promise<void>;
  /** SIGKILLs every node without waiting (emergency exit). */
  killNow(): void;
}

/** Config keys every node of a check gets: loopback, free ports, no caps that drop messages. */
export function checkConfig(dir: string, port: number, extra: Record<string, unknown>) {
  return {
    bind: "127.0.0.1",
    port,
    rpcport: 0,
    nodeaddr: "127.0.0.1:0",
    enable_ws: false,
    datadir: `${dir}/data`,
    logfile: `${dir}/sara.log`,
    pidfile: `${dir}/sara.pid`,
    loglevel: 2,
    // The check counts losses; the deliberate exceptions of docs/protocol.md §12
    // (cap, expiry) and overload refusals must not play.
    offline_max: 100_000_000,
    rate_limit: 1_000_000,
    max_conns: 100_000,
    ...extra,
  };
}

/**
 * The scripts' default `--ports`: below 30000, because the test suite reserves
 * its ports from 30000 up, so a script run beside `npm test` never takes a port
 * a test holds; and below the kernel's ephemeral range (32768+), so that no
 * client socket takes a port while its server is down (docs/cluster.md,
 * "Failover check").
 */
export const DEFAULT_PORTS = "20000-29999";

/**
 * The ports of `--ports`: `LO-HI` (inclusive), or a list `P1,P2,...` (a test
 * passes the ports it reserved, tests/helpers/ports.ts); RangeError when it is
 * neither.
 */
export function parsePorts(s: string): number[] {
  const m = /^(\d+)-(\d+)$/.exec(s);
  const ports = m
    ? Array.from({ length: Number(m[2]) - Number(m[1]) + 1 }, (_, i) => Number(m[1]) + i)
    : s.split(",").map(Number);
  if (ports.length === 0 || !ports.every((p) => Number.isInteger(p) && p >= 1024 && p <= 65535)) {
    throw new RangeError("--ports must be LO-HI or P1,P2,... (ports 1024-65535)");
  }
  return ports;
}

// Handed out already: a port is only bound once its process starts.
const given = new Set<number>();
// Where ports come from; a run sharing the machine narrows them to its own.
let pool: readonly number[] = parsePorts(DEFAULT_PORTS);

/** Makes `freePort` pick from `ports` from now on. */
export function usePorts(ports: readonly number[]): void {
  pool = ports;
}

/**
 * A free TCP port on 127.0.0.1 of the pool (DEFAULT_PORTS unless narrowed),
 * kept across restarts as clients reconnect to it. Never the same port twice
 * per run.
 */
export function freePort(): number {
  const free = pool.filter((p) => !given.has(p));
  while (free.length > 0) {
    const [port] = free.splice(Math.floor(Math.random() * free.length), 1) as [number];
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
      given.add(port);
      return port;
    } catch {
      // Taken: try another.
    }
  }
  throw new Error(`no free port among ${pool.length} (${pool[0]}..${pool.at(-1)})`);
}

/** One `sara` child process. */
class NodeProcess {
  #out = "";
  readonly child: Deno.ChildProcess;
  readonly exited: Promise<Deno.CommandStatus>;
  readonly #pumped: Promise<void>;

  constructor(conf: string) {
    const args = ["run", "--allow-all", MAIN, "-c", conf];
    this.child = spawnTied(Deno.execPath(), args, { cwd: ROOT, env: { NO_COLOR: "1" } });
    this.exited = this.child.status;
    this.#pumped = Promise.all([this.#pump(this.child.stdout), this.#pump(this.child.stderr)])
      .then(() => {});
  }

  get output(): string {
    return this.#out;
  }

  async #pump(stream: ReadableStream<Uint8Array>): Promise<void> {
    const dec = new TextDecoder();
    for await (const chunk of stream) {
      this.#out = (this.#out + dec.decode(chunk, { stream: true })).slice(-OUTPUT_TAIL);
    }
  }

  /** Resolves once the TCP listener is up; rejects if the process dies first. */
  async ready(): Promise<void> {
    const deadline = Date.now() + START_TIMEOUT_MS;
    let dead = false;
    this.exited.then(() => dead = true);
    while (!/tcp start on \[/.test(this.#out)) {
      if (dead) throw new Error(`node exited during startup:\n${this.#out}`);
      if (Date.now() > deadline) throw new Error(`node not up within ${START_TIMEOUT_MS} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Sends `sig` if the process still runs. */
  signal(sig: Deno.Signal): void {
    try {
      this.child.kill(sig);
    } catch {
      // Already gone.
    }
  }

  /** Sends `signal`; a process still there after `graceMs` is SIGKILLed. */
  async stop(signal: Deno.Signal, graceMs = 10_000): Promise<void> {
    this.signal(signal);
    const timer = setTimeout(() => this.signal("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
    await this.#pumped;
  }
}

/**
 * Nodes run as local `sara` processes, each in its own temp dir with its own
 * config (port kept across restarts). The embedded store is one such node; a
 * Redis mode is N of them whose extra config names the same `dbaddr` and
 * distinct `nodeid`s.
 */
export class LocalNodes implements Nodes {
  readonly #procs: (NodeProcess | null)[];
  readonly #up: boolean[];

  private constructor(readonly dir: string, readonly confs: string[], readonly ports: number[]) {
    this.#procs = confs.map(() => null);
    this.#up = confs.map(() => false);
  }

  /** Writes one config per entry of `extra` (keys added to `checkConfig`) into a fresh temp dir. */
  static async create(extra: Record<string, unknown>[]): Promise<LocalNodes> {
    const dir = await Deno.makeTempDir({ prefix: "sara-fault-" });
    const confs: string[] = [];
    const ports: number[] = [];
    for (const [i, keys] of extra.entries()) {
      const nodeDir = `${dir}/node${i}`;
      await Deno.mkdir(nodeDir);
      const port = freePort();
      const conf = `${nodeDir}/conf.json`;
      await Deno.writeTextFile(conf, JSON.stringify(checkConfig(nodeDir, port, keys), null, 2));
      confs.push(conf);
      ports.push(port);
    }
    return new LocalNodes(dir, confs, ports);
  }

  get size(): number {
    return this.confs.length;
  }

  port(i: number): number | null {
    return this.#up[i] ? this.ports[i]! : null;
  }

  /** Process id of node `i` while it runs (its RSS is read from /proc). */
  pid(i: number): number | null {
    return this.#procs[i]?.child.pid ?? null;
  }

  async start(i: number): Promise<void> {
    if (this.#procs[i]) throw new Error(`node ${i} already running`);
    const p = new NodeProcess(this.confs[i]!);
    this.#procs[i] = p;
    try {
      await p.ready();
    } catch (err) {
      await p.stop("SIGKILL");
      this.#procs[i] = null;
      throw err;
    }
    this.#up[i] = true;
  }

  async kill(i: number): Promise<void> {
    const p = this.#procs[i];
    if (!p) return;
    this.#up[i] = false;
    await p.stop("SIGKILL");
    this.#procs[i] = null;
  }

  killNow(): void {
    this.#up.fill(false);
    for (const p of this.#procs) p?.signal("SIGKILL");
  }

  async close(keep: boolean): Promise<void> {
    this.#up.fill(false);
    await Promise.all(this.#procs.map((p) => p?.stop("SIGTERM")));
    this.#procs.fill(null);
    if (!keep) await Deno.remove(this.dir, { recursive: true });
  }
}
