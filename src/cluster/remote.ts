// The router's view of the other nodes (Remote), and the cluster-wide
// answers of `emsg_session.counter` and `isonline` (Presence), built on the
// registry, node liveness and the nodes' pub/sub channels.

import { errMsg, type Logger } from "../log.ts";
import { withTimeout } from "../async.ts";
import type { RedisClient } from "../store/redis_client.ts";
import type { InboxEntry } from "../store/store.ts";
import { encodeMessage, type NodeMessage } from "./channel.ts";
import { channelOf } from "./keys.ts";
import { Publisher } from "./publisher.ts";
import type { Liveness } from "./liveness.ts";
import type { Registry } from "./registry.ts";

// How long a blacklist change waits for the owner's node to confirm it (a
// node that died unseen never does).
const APPLY_WAIT_MS = 2000;

let refCounter = 0;

/** What the cluster needs of a session logged in on this node. */
export interface LocalSession {
  readonly sid: string;
  kick(): void;
  setBlocked(jid: string, blocked: boolean): void;
}

/** What a node hands the cluster: where arrivals go, and its own sessions. */
export interface ClusterNodeDeps {
  /** A message another node published for a session here (`stored`: in the inbox already). */
  arrived(entry: InboxEntry, ack: boolean, stored: boolean): Promise<void>;
  /** This node's session of `jid`, if any. */
  local(jid: string): LocalSession | undefined;
  /** Sessions logged in on this node. */
  online(): number;
}

/**
 * The router's view of the other nodes (its Remote) and the cluster-wide
 * presence of the RPC, for one node of a cluster.
 */
export class ClusterRemote {
  readonly #publisher: Publisher;
  // Blacklist changes waiting for their "applied" answer, by ref.
  readonly #applying = new Map<string, () => void>();

  constructor(
    readonly client: RedisClient,
    readonly nodeid: string,
    readonly node: ClusterNodeDeps,
    readonly registry: Registry,
    readonly liveness: Liveness,
    readonly log: Logger,
    readonly publishConfirms: boolean,
  ) {
    this.#publisher = new Publisher(client, nodeid);
  }

  /** Publishes to other nodes, and those that surely did not arrive (metrics). */
  readonly published = { ok: 0, failed: 0 };
  /** Messages other nodes published to this one (metrics). */
  received = 0;

  register(jid: string, sid: string, transport: string): Promise<void> {
    return this.registry.register(jid, sid, transport);
  }

  unregister(jid: string, sid: string): void {
    // Failures are logged and retried by the registry itself.
    this.registry.unregister(jid, sid).catch(() => {});
  }

  async locate(jid: string): Promise<string | null> {
    try {
      const e = await this.registry.lookup(jid);
      // An entry naming this node without a local session is a login or
      // logout in progress: the inbox is the place for the message.
      if (e === null || e.node === this.nodeid) return null;
      return await this.liveness.isAlive(e.node) ? e.node : null;
    } catch (err) {
      // Redis away: treated as offline, so the message goes to the store,
      // which either keeps it or fails the send.
      this.log.warn(`cluster: cannot locate ${jid}: ${errMsg(err)}`);
      return null;
    }
  }

  publish(node: string, entry: InboxEntry, ack: boolean, stored: boolean): Promise<boolean> {
    return this.send(node, { t: "msg", e: entry, a: ack, s: stored });
  }

  /**
   * Resolves once `node` applied the change (true), or surely did not get it
   * or did not answer in time (false). Waiting matters: the change reaches
   * that node over pub/sub, and a message sent to it (or on it) right after
   * the RPC answered could otherwise overtake it.
   */
  async publishBlocked(node: string, owner: string, jid: string, b: boolean): Promise<boolean> {
    const ref = `${this.nodeid}-${Date.now().toString(36)}-${(refCounter++).toString(36)}`;
    // Listening before the send: the answer may come back before it resolves.
    const applied = new Promise<boolean>((resolve) => this.#applying.set(ref, () => resolve(true)));
    try {
      const from = this.nodeid;
      if (!await this.send(node, { t: "block", owner, jid, b, from, ref })) return false;
      return await withTimeout(APPLY_WAIT_MS, () => applied, () => false);
    } finally {
      this.#applying.delete(ref);
    }
  }

  /** Publishes `m` on `node`'s channel; false when it surely did not arrive. */
  async send(node: string, m: NodeMessage): Promise<boolean> {
    try {
      const receivers = await this.#publisher.publish(channelOf(node), encodeMessage(m));
      const ok = !this.publishConfirms || receivers > 0;
      this.published[ok ? "ok" : "failed"]++;
      return ok;
    } catch (err) {
      this.published.failed++;
      this.log.warn(`cluster: cannot publish to ${node}: ${errMsg(err)}`);
      return false;
    }
  }

  /** Handles a message another node published for this one; never throws. */
  receive(m: NodeMessage): void {
    switch (m.t) {
      case "msg":
        this.received++;
        this.node.arrived(m.e, m.a, m.s).catch((err) =>
          this.log.error(`cluster: cannot store a message for ${m.e.user}: ${errMsg(err)}`)
        );
        return;
      case "kick": {
        const s = this.node.local(m.jid);
        if (s?.sid === m.sid) s.kick();
        return;
      }
      case "block":
        this.node.local(m.owner)?.setBlocked(m.jid, m.b);
        if (m.from !== undefined && m.ref !== undefined) {
          void this.send(m.from, { t: "applied", ref: m.ref });
        }
        return;
      case "applied":
        this.#applying.get(m.ref)?.();
        return;
    }
  }

  /** One row per live node: this node counts its sessions, the others' come from Redis. */
  async counters(): Promise<{ node: string; count: number }[]> {
    const nodes = await this.liveness.liveNodes();
    return await Promise.all(nodes.map(async (node) => ({
      node,
      count: node === this.nodeid ? this.node.online() : await this.registry.count(node),
    })));
  }

  async isOnline(jid: string): Promise<boolean> {
    if (this.node.local(jid)) return true;
    const e = await this.registry.lookup(jid);
    if (e === null || e.node === this.nodeid) return false;
    return await this.liveness.isAlive(e.node);
  }
}
