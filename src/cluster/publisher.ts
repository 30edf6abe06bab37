// PUBLISH in send order, one batch per target node per event-loop turn. On a
// Redis Cluster a PUBLISH (it has no key) may go to any node, which
// broadcasts it; two publishes through two nodes can arrive in either order.
// So all of this node's publishes go through one cluster node, chosen again
// only after it fails.

import { Redis } from "ioredis";
import { setImmediate } from "node:timers";
import type { RedisClient } from "../store/redis_client.ts";
import { encodeBatch, type NodeMessage } from "./channel.ts";

// A batch larger than this is split (in order) over several publishes, so
// that one PUBLISH never holds the subscriber's connection for long.
const MAX_BATCH_MESSAGES = 512;
const MAX_BATCH_CHARS = 1 << 20;

/** Messages waiting for the end of the turn, for one channel. */
interface Queue {
  messages: NodeMessage[];
  chars: number;
  waiters: ((receivers: number | Error) => void)[];
}

/** Publishes through one connection while it works. */
export class Publisher {
  #pinned: Redis | null = null;
  // Moves the choice on after each failure: the node list may still name a
  // dead node until ioredis refreshes it.
  #offset = 0;
  // Per channel, in the order the channels were first used this turn.
  #queues = new Map<string, Queue>();
  #scheduled = false;

  /** `seed` spreads the nodes of sara over the Redis masters (the nodeid). */
  constructor(readonly client: RedisClient, readonly seed: string) {}

  /**
   * Queues `m` for `channel`; every message queued in this turn for that
   * channel goes out in one PUBLISH, in queueing order. Resolves to the
   * receivers the server that took it counted; rejects when it failed.
   */
  send(channel: string, m: NodeMessage): Promise<number> {
    let q = this.#queues.get(channel);
    if (!q) this.#queues.set(channel, q = { messages: [], chars: 0, waiters: [] });
    q.messages.push(m);
    q.chars += m.t === "msg" ? m.e.packet.length + 100 : 100;
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.#flush());
    }
    return new Promise((resolve, reject) => {
      q.waiters.push((r) => typeof r === "number" ? resolve(r) : reject(r));
      if (q.messages.length >= MAX_BATCH_MESSAGES || q.chars >= MAX_BATCH_CHARS) {
        this.#queues.delete(channel);
        this.#publish(channel, q);
      }
    });
  }

  #flush(): void {
    this.#scheduled = false;
    const queues = this.#queues;
    this.#queues = new Map();
    for (const [channel, q] of queues) this.#publish(channel, q);
  }

  #publish(channel: string, q: Queue): void {
    // Issued synchronously, so publishes leave in the order they were made.
    this.publish(channel, encodeBatch(q.messages)).then(
      (receivers) => q.waiters.forEach((w) => w(receivers)),
      (err) => q.waiters.forEach((w) => w(err instanceof Error ? err : new Error(String(err)))),
    );
  }

  /** One PUBLISH of `text`; resolves to the receivers the server that took it counted. */
  async publish(channel: string, text: string): Promise<number> {
    const via = this.#via();
    try {
      return await via.publish(channel, text);
    } catch (err) {
      if (via === this.#pinned) {
        this.#pinned = null; // pick another next time
        this.#offset++;
      }
      throw err;
    }
  }

  #via(): RedisClient {
    if (this.client instanceof Redis) return this.client;
    if (this.#pinned && this.#pinned.status !== "end") return this.#pinned;
    const masters = this.client.nodes("master");
    if (masters.length === 0) return this.client;
    const sorted = masters.sort((a, b) => key(a).localeCompare(key(b)));
    this.#pinned = sorted[(hash(this.seed) + this.#offset) % sorted.length]!;
    return this.#pinned;
  }
}

function key(r: Redis): string {
  return `${r.options.host}:${r.options.port}`;
}

function hash(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) >>> 0;
  return h;
}
