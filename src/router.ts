// deliver(): hands an accepted message to its recipient's session on this
// node, to the node holding it, or to the offline store; and keeps the map of
// sessions logged in on this node (registered cluster-wide when there is one).

import type { InboxEntry } from "./store/store.ts";
import type { InboxWriter } from "./store/inbox_writer.ts";

/** What the router needs of a logged-in session. */
export interface Recipient {
  readonly jid: string;
  /** Unique across nodes and restarts: a kick from another node names it. */
  readonly sid: string;
  /** Writes (or buffers, during login) one packet. False when `from` is blocked. */
  push(entry: InboxEntry): boolean;
  /** Replaced by a newer login of the same user. */
  kick(): void;
  /** The user blocked (or unblocked) `jid` (PROTOCOL 10). */
  setBlocked(jid: string, blocked: boolean): void;
}

/**
 * The sessions logged in on this node, by user. Its own object, so that the
 * router and the cluster (which hands arrivals and kicks to them) both read
 * it without holding each other.
 */
export class LocalSessions {
  readonly #map = new Map<string, Recipient>();

  get size(): number {
    return this.#map.size;
  }

  get(jid: string): Recipient | undefined {
    return this.#map.get(jid);
  }

  set(s: Recipient): void {
    this.#map.set(s.jid, s);
  }

  /** Removes `s` unless a newer login already replaced it. */
  delete(s: Recipient): void {
    if (this.#map.get(s.jid) === s) this.#map.delete(s.jid);
  }
}

/** Other nodes of a cluster, reached through the shared store (Redis). */
export interface Remote {
  /**
   * True when a successful `publish` proves that the node's listener got it
   * (one Redis counts subscribers; a Redis Cluster counts only those of the
   * server that took the PUBLISH).
   */
  readonly publishConfirms: boolean;
  /**
   * Registers this node's session of `jid`; an older one on another node is
   * kicked. Rejects when the registry cannot be reached.
   */
  register(jid: string, sid: string, transport: string): Promise<void>;
  /** Removes the registration if it still names `sid`; never rejects. */
  unregister(jid: string, sid: string): void;
  /** Node holding `jid`'s session if it is another, live node; null otherwise (never rejects). */
  locate(jid: string): Promise<string | null>;
  /**
   * Sends the entry to `jid`'s session on `node`; `stored`: it is in the inbox
   * already. False when it surely did not arrive (never rejects).
   */
  publish(node: string, entry: InboxEntry, ack: boolean, stored: boolean): Promise<boolean>;
  /**
   * Tells `node` that `owner` blocked or unblocked `jid`; resolves once it is
   * in force there, or when that cannot be known (never rejects).
   */
  publishBlocked(node: string, owner: string, jid: string, blocked: boolean): Promise<boolean>;
}

/** Called when a message was stored for a recipient who is not online. */
export type OfflineHook = (entry: InboxEntry, total: number) => void;

/** What a router works with. */
export interface RouterDeps {
  readonly local: LocalSessions;
  readonly writer: InboxWriter;
  /** The other nodes; null on a standalone node. */
  readonly remote: Remote | null;
  readonly onOffline: OfflineHook;
}

/**
 * What happens to a message another node published for a session here
 * (`stored`: it is in the inbox already): handed to the session, or, with
 * the session gone, stored if it was not. The cluster calls it; it needs no
 * router, so the cluster is built before the router.
 */
export function arrivals(
  local: LocalSessions,
  writer: InboxWriter,
  onOffline: OfflineHook,
): (entry: InboxEntry, ack: boolean, stored: boolean) => Promise<void> {
  return async (entry, ack, stored) => {
    const s = local.get(entry.user);
    if (!s) {
      if (!stored) storedOffline(onOffline, entry, await writer.append(entry));
      return;
    }
    const delivered = s.push(entry);
    // Done once written (no ack will come), or blocked: out of the inbox.
    if (stored && (!delivered || !ack)) writer.remove(entry.user, entry.id);
  };
}

function storedOffline(onOffline: OfflineHook, entry: InboxEntry, depth: number | null): void {
  if (depth) onOffline(entry, depth);
}

/** Deliveries to one user through other nodes that have not been handed over yet. */
interface Lane {
  /** Started and not yet published (or found offline). */
  busy: number;
  /** Settles once the unstored packet on its way was published or stored. */
  direct: Promise<void> | null;
}

const noop = () => {};

/** Routes messages; one per node. */
export class Router {
  readonly #local: LocalSessions;
  // Per recipient, so that the two remote paths never overtake each other.
  readonly #lanes = new Map<string, Lane>();
  readonly writer: InboxWriter;
  readonly remote: Remote | null;
  readonly #onOffline: OfflineHook;

  constructor(deps: RouterDeps) {
    this.#local = deps.local;
    this.writer = deps.writer;
    this.remote = deps.remote;
    this.#onOffline = deps.onOffline;
  }

