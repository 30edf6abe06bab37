// What this node sends to other nodes' channels, all through one Publisher
// (so that messages to a node leave in the order they were sent) and
// counted. The router's view of the cluster (remote.ts) and the registry's
// kicks both send through it, so neither needs the other.

import { errMsg, type Logger } from "../log.ts";
import type { RedisClient } from "../store/redis_client.ts";
import type { NodeMessage } from "./channel.ts";
import { channelOf } from "./keys.ts";
import { Publisher } from "./publisher.ts";

/** Sends messages to other nodes; one per node. */
export class Sender {
  readonly #publisher: Publisher;
  // The answer of each batch still being published, by the Publisher's promise for it.
  readonly #batches = new WeakMap<Promise<number>, Batch>();
  /** Publishes to other nodes, and those that surely did not arrive (metrics). */
  readonly published = { ok: 0, failed: 0 };

  /**
   * `publishConfirms`: a successful publish proves that the target's
   * listener got it (one Redis counts subscribers; a Redis Cluster counts
   * only those of the server that took the PUBLISH).
   */
  constructor(
    client: RedisClient,
    nodeid: string,
    readonly log: Logger,
    readonly publishConfirms: boolean,
  ) {
    this.#publisher = new Publisher(client, nodeid);
  }

  /**
   * Publishes `m` on `node`'s channel (batched with everything else for that
   * node in this turn); false when it surely did not arrive. Never rejects.
   */
  send(node: string, m: NodeMessage): Promise<boolean> {
    const sent = this.#publisher.send(channelOf(node), m);
    // One answer per batch, shared by its messages: a promise per message,
    // alive until the PUBLISH answers, was garbage (BENCHMARKS.md, cross-node).
    let b = this.#batches.get(sent);
    if (!b) this.#batches.set(sent, b = this.#answer(node, sent));
    b.messages++;
    return b.answer;
  }

  #answer(node: string, sent: Promise<number>): Batch {
    const b = { messages: 0 } as Batch;
    b.answer = sent.then((receivers) => {
      const ok = !this.publishConfirms || receivers > 0;
      this.published[ok ? "ok" : "failed"] += b.messages;
      return ok;
    }, (err) => {
      this.published.failed += b.messages;
      this.log.warn(`cluster: cannot publish ${b.messages} messages to ${node}: ${errMsg(err)}`);
      return false;
    });
    return b;
  }
}

/** What one batch's messages learn, and how many there are (for the metrics). */
interface Batch {
  answer: Promise<boolean>;
  messages: number;
}
