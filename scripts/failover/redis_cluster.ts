// The Redis Cluster of a failover run: six redis-server processes (AOF,
// `appendfsync always`, loopback, ports of the run's range, cluster bus
// ports too) joined as three masters with one replica each. It can name the
// masters, their slots and replicas, SIGKILL a master and wait until its
// replica took over.

import { freePort } from "../fault/nodes.ts";
import { findOnPath } from "../fault/spawn.ts";
import { RedisProcess } from "../fault/redis.ts";
import { sleep } from "../../src/async.ts";
import { RespConn } from "./resp.ts";

const READY_TIMEOUT_MS = 30_000;
const POLL_MS = 20;

/** Settings of the cluster (see `scripts/failover.ts --help`). */
export interface ClusterOptions {
  /** `cluster-node-timeout` in ms: how long a master may be silent before it is failed over. */
  nodeTimeoutMs: number;
  /** `cluster-require-full-coverage`: whether the whole cluster refuses writes while slots are uncovered. */
  fullCoverage: boolean;
}

/** A master and the slot ranges it serves, as CLUSTER NODES reports them. */
export interface Master {
  port: number;
  id: string;
  /** Inclusive [from, to] slot ranges. */
  slots: [number, number][];
  /** Port of its replica, or null. */
  replica: number | null;
}

/** One line of CLUSTER NODES. */
interface NodeLine {
  id: string;
  port: number;
  master: boolean;
  masterId: string;
  slots: [number, number][];
}

/** Six cluster nodes of one run; every process dies with `close()` (or with this process). */
export class RedisCluster {
  private constructor(readonly servers: RedisProcess[]) {}

  /** "127.0.0.1:p1,...": every node, the `dbaddr` of the sara nodes. */
  get addr(): string {
    return this.servers.map((s) => s.addr).join(",");
  }

  /** Temp dirs of the servers (an emergency exit removes them). */
  get dirs(): string[] {
    return this.servers.map((s) => s.dir);
  }

  /** Starts six nodes, joins them (three masters, one replica each), waits until all is in sync. */
  static async create(opts: ClusterOptions): Promise<RedisCluster> {
    const servers: RedisProcess[] = [];
    const cluster = new RedisCluster(servers);
    try {
      for (let i = 0; i < 6; i++) {
        servers.push(
          await RedisProcess.create([
            ...["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"],
            ...["--cluster-node-timeout", String(opts.nodeTimeoutMs)],
            // The bus port of the run's range (the default, port + 10000, may not be free).
            ...["--cluster-port", String(freePort())],
            ...["--cluster-require-full-coverage", opts.fullCoverage ? "yes" : "no"],
          ]),
        );
      }
      await redisCli([
        ...["--cluster", "create", ...servers.map((s) => s.addr)],
        ...["--cluster-replicas", "1", "--cluster-yes"],
      ]);
      await cluster.#waitInSync();
      return cluster;
    } catch (err) {
      await cluster.close(false);
      throw err;
    }
  }

  /** The masters that serve slots now, with their replicas. */
  async masters(): Promise<Master[]> {
    const lines = await this.#nodes();
    return lines.filter((n) => n.master && n.slots.length > 0).map((m) => ({
      port: m.port,
      id: m.id,
      slots: m.slots,
      replica: lines.find((n) => !n.master && n.masterId === m.id)?.port ?? null,
    }));
  }

  /** The slot of `key` (CLUSTER KEYSLOT on a live node). */
  async keySlot(key: string): Promise<number> {
    const port = this.servers.find((s) => s.up)!.port;
    const conn = new RespConn(port, 2000);
    try {
      return Number(await conn.command("CLUSTER", "KEYSLOT", key));
    } finally {
      conn.close();
    }
  }

  /** SIGKILLs the server on `port`. */
  async kill(port: number): Promise<void> {
    await this.servers.find((s) => s.port === port)?.kill();
  }

