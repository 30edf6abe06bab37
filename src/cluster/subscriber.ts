// This node's one subscription (plain SUBSCRIBE) to its channel, kept alive
// across Redis outages. On a Redis Cluster any node hears every PUBLISH, so
// one connection suffices; after a drop it moves on to the next node, with
// backoff. (ioredis' own cluster subscriber retries without any delay while
// every node is down, burning most of a core.)

import { Redis } from "ioredis";
import { errMsg, type Logger } from "../log.ts";
import type { RedisClient, RedisTarget } from "../store/redis_client.ts";

type Addr = { host: string; port: number };

const RETRY_MAX_MS = 1000;

/** A subscription that reconnects by itself until closed. */
export class Subscriber {
  #conn: Redis | null = null;
  #next = 0;
  #failures = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  /**
   * `nodes` lists the addresses to try (a cluster's current nodes); the
   * `dbaddr` ones are tried as well. `onGap` runs when the subscription
   * drops and again when it is back: what was published meanwhile is lost.
   */
  constructor(
    readonly target: RedisTarget,
    readonly name: string,
    readonly channel: string,
    readonly onMessage: (text: string) => void,
    readonly log: Logger,
    readonly nodes: () => Addr[] = () => [],
    readonly onGap: () => void = () => {},
  ) {}

  /** "host:port" the subscription runs on now, or null while it reconnects. */
  get address(): string | null {
    const o = this.#conn?.options;
    return o ? `${o.host}:${o.port}` : null;
  }

  /** Subscribes through the first address that answers; rejects when none does. */
  async start(): Promise<void> {
    let last: unknown;
    for (let i = 0; i < this.#candidates().length; i++) {
      try {
        return await this.#connect();
      } catch (err) {
        last = err;
      }
    }
    throw new Error(`cannot subscribe to ${this.channel}: ${errMsg(last)}`);
  }

  /** Ends the subscription for good. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    const c = this.#conn;
    this.#conn = null;
    if (c) await c.quit().catch(() => c.disconnect());
  }

  #candidates(): Addr[] {
    const seen = new Set<string>();
    return [...this.nodes(), ...this.target.nodes].filter((a) => {
      const k = `${a.host}:${a.port}`;
      return !seen.has(k) && seen.add(k);
    });
  }

  async #connect(): Promise<void> {
    const all = this.#candidates();
    const addr = all[this.#next++ % all.length]!;
    const r = new Redis({
      host: addr.host,
      port: addr.port,
      connectionName: this.name,
      protocol: 2,
      lazyConnect: true,
      enableOfflineQueue: false,
      connectTimeout: 3000,
      // Reconnecting is ours (with backoff, and to another node).
      retryStrategy: () => null,
      ...(this.target.password ? { password: this.target.password } : {}),
      ...(this.target.tls ? { tls: {} } : {}),
    });
    r.on("error", () => {}); // the "end" below handles every failure
    r.on("message", (_ch: string, text: string) => this.onMessage(text));
    try {
      await r.connect();
      await r.subscribe(this.channel);
    } catch (err) {
      r.disconnect();
      throw err;
    }
    if (this.#closed) return void r.disconnect();
    this.#conn = r;
    if (this.#failures > 0) {
      this.log.info(`cluster: listening on ${this.channel} again (${addr.host}:${addr.port})`);
      this.onGap();
    }
    this.#failures = 0;
    r.once("end", () => {
      if (this.#conn !== r || this.#closed) return;
      this.#conn = null;
      this.log.warn(`cluster: subscription to ${this.channel} lost; reconnecting`);
      this.onGap();
      this.#retry();
    });
  }

  #retry(): void {
    const delay = Math.min(++this.#failures * 100, RETRY_MAX_MS);
    this.#timer = setTimeout(() => {
      if (this.#closed) return;
      this.#connect().catch(() => this.#retry());
    }, delay);
  }
}

/** The addresses of a cluster client's current nodes (none for a single Redis). */
export function clusterNodes(client: RedisClient): () => Addr[] {
  if (client instanceof Redis) return () => [];
  return () =>
    client.nodes("all").map((n) => ({ host: n.options.host ?? "", port: n.options.port ?? 0 }));
}
