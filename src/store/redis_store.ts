// The shared store for a cluster: one Redis or a Redis Cluster (`dbaddr`).
// Each user's keys share a hash tag (redis_keys.ts) and every change to an
// inbox is one Lua script (redis_scripts.ts), so it is atomic per user.

import { Cluster, type Redis } from "ioredis";
import { StoreError } from "../errors.ts";
import { errMsg } from "../log.ts";
import { Semaphore } from "../async.ts";
import {
  checkWritable,
  command,
  connectRedis,
  defineScript,
  describe,
  masterOf,
  type RedisClient,
  type RedisTarget,
  retriesOf,
  type Script,
} from "./redis_client.ts";
import {
  baseOfOrderKey,
  groupKey,
  keysOf,
  ORDER_PATTERN,
  type UserKeys,
  userKeys,
} from "./redis_keys.ts";
import { COMMIT, decodeEntry, encodeEntry, policySpec, READ, SWEEP } from "./redis_scripts.ts";
import type { Batch, BlockedJid, Depths, InboxEntry, OfflineRules, Store } from "./store.ts";

/** How a RedisStore runs. */
export interface RedisStoreOptions {
  /** Name for logs and errors, e.g. "redis:127.0.0.1:6379". */
  name: string;
  /**
   * `dbpool`: store operations in flight at once per node (a commit, however
   * many users it touches, counts as one); further ones wait in call order.
   */
  pool: number;
}

// Inbox keys outlive their newest entry by this much: a read or a sweep can
// still find (and count) the expired entries before Redis drops the keys.
const KEY_GRACE_MS = 3600_000;
// Sent ids only serve clients that resend after reconnecting elsewhere; a
// day bounds their memory to one day of traffic.
const SENT_TTL_MS = 86_400_000;
// Per sweep and Redis node: SCAN calls of SWEEP_COUNT keys each, then the
// cursor waits for the next sweep. Entries per inbox per sweep: SWEEP_LIMIT.
const SWEEP_SCANS = 10;
const SWEEP_COUNT = 1000;
const SWEEP_LIMIT = 1000;

/** COMMIT's reply: depth (-1: nothing stored), then dropped expired, cap, policy, blocked. */
type CommitReply = [number, number, number, number, number];

/** One user's part of a batch. */
interface UserWork {
  appends: InboxEntry[];
  removes: string[];
  sent: string[];
}

/** Store over Redis; one instance per node, shared by all its sessions. */
export class RedisStore implements Store {
  readonly name: string;
  readonly dropped = { cap: 0, policy: 0, expired: 0, blocked: 0 };
  readonly #client: RedisClient;
  readonly #gate: Semaphore;
  readonly #spec: string;
  readonly #commit: Script;
  readonly #read: Script;
  readonly #sweep: Script;
  // SCAN cursor of the expiry sweep, per Redis node.
  readonly #cursors = new Map<string, string>();
  #closed = false;

  constructor(client: RedisClient, readonly rules: OfflineRules, opts: RedisStoreOptions) {
    this.name = opts.name;
    this.#client = client;
    this.#gate = new Semaphore(opts.pool);
    this.#spec = policySpec(rules.policy);
    this.#commit = defineScript(client, "saraCommit", 5, COMMIT);
    this.#read = defineScript(client, "saraRead", 3, READ);
    this.#sweep = defineScript(client, "saraSweep", 3, SWEEP);
  }

  /**
   * Connects to `target` (rejects with StoreError naming it when unreachable); `signal`
   * ends a wait for a Redis Cluster that is not ready yet (connectRedis).
   */
  static async open(
    target: RedisTarget,
    rules: OfflineRules,
    opts: { pool: number; connectionName: string; signal?: AbortSignal },
  ): Promise<RedisStore> {
    const client = await connectRedis(target, opts.connectionName, opts.signal);
    return new RedisStore(client, rules, { name: describe(target), pool: opts.pool });
  }

