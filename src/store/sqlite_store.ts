// The embedded store: one SQLite file (node:sqlite) in `datadir`, for a
// single node with no Redis. WAL mode with synchronous=NORMAL: a commit is in
// the OS before the promise resolves, so it survives a kill of the process.

import { DatabaseSync, type StatementSync } from "node:sqlite";
import { StoreError } from "../errors.ts";
import type { Batch, BlockedJid, Depths, InboxEntry, OfflineRules, Store } from "./store.ts";
import { errMsg } from "../log.ts";

const SCHEMA = `
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS inbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  user TEXT NOT NULL, id TEXT NOT NULL, sender TEXT NOT NULL,
  type INTEGER NOT NULL, ct INTEGER NOT NULL, packet TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS inbox_user_id ON inbox(user, id);
CREATE INDEX IF NOT EXISTS inbox_user_sender_type ON inbox(user, sender, type);
CREATE TABLE IF NOT EXISTS groups (
  key TEXT PRIMARY KEY, members TEXT NOT NULL, expires INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS blacklist (
  owner TEXT NOT NULL, jid TEXT NOT NULL, ct INTEGER NOT NULL,
  PRIMARY KEY (owner, jid));
CREATE INDEX IF NOT EXISTS blacklist_order ON blacklist(owner, ct, jid);
`;

/** A statement returning rows as arrays: cheaper than an object per row. */
function rows(st: StatementSync): StatementSync {
  // node:sqlite has it (Node 24, Deno 2.9); the bundled typings do not yet.
  (st as StatementSync & { setReturnArrays(on: boolean): void }).setReturnArrays(true);
  return st;
}

/** Statements prepared once; SQLite re-plans nothing per message. */
function prepare(db: DatabaseSync) {
  const q = (sql: string) => db.prepare(sql);
  return {
    // Statements that delete or insert entries return the packets' UTF-8
    // sizes (octet_length) for the offline_max_bytes tally.
    insert: q(
      "INSERT INTO inbox(user, id, sender, type, ct, packet) VALUES (?, ?, ?, ?, ?, ?) " +
        "RETURNING octet_length(packet) AS b",
    ),
    remove: rows(q("DELETE FROM inbox WHERE user = ? AND id = ? RETURNING octet_length(packet)")),
    usage: q(
      "SELECT COUNT(*) AS n, COALESCE(SUM(octet_length(packet)), 0) AS b FROM inbox WHERE user = ?",
    ),
    // Most logins find nothing: one index probe answers them.
    any: q("SELECT 1 FROM inbox WHERE user = ? LIMIT 1"),
    // The user's seqs come from the covering index and are fetched in seq
    // order: the plain "WHERE user = ? ORDER BY seq" sorts whole rows
    // (packets included) in a temporary b-tree, which dominated big logins.
    read: rows(q(
      "SELECT id, sender, type, ct, packet FROM inbox " +
        "WHERE seq IN (SELECT seq FROM inbox WHERE user = ?) AND ct > ? ORDER BY seq",
    )),
    hasOfType: q("SELECT 1 FROM inbox WHERE user = ? AND sender = ? AND type = ? LIMIT 1"),
    dropOfType: rows(q(
      "DELETE FROM inbox WHERE user = ? AND sender = ? AND type = ? RETURNING octet_length(packet)",
    )),
    trim: rows(q(
      "DELETE FROM inbox WHERE seq IN (SELECT seq FROM inbox WHERE user = ? ORDER BY seq LIMIT ?) " +
        "RETURNING octet_length(packet)",
    )),
    // Oldest first, for the byte cap: the caller stops once enough is freed.
    sizes: rows(q(
      "SELECT seq, octet_length(packet) FROM inbox " +
        "WHERE seq IN (SELECT seq FROM inbox WHERE user = ?) ORDER BY seq",
    )),
    oldest: q(
      "SELECT seq, user, octet_length(packet) AS b FROM inbox WHERE ct <= ? ORDER BY seq LIMIT 1000",
    ),
    removeSeq: q("DELETE FROM inbox WHERE seq = ?"),
    group: q("SELECT members FROM groups WHERE key = ? AND expires > ?"),
    setGroup: q("INSERT OR REPLACE INTO groups(key, members, expires) VALUES (?, ?, ?)"),
    dropGroup: q("DELETE FROM groups WHERE key = ?"),
    owners: q("SELECT DISTINCT owner FROM blacklist"),
    blocks: q("SELECT 1 FROM blacklist WHERE owner = ? AND jid = ?"),
    block: q("INSERT OR IGNORE INTO blacklist(owner, jid, ct) VALUES (?, ?, ?)"),
    unblock: q("DELETE FROM blacklist WHERE owner = ? AND jid = ?"),
    anyBlocked: q("SELECT 1 FROM blacklist WHERE owner = ? LIMIT 1"),
    list: q(
      "SELECT jid, ct FROM blacklist WHERE owner = ? ORDER BY ct, rowid LIMIT ? OFFSET ?",
    ),
  } satisfies Record<string, StatementSync>;
}

