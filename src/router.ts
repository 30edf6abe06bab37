// deliver(): hands an accepted message to its recipient's session on this
// node, to the node holding it, or to the offline store; and keeps the map of
// sessions logged in on this node.

import type { InboxEntry } from "./store/store.ts";
import type { InboxWriter } from "./store/inbox_writer.ts";

/** What the router needs of a logged-in session. */
export interface Recipient {
  readonly jid: string;
  /** Writes (or buffers, during login) one packet. False when `from` is blocked. */
  push(entry: InboxEntry, ack: boolean): boolean;
  /** Replaced by a newer login of the same user. */
  kick(): void;
  /** The user blocked (or unblocked) `jid` (PROTOCOL 10). */
  setBlocked(jid: string, blocked: boolean): void;
}

/** Other nodes of a cluster, reached through the shared store (Redis). */
export interface Remote {
  /** Node holding `jid`'s session, if that node is alive. */
  locate(jid: string): Promise<string | null>;
  /** Sends the entry to `jid`'s session on `node`; false when nobody took it. */
  publish(node: string, entry: InboxEntry, ack: boolean): Promise<boolean>;
}

/** Called when a message was stored for a recipient who is not online. */
export type OfflineHook = (entry: InboxEntry, total: number) => void;

/** Routes messages; one per node. */
export class Router {
  readonly #local = new Map<string, Recipient>();
  remote: Remote | null = null;
  onOffline: OfflineHook | null = null;

  constructor(readonly writer: InboxWriter) {}

  /** Sessions logged in on this node. */
  get online(): number {
    return this.#local.size;
  }

  /** The local session of `jid`, if any. */
  local(jid: string): Recipient | undefined {
    return this.#local.get(jid);
  }

  /** Makes `s` the session of its user here, kicking an older local one. */
  attachLocal(s: Recipient): void {
    const old = this.#local.get(s.jid);
    this.#local.set(s.jid, s);
    if (old && old !== s) old.kick();
  }

  /** Forgets `s` unless a newer login already replaced it. */
  detachLocal(s: Recipient): void {
    if (this.#local.get(s.jid) === s) this.#local.delete(s.jid);
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
      if (!s.push(entry, ack) || !ack) return;
      await this.writer.append(entry);
      return;
    }
    if (this.remote) return await this.#deliverRemote(this.remote, entry, ack);
    this.#stored(entry, await this.writer.append(entry));
  }

  async #deliverRemote(remote: Remote, entry: InboxEntry, ack: boolean): Promise<void> {
    if (!ack) {
      const node = await remote.locate(entry.user);
      if (node === null || !(await remote.publish(node, entry, false))) {
        this.#stored(entry, await this.writer.append(entry));
      }
      return;
    }
    // Stored before the recipient is looked up: a login that registers
    // after the lookup reads the inbox after the write, so nothing slips
    // between; and the recipient's ack can never overtake the write.
    const depth = await this.writer.append(entry);
    const node = await remote.locate(entry.user);
    if (node === null) this.#stored(entry, depth);
    else await remote.publish(node, entry, true);
  }

  #stored(entry: InboxEntry, depth: number | null): void {
    if (depth) this.onOffline?.(entry, depth);
  }
}
