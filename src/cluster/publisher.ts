// PUBLISH in send order, one batch per target node per event-loop turn. On a
// Redis Cluster a PUBLISH (it has no key) may go to any node, which
// broadcasts it; two publishes through two nodes can arrive in either order.
// So all of this node's publishes go through one cluster node, chosen again
// only after it fails.

import { Redis } from "ioredis";
import { Buffer } from "node:buffer";
import { setImmediate } from "node:timers";
import type { RedisClient } from "../store/redis_client.ts";
import { encodeBatch, type NodeMessage } from "./channel.ts";

// A batch larger than this is split (in order) over several publishes, so
// that one PUBLISH never holds the subscriber's connection for long.
const MAX_BATCH_MESSAGES = 512;
const MAX_BATCH_CHARS = 1 << 20;

/**
 * Messages waiting for the end of the turn, for one channel, and the one
 * promise they all share: a promise and a callback per message, alive until
 * the PUBLISH answers, were a large part of the sending node's garbage
 * (BENCHMARKS.md, cross-node profile).
 */
interface Queue {
  messages: NodeMessage[];
  chars: number;
  sent: Promise<number>;
  settle: (receivers: Promise<number>) => void;
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
    if (!q) this.#queues.set(channel, q = newQueue());
    q.messages.push(m);
    q.chars += m.t === "msg" ? m.e.packet.length + 100 : 100;
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.#flush());
    }
    if (q.messages.length >= MAX_BATCH_MESSAGES || q.chars >= MAX_BATCH_CHARS) {
      this.#queues.delete(channel);
      this.#publish(channel, q);
    }
    return q.sent;
  }

  #flush(): void {
    this.#scheduled = false;
    const queues = this.#queues;
    this.#queues = new Map();
    for (const [channel, q] of queues) this.#publish(channel, q);
  }

  #publish(channel: string, q: Queue): void {
    // Issued synchronously, so publishes leave in the order they were made.
    // As bytes: a string is copied into the command text ioredis builds and
    // kept on the V8 heap until Redis answers, where the scavenger copies it
    // again (BENCHMARKS.md, "The cross-node path").
    q.settle(this.publish(channel, Buffer.from(encodeBatch(q.messages))));
  }

  /** One PUBLISH of `text`; resolves to the receivers the server that took it counted. */
  async publish(channel: string, text: string | Buffer): Promise<number> {
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

function newQueue(): Queue {
  let settle!: Queue["settle"];
  const sent = new Promise<number>((resolve) => settle = resolve);
  return { messages: [], chars: 0, sent, settle };
}

function key(r: Redis): string {
  return `${r.options.host}:${r.options.port}`;
}

function hash(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) >>> 0;
  return h;
}