/** Entries and packet bytes (UTF-8) of one user's inbox. */
interface Usage {
  n: number;
  b: number;
}

/** SQLite-backed store; every call runs synchronously inside one transaction. */
export class SqliteStore implements Store {
  readonly name: string;
  readonly keepsSentIds = false;
  readonly dropped = { cap: 0, policy: 0, expired: 0, blocked: 0 };
  readonly #db: DatabaseSync;
  readonly #st: ReturnType<typeof prepare>;
  // Inbox depth and packet bytes per user with entries: the caps and the
  // offline callback's `total` need them, and counting per append would scan
  // the user's inbox.
  readonly #usage = new Map<string, Usage>();
  // Owners with a non-empty blacklist, so that most appends skip the lookup.
  readonly #owners = new Set<string>();

  constructor(path: string, readonly rules: OfflineRules) {
    this.name = `sqlite:${path}`;
    try {
      this.#db = new DatabaseSync(path);
      this.#db.exec(SCHEMA);
      this.#st = prepare(this.#db);
      for (const row of this.#st.owners.all()) this.#owners.add(String(row.owner));
    } catch (err) {
      throw new StoreError(`cannot open embedded store ${path}: ${errMsg(err)}`);
    }
  }

  /** Opens (creating) the store file `sara.db` in `dir`. */
  static async open(dir: string, rules: OfflineRules): Promise<SqliteStore> {
    try {
      await Deno.mkdir(dir, { recursive: true });
    } catch (err) {
      throw new StoreError(`cannot create datadir ${dir}: ${errMsg(err)}`);
    }
    return new SqliteStore(`${dir}/sara.db`, rules);
  }

  commit(batch: Batch): Promise<Depths> {
    return this.#tx(() => {
      const grown: Depths = new Map();
      for (const e of batch.appends) {
        if (this.#append(e)) grown.set(e.user, 0);
      }
      for (const k of batch.removes) {
        this.#usageOf(k.user);
        this.#deleted(k.user, this.#st.remove.all(k.user, k.id));
      }
      for (const user of grown.keys()) {
        const over = this.#usageOf(user).n - this.rules.max;
        if (over > 0) this.dropped.cap += this.#deleted(user, this.#st.trim.all(user, over));
        this.#trimBytes(user);
        grown.set(user, this.#usageOf(user).n);
      }
      return grown;
    });
  }

  /** Drops the oldest entries of `user` until its packets fit `maxBytes`. */
  #trimBytes(user: string): void {
    let over = this.#usageOf(user).b - this.rules.maxBytes;
    if (over <= 0) return;
    const gone: [number, number][] = [];
    for (const row of this.#st.sizes.iterate(user)) {
      const [seq, b] = row as unknown as [number, number];
      gone.push([seq, b]);
      over -= b;
      if (over <= 0) break;
    }
    // Deleted once the read is finished, not under its open cursor.
    for (const [seq, b] of gone) {
      this.#st.removeSeq.run(seq);
      this.#add(user, -1, -b);
    }
    this.dropped.cap += gone.length;
  }

