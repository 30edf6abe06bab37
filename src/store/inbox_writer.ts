// Group commit above any Store: appends and removes queue up for a few
// milliseconds and go to the store as one batch. An entry its recipient acks
// before its batch leaves is dropped in memory and never written at all;
// entries already delivered to an online recipient wait a little longer for
// that ack, which is what saves most online traffic from the store.

import type { Batch, EntryKey, InboxEntry, SentId, Store } from "./store.ts";

/** How long entries wait for their batch, and how big a batch may get. */
export interface WriterOptions {
  /** Wait of entries for offline recipients, and of removes. */
  delayMs: number;
  /** Wait of entries delivered to an online recipient, for its ack. */
  onlineGraceMs: number;
  /**
   * Wait of entries delivered to a session on this node (`append(e, "local")`),
   * for its ack; onlineGraceMs when absent. Nothing waits on this node's
   * answer but the sender's server ack, so it may be longer than the grace of
   * a hand-off, whose sending node waits for the answer.
   */
  localGraceMs?: number;
  /** Soft bound: one user's entries always leave together. */
  maxBatch: number;
  /** Called when a commit fails, with the number of entries it held. */
  onError?: (err: unknown, entries: number) => void;
}

interface Pending {
  entry: InboxEntry;
  /** When it must leave at the latest (ms since the epoch). */
  due: number;
  /** Cancelled by an ack, or taken into a batch: skipped in the queues. */
  done: boolean;
  resolve(depth: number | null): void;
  reject(err: unknown): void;
}

/** A user's entries not yet handed to the store. */
interface UserQueue {
  /** In send order (a resent id appears twice). */
  list: Pending[];
  /** By id, for acks: the latest entry of each id. */
  byId: Map<string, Pending>;
}

const MAX_RETRY = 100_000;

/** One commit on its way to one shard of the store. */
interface Flight {
  /** Users whose appends or removes it carries: none of theirs leaves before it is back. */
  users: Set<string>;
  /** settled() callers waiting for it. */
  settled: (() => void)[];
}

/** Batches store writes; one writer per node. */
export class InboxWriter {
  // FIFOs with monotonic due times (one per wait); entries leave early when
  // another entry of the same user leaves, so that a user's inbox keeps send order.
  #soon: Pending[] = [];
  #later: Pending[] = [];
  #local: Pending[] = [];
  // Entries not yet handed to the store, per user; `#waiting` counts their ids.
  #byUser = new Map<string, UserQueue>();
  #waiting = 0;
  // Users whose entries leave with the next batch.
  #due = new Set<string>();
  // Due users that must wait for a commit in flight (theirs or their shard's).
  #parked = new Set<string>();
  #removes: EntryKey[] = [];
  #sent: SentId[] = [];
  #pendingSince = 0;
  // The removes and sent ids left over by the last batch wait for a commit
  // in flight to come back, not for their timer.
  #leftoverWaits = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;
  // At most one commit per shard (a Redis Cluster master) in flight: shards
  // do not wait on each other, so a master that is down holds up only the
  // users it holds (docs/delivery.md).
  #flights = new Map<string, Flight>();
  #flightOf = new Map<string, Flight>();
  #running = new Set<Promise<void>>();
  // settled() callers whose user's queued work has not left yet.
  #waiters = new Map<string, (() => void)[]>();
  #closed = false;

  /** Whether `sent()` ids go to the store (Store.keepsSentIds); false: there is no need to call it. */
  readonly keepsSent: boolean;

  constructor(readonly store: Store, readonly options: WriterOptions) {
    this.keepsSent = store.keepsSentIds !== false;
  }

  /** Entries and removes not yet committed. */
  get backlog(): number {
    return this.#waiting + this.#removes.length;
  }

