// The direct write probe of a failover run: for each master, one key in its
// slots, written every few ms straight to Redis (following MOVED, no sara in
// between), so that a run can tell the time Redis itself refused writes
// apart from the time sara stalled them.

import { sleep } from "../../src/async.ts";
import { inSlots, type Master, type RedisCluster } from "./redis_cluster.ts";
import { RedisReplyError, RespConn } from "./resp.ts";

const PROBE_EVERY_MS = 10;

/** One write attempt: when it started, when it ended, whether Redis took it. */
interface Sample {
  start: number;
  end: number;
  ok: boolean;
}

/** The probe of one master's slots. */
class KeyProbe {
  readonly samples: Sample[] = [];
  #port: number;
  #conns = new Map<number, RespConn>();
  #n = 0;

  constructor(readonly master: Master, readonly key: string, readonly ports: number[]) {
    this.#port = master.port;
  }

  /** One SET; a MOVED is followed at once, a failure moves on to another node next time. */
  async once(): Promise<void> {
    const start = performance.now();
    let ok = false;
    for (let hop = 0; hop < 3 && !ok; hop++) {
      try {
        await this.#conn(this.#port).command("SET", this.key, String(++this.#n));
        ok = true;
      } catch (err) {
        const moved = err instanceof RedisReplyError && /^MOVED \d+ [^:]+:(\d+)/.exec(err.message);
        if (moved) {
          this.#port = Number(moved[1]);
          continue;
        }
        // Refused (CLUSTERDOWN, TRYAGAIN), or the node is gone: next time ask the next
        // node, whose MOVED names the slot's owner once the cluster agrees on one.
        const i = this.ports.indexOf(this.#port);
        this.#port = this.ports[(i + 1) % this.ports.length]!;
        break;
      }
    }
    this.samples.push({ start, end: performance.now(), ok });
  }

  close(): void {
    for (const c of this.#conns.values()) c.close();
  }

  #conn(port: number): RespConn {
    let c = this.#conns.get(port);
    if (!c) this.#conns.set(port, c = new RespConn(port, 300));
    return c;
  }
}

/** What the probe saw of one master's slots after the fault. */
export interface ProbeResult {
  port: number;
  /** The master that was killed. */
  victim: boolean;
  /** Total time of failed stretches: first failed attempt's start to the next success's end. */
  refused_ms: number;
}

/** Probes every master's slots until `stop()`. */
export class WriteProbe {
  readonly #probes: KeyProbe[];
  #running = true;
  #loops: Promise<void>[] = [];

  private constructor(probes: KeyProbe[]) {
    this.#probes = probes;
  }

  /** Picks a key per master (`failover-probe:{N}` in its slots) and starts writing. */
  static async start(cluster: RedisCluster, masters: Master[]): Promise<WriteProbe> {
    const ports = cluster.servers.map((s) => s.port);
    const probes: KeyProbe[] = [];
    for (const m of masters) {
      for (let n = 0;; n++) {
        const key = `failover-probe:{${n}}`;
        if (inSlots(m.slots, await cluster.keySlot(key))) {
          probes.push(new KeyProbe(m, key, ports));
          break;
        }
      }
    }
    const p = new WriteProbe(probes);
    p.#loops = probes.map(async (k) => {
      while (p.#running) {
        await k.once();
        await sleep(PROBE_EVERY_MS);
      }
    });
    return p;
  }

  /** Stops and reports, counting only attempts that started at or after `since`. */
  async stop(since: number, victimPort: number): Promise<ProbeResult[]> {
    this.#running = false;
    await Promise.all(this.#loops);
    for (const k of this.#probes) k.close();
    return this.#probes.map((k) => {
      let refused = 0;
      let failStart: number | null = null;
      for (const s of k.samples) {
        if (s.start < since) continue;
        if (!s.ok) failStart ??= s.start;
        else if (failStart !== null) {
          refused += s.end - failStart;
          failStart = null;
        }
      }
      // Still failing at the end: count up to the last attempt.
      const last = k.samples.at(-1);
      if (failStart !== null && last) refused += last.end - failStart;
      return {
        port: k.master.port,
        victim: k.master.port === victimPort,
        refused_ms: Math.round(refused),
      };
    });
  }
}