  /** Store operations running now and waiting for a turn (the `dbpool` bound). */
  get load(): { active: number; waiting: number } {
    return { active: this.#gate.active, waiting: this.#gate.waiting };
  }

  commit(batch: Batch): Promise<Depths> {
    return this.#op("commit", async () => {
      const work = new Map<string, UserWork>();
      const of = (user: string) => {
        let w = work.get(user);
        if (!w) work.set(user, w = { appends: [], removes: [], sent: [] });
        return w;
      };
      for (const e of batch.appends) of(e.user).appends.push(e);
      for (const k of batch.removes) of(k.user).removes.push(k.id);
      if (this.rules.dedupIds > 0) { for (const s of batch.sent) of(s.from).sent.push(s.id); }
      const now = Date.now();
      // Issued in one tick: auto-pipelining sends them as one write per Redis node.
      const users = [...work.keys()];
      const results = await Promise.allSettled(
        users.map((user) => this.#commitUser(user, work.get(user)!, now)),
      );
      const depths: Depths = new Map();
      let failure: unknown;
      results.forEach((r, i) => {
        if (r.status === "rejected") {
          failure ??= r.reason;
          return;
        }
        const [depth, expired, cap, policy, blocked] = r.value;
        this.dropped.expired += expired;
        this.dropped.cap += cap;
        this.dropped.policy += policy;
        this.dropped.blocked += blocked;
        if (depth >= 0) depths.set(users[i]!, depth);
      });
      if (failure !== undefined) throw failure;
      return depths;
    });
  }