  /**
   * Resolves with performance.now() at the moment `replica` first reports
   * itself a master; rejects after `timeoutMs`.
   */
  async waitPromoted(replica: number, timeoutMs: number): Promise<number> {
    const conn = new RespConn(replica, 500);
    const deadline = performance.now() + timeoutMs;
    try {
      while (performance.now() < deadline) {
        try {
          const info = String(await conn.command("INFO", "replication"));
          if (/^role:master/m.test(info)) return performance.now();
        } catch {
          // Busy or reconnecting: ask again.
        }
        await sleep(POLL_MS);
      }
    } finally {
      conn.close();
    }
    throw new Error(`replica 127.0.0.1:${replica} not promoted within ${timeoutMs} ms`);
  }

  /** Kills every server and removes its dir unless `keep`. */
  async close(keep: boolean): Promise<void> {
    await Promise.all(this.servers.map((s) => s.close(keep)));
  }

  /** SIGKILLs every server without waiting (emergency exit). */
  killNow(): void {
    for (const s of this.servers) s.killNow();
  }

  /** Until every node says cluster_state:ok and knows 3 masters with a linked replica each. */
  async #waitInSync(): Promise<void> {
    const deadline = performance.now() + READY_TIMEOUT_MS;
    let why = "";
    while (performance.now() < deadline) {
      why = await this.#notInSync();
      if (why === "") return;
      await sleep(50);
    }
    throw new Error(`redis cluster not ready within ${READY_TIMEOUT_MS} ms: ${why}`);
  }

  async #notInSync(): Promise<string> {
    for (const s of this.servers) {
      const conn = new RespConn(s.port, 2000);
      try {
        const info = String(await conn.command("CLUSTER", "INFO"));
        if (!info.includes("cluster_state:ok")) return `${s.addr} not ok`;
        const repl = String(await conn.command("INFO", "replication"));
        if (/^role:slave/m.test(repl) && !/^master_link_status:up/m.test(repl)) {
          return `replica ${s.addr} not linked`;
        }
      } catch (err) {
        return `${s.addr}: ${(err as Error).message}`;
      } finally {
        conn.close();
      }
    }
    const masters = await this.masters();
    if (masters.length !== 3 || masters.some((m) => m.replica === null)) {
      return `${masters.length} masters, not all with a replica`;
    }
    return "";
  }

  async #nodes(): Promise<NodeLine[]> {
    let last: unknown = null;
    for (const s of this.servers) {
      if (!s.up) continue;
      const conn = new RespConn(s.port, 2000);
      try {
        return parseNodes(String(await conn.command("CLUSTER", "NODES")));
      } catch (err) {
        last = err;
      } finally {
        conn.close();
      }
    }
    throw new Error(`no redis node answers CLUSTER NODES: ${(last as Error)?.message}`);
  }
}

/** Parses CLUSTER NODES: `<id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slot>...` */
function parseNodes(text: string): NodeLine[] {
  const out: NodeLine[] = [];
  for (const line of text.split("\n")) {
    const f = line.trim().split(" ");
    if (f.length < 8) continue;
    const flags = f[2]!.split(",");
    const slots: [number, number][] = [];
    for (const s of f.slice(8)) {
      if (s.startsWith("[")) continue; // a slot being migrated
      const [a, b] = s.split("-").map(Number);
      slots.push([a!, b ?? a!]);
    }
    out.push({
      id: f[0]!,
      port: Number(f[1]!.split("@")[0]!.split(":").pop()),
      master: flags.includes("master"),
      masterId: f[3]!,
      slots,
    });
  }
  return out;
}

/** True when `slot` is in one of `ranges`. */
export function inSlots(ranges: [number, number][], slot: number): boolean {
  return ranges.some(([a, b]) => slot >= a && slot <= b);
}

async function redisCli(args: string[]): Promise<string> {
  const cli = findOnPath("redis-cli");
  if (cli === null) throw new Error("redis-cli is not installed: run scripts/install_deps.sh");
  const out = await new Deno.Command(cli, { args, stdin: "null" }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`redis-cli ${args.join(" ")} failed:\n${text}`);
  return text;
}