  /** Sessions logged in on this node. */
  get online(): number {
    return this.#local.size;
  }

  /** The local session of `jid`, if any. */
  local(jid: string): Recipient | undefined {
    return this.#local.get(jid);
  }

  /**
   * Makes `s` the session of its user: here at once (kicking an older local
   * one, before anything is awaited), then in the cluster registry. The login
   * reads the inbox only after this resolves: a message written before the
   * registration is in that read, one sent after it is published to `s`.
   * Rejects when the registry cannot be reached.
   */
  async attach(s: Recipient, transport: string): Promise<void> {
    const old = this.#local.get(s.jid);
    this.#local.set(s);
    if (old && old !== s) old.kick();
    if (!this.remote) return;
    await this.remote.register(s.jid, s.sid, transport);
    // Closed or replaced while registering: its entry must not outlive it.
    if (this.#local.get(s.jid) !== s) this.remote.unregister(s.jid, s.sid);
  }

  /** Forgets `s` unless a newer login already replaced it. */
  detach(s: Recipient): void {
    this.#local.delete(s);
    this.remote?.unregister(s.jid, s.sid);
  }

  /**
   * Delivers one message. Resolves once it is safe (written to the inbox, or
   * acked by its recipient); a packet without `ack` is done once handed to an
   * online session. Rejects with StoreError when it cannot be kept.
   */
  async deliver(entry: InboxEntry, ack: boolean): Promise<void> {
    const s = this.#local.get(entry.user);
    if (s) {
      // Blocked: neither delivered nor stored, and the sender is not told.
      if (!s.push(entry) || !ack) return;
      await this.writer.append(entry, true);
      return;
    }
    if (this.remote) return await this.#deliverRemote(this.remote, entry, ack);
    this.#stored(entry, await this.writer.append(entry));
  }

  async #deliverRemote(remote: Remote, entry: InboxEntry, ack: boolean): Promise<void> {
    const lane = this.#join(entry.user);
    // Behind an unstored packet still finding its way: it goes first.
    if (lane.direct) await lane.direct;
    // Unstored only when nothing else to this user is on its way: the
    // stored path takes its place in the inbox at once, the direct one only
    // after a lookup, so mixing them would reorder one sender's packets.
    if (!ack && remote.publishConfirms && lane.busy === 1) {
      const done = this.#direct(remote, entry);
      lane.direct = done.then(noop, noop).then(() => {
        lane.direct = null;
        this.#leave(entry.user, lane);
      });
      return await done;
    }
    // Stored before the recipient is looked up: a login that registers
    // after the lookup reads the inbox after the write, so nothing slips
    // between; and the recipient's ack can never overtake the write. A
    // packet without ack is stored too when a publish cannot be confirmed
    // (a node may die unseen): the receiving node deletes it once written.
    let depth: number | null;
    try {
      depth = await this.writer.append(entry);
    } catch (err) {
      this.#leave(entry.user, lane);
      throw err;
    }
    // Acked only once handed over (which never rejects): if this node dies
    // between the write and the publish, the sender resends, the retry is
    // routed again and reaches an online recipient before newer messages,
    // instead of waiting in the inbox until its next login (out of order).
    await this.#handOver(remote, entry, ack, depth).finally(() => this.#leave(entry.user, lane));
  }

  /** A packet without ack, published without a store write when its recipient is online. */
  async #direct(remote: Remote, entry: InboxEntry): Promise<void> {
    const node = await remote.locate(entry.user);
    if (node === null || !(await remote.publish(node, entry, false, false))) {
      this.#stored(entry, await this.writer.append(entry));
    }
  }

  #join(user: string): Lane {
    let lane = this.#lanes.get(user);
    if (!lane) this.#lanes.set(user, lane = { busy: 0, direct: null });
    lane.busy++;
    return lane;
  }

  #leave(user: string, lane: Lane): void {
    if (--lane.busy === 0 && this.#lanes.get(user) === lane) this.#lanes.delete(user);
  }

  async #handOver(remote: Remote, entry: InboxEntry, ack: boolean, depth: number | null) {
    const node = await remote.locate(entry.user);
    if (node === null) this.#stored(entry, depth);
    else await remote.publish(node, entry, ack, true);
  }

  /** `owner` blocked or unblocked `jid` (RPC): applied to its session, on whichever node. */
  async notifyBlocked(owner: string, jid: string, blocked: boolean): Promise<void> {
    const s = this.#local.get(owner);
    if (s) return s.setBlocked(jid, blocked);
    if (!this.remote) return;
    const node = await this.remote.locate(owner);
    if (node !== null) await this.remote.publishBlocked(node, owner, jid, blocked);
  }

  #stored(entry: InboxEntry, depth: number | null): void {
    storedOffline(this.#onOffline, entry, depth);
  }
}