  /**
   * Queues an entry. Resolves once it is committed, with the recipient's inbox
   * depth right after this entry (`depthAfter`; 0 when the store kept none of
   * the user's entries in its batch), or once the recipient
   * acked it, with null (whichever is first); rejects when the store fails.
   * `online`: the entry was handed to the recipient's session, so its ack
   * may well come before the write is needed ("local": a session on this node).
   */
  append(entry: InboxEntry, online: boolean | "local" = false): Promise<number | null> {
    if (this.#closed) return Promise.reject(new Error("inbox writer closed"));
    return new Promise((resolve, reject) => {
      const now = Date.now();
      const o = this.options;
      const wait = online === "local"
        ? o.localGraceMs ?? o.onlineGraceMs
        : online
        ? o.onlineGraceMs
        : o.delayMs;
      const p: Pending = { entry, due: now + wait, done: false, resolve, reject };
      (online === "local" ? this.#local : online ? this.#later : this.#soon).push(p);
      const q = this.#byUser.get(entry.user);
      if (!q) {
        const byId = new Map<string, Pending>();
        byId.set(entry.id, p);
        this.#byUser.set(entry.user, { list: [p], byId });
        this.#waiting++;
      } else {
        q.list.push(p);
        if (!q.byId.has(entry.id)) this.#waiting++;
        q.byId.set(entry.id, p);
      }
      this.#schedule(now);
    });
  }

  /** Remembers a sender's id in the store with the next batch (dropped unless `keepsSent`). */
  sent(from: string, id: string): void {
    if (!this.keepsSent) return;
    if (this.#sent.length === 0 && this.#removes.length === 0) this.#pendingSince = Date.now();
    this.#sent.push({ from, id });
    this.#leftoverWaits = false;
    this.#schedule();
  }

  /** The recipient acked `id`: cancel the pending write, or delete the stored entry. */
  remove(user: string, id: string): void {
    const q = this.#byUser.get(user);
    const p = q?.byId.get(id);
    if (q && p) {
      q.byId.delete(id);
      this.#waiting--;
      p.done = true;
      // Acks mostly come in send order: the head is the usual case.
      if (q.list[0] === p) q.list.shift();
      else q.list.splice(q.list.indexOf(p), 1);
      if (q.list.length === 0) {
        this.#byUser.delete(user);
        this.#wake(user);
      }
      p.resolve(null);
      return;
    }
    if (this.#sent.length === 0 && this.#removes.length === 0) this.#pendingSince = Date.now();
    this.#removes.push({ user, id });
    this.#leftoverWaits = false;
    this.#schedule();
  }

  /**
   * Resolves once `user`'s queued entries and removes went through a finished
   * commit (committed or failed), and any commit of theirs in flight is back:
   * a login reads the inbox only then, so that a message on its way in is not
   * missed and then overtaken by newer live ones, and an acked one does not
   * come back.
   */
  settled(user: string): Promise<void> {
    const flight = this.#flightOf.get(user);
    if (!this.#queued(user) && !flight) return Promise.resolve();
    return new Promise((resolve) => {
      if (!this.#queued(user)) {
        flight!.settled.push(resolve);
        return;
      }
      const list = this.#waiters.get(user);
      if (list) list.push(resolve);
      else this.#waiters.set(user, [resolve]);
      if (!this.#parked.has(user)) this.#due.add(user);
      this.#schedule();
    });
  }

  /** Writes everything queued now and waits for it (shutdown). */
  async drain(): Promise<void> {
    for (;;) {
      for (const user of this.#byUser.keys()) this.#due.add(user);
      const idle = this.#running.size === 0;
      if (idle && this.#waiting === 0 && !this.#removes.length && !this.#sent.length) return;
      this.#clearTimer();
      this.#flush();
      await Promise.all(this.#running);
    }
  }

  /** Drains and refuses further appends. */
  async close(): Promise<void> {
    await this.drain();
    this.#closed = true;
  }

  /** Rejects `user`'s queued entries with `err`. */
  #failQueued(user: string, err: unknown): void {
    const q = this.#byUser.get(user);
    if (!q) return;
    this.#byUser.delete(user);
    this.#waiting -= q.byId.size;
    for (const p of q.list) {
      p.done = true;
      p.reject(err);
    }
    this.#wake(user);
  }

  /** True while `user` has entries or removes not yet handed to the store. */
  #queued(user: string): boolean {
    return this.#byUser.has(user) || this.#removes.some((r) => r.user === user);
  }

  /** Hands `user`'s settled() callers on once nothing of theirs waits to leave. */
  #wake(user: string): void {
    const list = this.#waiters.get(user);
    if (!list || this.#queued(user)) return;
    this.#waiters.delete(user);
    const flight = this.#flightOf.get(user);
    if (flight) flight.settled.push(...list);
    else for (const resolve of list) resolve();
  }

  #schedule(now = Date.now()): void {
    let at = Infinity;
    if (this.#due.size > 0) at = now;
    const soon = headDue(this.#soon), later = headDue(this.#later), local = headDue(this.#local);
    if (soon < at) at = soon;
    if (later < at) at = later;
    if (local < at) at = local;
    if ((this.#removes.length > 0 || this.#sent.length > 0) && !this.#leftoverWaits) {
      at = Math.min(at, this.#pendingSince + this.options.delayMs);
    }
    // A full batch of offline entries leaves at once; entries waiting for
    // their online ack never hurry a batch.
    if (this.#soon.length >= this.options.maxBatch) at = now;
    if (at === Infinity || at >= this.#timerAt) return;
    this.#clearTimer();
    this.#timerAt = at;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#timerAt = Infinity;
      this.#flush();
    }, Math.max(0, at - now));
  }

  #clearTimer(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }

  /** Sends what is due, one batch per shard with no commit in flight. */
  #flush(): void {
    const now = Date.now();
    const full = this.#soon.length >= this.options.maxBatch;
    for (const q of [this.#soon, this.#later, this.#local]) {
      while (q.length > 0 && (q[0]!.done || q[0]!.due <= now || (full && q === this.#soon))) {
        const p = q.shift()!;
        if (!p.done) this.#due.add(p.entry.user);
        if (full && this.#due.size >= this.options.maxBatch) break;
      }
    }
    const batches = new Map<string, { batch: Batch; live: Pending[]; users: Set<string> }>();
    // The batch of `user`'s shard, or null while that shard (or, with `own`,
    // the user) has a commit out.
    const batchOf = (user: string, own = true) => {
      if (own && this.#flightOf.has(user)) return null;
      const shard = this.store.shard?.(user) ?? "";
      if (this.#flights.has(shard)) return null;
      let b = batches.get(shard);
      if (!b) {
        b = { batch: { appends: [], removes: [], sent: [] }, live: [], users: new Set() };
        batches.set(shard, b);
      }
      return b;
    };
    for (const user of this.#due) {
      this.#due.delete(user);
      const q = this.#byUser.get(user);
      if (!q) continue;
      const b = batchOf(user);
      if (!b || b.live.length >= this.options.maxBatch) {
        this.#parked.add(user);
        continue;
      }
      for (const p of q.list) {
        p.done = true;
        b.batch.appends.push(p.entry);
        b.live.push(p);
      }
      b.users.add(user);
      this.#waiting -= q.byId.size;
      this.#byUser.delete(user);
    }
    const removes = this.#removes, sent = this.#sent;
    this.#removes = [];
    this.#sent = [];
    for (const r of removes) {
      const b = batchOf(r.user);
      if (!b) this.#removes.push(r);
      else {
        b.batch.removes.push(r);
        b.users.add(r.user);
      }
    }
    // A sender's remembered ids keep no order with its inbox: only the shard counts.
    for (const x of sent) {
      const b = batchOf(x.from, false);
      if (b) b.batch.sent.push(x);
      else this.#sent.push(x);
    }
    this.#leftoverWaits = this.#removes.length > 0 || this.#sent.length > 0;
    for (const [shard, b] of batches) this.#send(shard, b.batch, b.live, b.users);
    for (const user of [...this.#waiters.keys()]) this.#wake(user);
    // Timers may fire a little before Date.now() reaches the due time (they
    // run on another clock): what is still waiting needs its next timer.
    this.#schedule(now);
  }

  /** Commits one shard's batch; its users' later work waits until it is back. */
  #send(shard: string, batch: Batch, live: Pending[], users: Set<string>): void {
    const flight: Flight = { users, settled: [] };
    this.#flights.set(shard, flight);
    for (const user of users) this.#flightOf.set(user, flight);
    const run = this.store.commit(batch).then(
      (depths) => {
        // `live` holds each user's entries together, in send order.
        for (let i = 0; i < live.length;) {
          const user = live[i]!.entry.user;
          let end = i;
          while (end < live.length && live[end]!.entry.user === user) end++;
          const depth = depths.get(user) ?? 0;
          for (let j = i; j < end; j++) live[j]!.resolve(depthAfter(depth, j - i + 1, end - j - 1));
          i = end;
        }
      },
      (err) => {
        for (const p of live) p.reject(err);
        // Their users' entries queued behind them fail too: stored now,
        // they would be ahead of the failed ones, which their senders send
        // again only once told (docs/protocol.md §12, "After a store_error").
        for (const user of new Set(live.map((p) => p.entry.user))) this.#failQueued(user, err);
        // Acks and sent ids must not be forgotten while the store is away:
        // retry them (bounded), or ghosts come back and retries duplicate.
        if (this.#removes.length < MAX_RETRY) this.#removes.unshift(...batch.removes);
        if (this.#sent.length < MAX_RETRY) this.#sent.unshift(...batch.sent);
        this.#pendingSince = Date.now();
        this.options.onError?.(err, live.length);
      },
    );
    const done = run.finally(() => {
      this.#running.delete(done);
      this.#flights.delete(shard);
      for (const user of users) {
        if (this.#flightOf.get(user) === flight) this.#flightOf.delete(user);
      }
      for (const resolve of flight.settled) resolve();
      for (const user of this.#parked) this.#due.add(user);
      this.#parked.clear();
      this.#leftoverWaits = false;
      this.#schedule();
    });
    this.#running.add(done);
  }
}

/**
 * The depth right after the `nth` (from 1) of a user's entries in a batch went
 * in, `later` more of them following, when the batch left `depth` behind
 * (0: nothing stored). The later ones do not count yet; when the cap trimmed
 * the inbox it holds at least the first `nth` (up to `depth`). So a user's
 * depths count up entry by entry to the batch's `depth`.
 */
export function depthAfter(depth: number, nth: number, later: number): number {
  if (depth === 0) return 0;
  return Math.max(Math.min(nth, depth), depth - later);
}

/** Due time of the first live entry of a queue, dropping finished ones from its head. */
function headDue(q: Pending[]): number {
  while (q.length > 0 && q[0]!.done) q.shift();
  return q[0]?.due ?? Infinity;
}
