// PUBLISH in send order. On a Redis Cluster a PUBLISH (it has no key) may go
// to any node, which broadcasts it; two publishes through two nodes can
// arrive in either order. So all of this node's publishes go through one
// cluster node, chosen again only after it fails.

import { Redis } from "ioredis";
import type { RedisClient } from "../store/redis_client.ts";

/** Publishes through one connection while it works. */
export class Publisher {
  #pinned: Redis | null = null;
  // Moves the choice on after each failure: the node list may still name a
  // dead node until ioredis refreshes it.
  #offset = 0;

  /** `seed` spreads the nodes of sara over the Redis masters (the nodeid). */
  constructor(readonly client: RedisClient, readonly seed: string) {}

  /** PUBLISH; resolves to the receivers the server that took it counted. */
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