  async #commitUser(user: string, w: UserWork, now: number): Promise<CommitReply> {
    const k = userKeys(user);
    const args: (string | number)[] = [
      k.inbox,
      k.order,
      k.policy,
      k.blacklist,
      k.sent,
      now,
      this.rules.expire * 1000,
      this.#spec,
      this.rules.max,
      this.rules.dedupIds,
      this.rules.expire * 1000 + KEY_GRACE_MS,
      Math.min(SENT_TTL_MS, this.rules.expire * 1000),
      w.appends.length,
      w.removes.length,
      w.sent.length,
      this.rules.maxBytes,
    ];
    for (const e of w.appends) {
      args.push(e.id, e.from, String(e.type), e.ct, encodeEntry(e.ct, e.type, e.from, e.packet));
    }
    for (const id of w.removes) args.push(id);
    for (const id of w.sent) args.push(id);
    return await this.#commit(...args) as CommitReply;
  }

  inbox(user: string): Promise<InboxEntry[]> {
    return this.#op("inbox", async () => {
      const k = userKeys(user);
      const reply = await this.#read(...this.#readArgs(k, Date.now())) as (string | number)[];
      this.dropped.expired += Number(reply[0]);
      const out: InboxEntry[] = [];
      for (let i = 1; i < reply.length; i += 2) {
        const d = decodeEntry(String(reply[i + 1]));
        out.push({
          user,
          id: String(reply[i]),
          from: d.from,
          type: d.type,
          ct: d.ct,
          packet: d.packet,
        });
      }
      return out;
    });
  }

  #readArgs(k: UserKeys, now: number): (string | number)[] {
    return [k.inbox, k.order, k.policy, now, this.rules.expire * 1000, this.#spec];
  }

  /**
   * Redis cannot list expired entries of every user cheaply. Inboxes clean
   * themselves (expired entries go on every append and read, and idle keys
   * carry a TTL); this sweep is the backstop: on each Redis node it walks a
   * bounded stretch of the keyspace (SCAN, cursor kept between sweeps) and
   * drops expired entries at the old end of the inboxes it finds.
   */
  sweepExpired(now = Date.now()): Promise<number> {
    return this.#op("sweep", async () => {
      let total = 0;
      for (const node of this.#masters()) {
        const where = `${node.options.host}:${node.options.port}`;
        let cursor = this.#cursors.get(where) ?? "0";
        for (let i = 0; i < SWEEP_SCANS; i++) {
          const [next, keys] = await node.scan(
            cursor,
            "MATCH",
            ORDER_PATTERN,
            "COUNT",
            SWEEP_COUNT,
          );
          const counts = await Promise.all(keys.map((key) => {
            const args = this.#readArgs(keysOf(baseOfOrderKey(key)), now);
            return this.#sweep(...args, SWEEP_LIMIT) as Promise<number>;
          }));
          for (const n of counts) total += n;
          cursor = next;
          if (cursor === "0") break;
        }
        this.#cursors.set(where, cursor);
      }
      this.dropped.expired += total;
      return total;
    });
  }

  #masters(): Redis[] {
    const c = this.#client;
    return c instanceof Cluster ? c.nodes("master") : [c];
  }

  recentIds(from: string): Promise<string[]> {
    if (this.rules.dedupIds <= 0) return Promise.resolve([]);
    return this.#op(
      "recentIds",
      () => command(this.#client, "lrange", userKeys(from).sent, 0, -1) as Promise<string[]>,
    );
  }

  groupMembers(key: string): Promise<string[] | null> {
    return this.#op("groupMembers", async () => {
      const v = await command(this.#client, "get", groupKey(key)) as string | null;
      return v === null ? null : JSON.parse(v) as string[];
    });
  }

  setGroupMembers(key: string, members: string[], ttlSeconds: number): Promise<void> {
    return this.#op("setGroupMembers", async () => {
      const ttl = Math.max(1, Math.ceil(ttlSeconds));
      await command(this.#client, "set", groupKey(key), JSON.stringify(members), "EX", ttl);
    });
  }

  dropGroup(key: string): Promise<void> {
    return this.#op("dropGroup", async () => {
      await command(this.#client, "del", groupKey(key));
    });
  }

  blacklist(owner: string, offset: number, limit: number): Promise<BlockedJid[]> {
    if (limit <= 0) return Promise.resolve([]);
    return this.#op("blacklist", async () => {
      const key = userKeys(owner).blacklist;
      const last = offset + limit - 1;
      const flat = await command(
        this.#client,
        "zrange",
        key,
        offset,
        last,
        "WITHSCORES",
      ) as string[];
      const out: BlockedJid[] = [];
      for (let i = 0; i < flat.length; i += 2) out.push({ jid: flat[i]!, ct: flat[i + 1]! });
      return out;
    });
  }

  block(owner: string, jid: string, ct: number): Promise<void> {
    return this.#op("block", async () => {
      // NX: blocking again keeps the first time (and the place in the list).
      await command(this.#client, "zadd", userKeys(owner).blacklist, "NX", ct, jid);
    });
  }

  unblock(owner: string, jid: string): Promise<void> {
    return this.#op("unblock", async () => {
      await command(this.#client, "zrem", userKeys(owner).blacklist, jid);
    });
  }

  blocks(owner: string, jid: string): Promise<boolean> {
    return this.#op("blocks", async () => {
      return await command(this.#client, "zscore", userKeys(owner).blacklist, jid) !== null;
    });
  }

  get retries(): { ok: number; failed: number } {
    return retriesOf(this.#client);
  }

  shard(user: string): string {
    const c = this.#client;
    return c instanceof Cluster ? masterOf(c, userKeys(user).inbox) : "";
  }

  /** Rejects unless every master of the slot map can take writes now (readiness). */
  ping(): Promise<void> {
    return this.#op("ping", () => checkWritable(this.#client));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.#client.quit();
    } catch {
      // Redis is away: nothing to say goodbye to; disconnect() stops retrying.
    }
    this.#client.disconnect();
  }

  /** Runs one store operation under the `dbpool` bound; failures become StoreError. */
  #op<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new StoreError(`${this.name} ${what}: store closed`));
    return this.#gate.run(async () => {
      try {
        return await fn();
      } catch (err) {
        throw new StoreError(`${this.name} ${what}: ${errMsg(err)}`, { cause: err });
      }
    });
  }
}