  #append(e: InboxEntry): boolean {
    // Load the cached usage before the table changes under it.
    this.#usageOf(e.user);
    if (this.#owners.has(e.user) && this.#st.blocks.get(e.user, e.from)) {
      this.dropped.blocked++;
      return false;
    }
    const policy = this.rules.policy[String(e.type)];
    if (policy === "first" && this.#st.hasOfType.get(e.user, e.from, e.type)) {
      this.dropped.policy++;
      return false;
    }
    if (policy === "last") {
      this.dropped.policy += this.#deleted(e.user, this.#st.dropOfType.all(e.user, e.from, e.type));
    }
    const row = this.#st.insert.get(e.user, e.id, e.from, e.type, e.ct, e.packet);
    this.#add(e.user, 1, Number(row?.b ?? 0));
    return true;
  }

  #usageOf(user: string): Usage {
    let u = this.#usage.get(user);
    if (u === undefined) {
      const row = this.#st.usage.get(user);
      u = { n: Number(row?.n ?? 0), b: Number(row?.b ?? 0) };
      this.#usage.set(user, u);
    }
    return u;
  }

  /** Adjusts the usage that `#usageOf` loaded before the change. */
  #add(user: string, n: number, b: number): void {
    const u = this.#usageOf(user);
    u.n += n;
    u.b += b;
    if (u.n <= 0) this.#usage.delete(user);
  }

  /** Accounts deleted rows (each `[octet_length]`); returns how many. */
  #deleted(user: string, gone: unknown[]): number {
    let b = 0;
    for (const r of gone) b += (r as [number])[0];
    if (gone.length > 0) this.#add(user, -gone.length, -b);
    return gone.length;
  }

  inbox(user: string): Promise<InboxEntry[]> {
    return this.#run(() => {
      if (this.#st.any.get(user) === undefined) return [];
      const found = this.#st.read.all(user, Date.now() - this.rules.expire * 1000) as unknown[];
      const entries = new Array<InboxEntry>(found.length);
      for (let i = 0; i < found.length; i++) {
        const [id, from, type, ct, packet] = found[i] as unknown[];
        entries[i] = {
          user,
          id: String(id),
          from: String(from),
          type: Number(type),
          ct: Number(ct),
          packet: String(packet),
        };
      }
      return entries;
    });
  }

  sweepExpired(now = Date.now()): Promise<number> {
    return this.#tx(() => {
      const cutoff = now - this.rules.expire * 1000;
      let total = 0;
      for (;;) {
        const rows = this.#st.oldest.all(cutoff);
        if (rows.length === 0) break;
        for (const r of rows) {
          this.#usageOf(String(r.user));
          this.#st.removeSeq.run(r.seq as number);
          this.#add(String(r.user), -1, -Number(r.b));
        }
        total += rows.length;
      }
      this.dropped.expired += total;
      return total;
    });
  }

  recentIds(_from: string): Promise<string[]> {
    // One node: the in-memory dedup cache is the only one there is (keepsSentIds).
    return Promise.resolve([]);
  }

  groupMembers(key: string): Promise<string[] | null> {
    return this.#run(() => {
      const row = this.#st.group.get(key, Date.now());
      return row ? JSON.parse(String(row.members)) as string[] : null;
    });
  }

  setGroupMembers(key: string, members: string[], ttlSeconds: number): Promise<void> {
    return this.#run(() => {
      this.#st.setGroup.run(key, JSON.stringify(members), Date.now() + ttlSeconds * 1000);
    });
  }

  dropGroup(key: string): Promise<void> {
    return this.#run(() => {
      this.#st.dropGroup.run(key);
    });
  }

  blacklist(owner: string, offset: number, limit: number): Promise<BlockedJid[]> {
    // Every login asks, and almost nobody blocks anyone: the owner set answers
    // without a query (whose ORDER BY costs a temporary sorter each time).
    if (!this.#owners.has(owner)) return Promise.resolve([]);
    return this.#run(() =>
      this.#st.list.all(owner, limit, offset).map((r) => ({
        jid: String(r.jid),
        ct: String(r.ct),
      }))
    );
  }

  block(owner: string, jid: string, ct: number): Promise<void> {
    return this.#run(() => {
      this.#st.block.run(owner, jid, ct);
      this.#owners.add(owner);
    });
  }

  unblock(owner: string, jid: string): Promise<void> {
    return this.#run(() => {
      this.#st.unblock.run(owner, jid);
      if (!this.#st.anyBlocked.get(owner)) this.#owners.delete(owner);
    });
  }

  blocks(owner: string, jid: string): Promise<boolean> {
    return this.#run(() =>
      this.#owners.has(owner) && this.#st.blocks.get(owner, jid) !== undefined
    );
  }

  ping(): Promise<void> {
    return this.#run(() => {
      this.#db.prepare("SELECT 1").get();
    });
  }

  close(): Promise<void> {
    return this.#run(() => {
      if (this.#db.isOpen) this.#db.close();
    });
  }

  #run<T>(fn: () => T): Promise<T> {
    try {
      return Promise.resolve(fn());
    } catch (err) {
      return Promise.reject(
        new StoreError(`embedded store: ${errMsg(err)}`, { cause: err }),
      );
    }
  }

  #tx<T>(fn: () => T): Promise<T> {
    return this.#run(() => {
      this.#db.exec("BEGIN");
      try {
        const out = fn();
        this.#db.exec("COMMIT");
        return out;
      } catch (err) {
        this.#db.exec("ROLLBACK");
        // Cached usage may now be ahead of the table: recount lazily.
        this.#usage.clear();
        throw err;
      }
    });
  }
}
