// The store interface every implementation (embedded SQLite, Redis) honours:
// per-user inboxes, group member caches and blacklists. Batching and the
// "acked before written" shortcut live above it, in inbox_writer.ts.

/** One message waiting in (or on its way into) a recipient's inbox. */
export interface InboxEntry {
  /** Bare JID of the recipient. */
  user: string;
  /** `envelope.id`: what the recipient's ack names. */
  id: string;
  /** Bare JID of the sender (policies and blacklists are per sender). */
  from: string;
  type: number;
  /** Accept time, ms since the epoch: the expiry clock starts here. */
  ct: number;
  /** The packet as delivered, serialised. */
  packet: string;
}

/** Identifies one inbox entry. */
export interface EntryKey {
  user: string;
  id: string;
}

/** A message id a sender used, remembered for duplicate suppression. */
export interface SentId {
  from: string;
  id: string;
}

/** One group commit: applied in this order, appends before removes. */
export interface Batch {
  appends: InboxEntry[];
  removes: EntryKey[];
  /** Ids to remember per sender; stores shared by nodes persist them. */
  sent: SentId[];
}

/** Result of a commit: recipients whose inbox grew, with their new depth. */
export type Depths = Map<string, number>;

/** What every store offers. All methods reject with StoreError on failure. */
export interface Store {
  /** Human name for logs: "sqlite:/path" or "redis:host:port". */
  readonly name: string;
  /**
   * Applies a batch atomically per user. Appends honour blacklists, the
   * per-type offline policy and the `offline_max` and `offline_max_bytes`
   * caps (the oldest entries go first).
   */
  commit(batch: Batch): Promise<Depths>;
  /** Deletes entries older than `offline_expire`; resolves to how many went. */
  sweepExpired(): Promise<number>;
  /** Unexpired entries of `user`, oldest first. */
  inbox(user: string): Promise<InboxEntry[]>;
  /** Ids `from` sent most recently (newest last), at most `dedup_ids`. */
  recentIds(from: string): Promise<string[]>;
  /**
   * False when the store keeps no sent ids (`Batch.sent`): one node, whose
   * in-memory dedup cache is the only one there is. The writer then does not
   * collect them. Absent: true.
   */
  readonly keepsSentIds?: boolean;
  /** Cached member names of a group key, or null on a miss. */
  groupMembers(key: string): Promise<string[] | null>;
  setGroupMembers(key: string, members: string[], ttlSeconds: number): Promise<void>;
  dropGroup(key: string): Promise<void>;
  /** Blacklist of `owner`: jids it blocks, oldest first. */
  blacklist(owner: string, offset: number, limit: number): Promise<BlockedJid[]>;
  block(owner: string, jid: string, ct: number): Promise<void>;
  unblock(owner: string, jid: string): Promise<void>;
  /** True when `owner` blocks `jid`. */
  blocks(owner: string, jid: string): Promise<boolean>;
  /**
   * Commands sent again after a Redis Cluster error (a failover, a
   * resharding) since start, by whether they then succeeded; absent when the
   * store never retries.
   */
  readonly retries?: { readonly ok: number; readonly failed: number };
  /** Counters of stored messages dropped by policy, cap and expiry since start. */
  readonly dropped: { cap: number; policy: number; expired: number; blocked: number };
  /**
   * The part of the store that holds `user`'s inbox now (a Redis Cluster
   * master); absent when the store is one piece. Commits to different parts
   * do not wait on each other (inbox_writer.ts).
   */
  shard?(user: string): string;
  /** Rejects when the store cannot take writes now (readiness). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** One blacklist row (docs/protocol.md §10). */
export interface BlockedJid {
  jid: string;
  ct: string;
}

/** Offline rules every store applies on append (docs/protocol.md §10, §11). */
export interface OfflineRules {
  /** Seconds an entry lives. */
  expire: number;
  /** Newest N entries kept per user. */
  max: number;
  /** Newest entries kept per user while their packets' UTF-8 bytes fit. */
  maxBytes: number;
  /** Per-type keep policy; types absent keep all. */
  policy: Record<string, "first" | "last" | "all">;
  /** Ids remembered per sender. */
  dedupIds: number;
}
