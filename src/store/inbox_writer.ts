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

/** Batches store writes; one writer per node. */
export class InboxWriter {
  // Two FIFOs with monotonic due times; entries leave early when another
  // entry of the same user leaves, so that a user's inbox keeps send order.
  #soon: Pending[] = [];
  #later: Pending[] = [];
  // Entries not yet handed to the store, per user; `#waiting` counts their ids.
  #byUser = new Map<string, UserQueue>();
  #waiting = 0;
  // Users whose entries leave with the next batch.
  #due = new Set<string>();
  #removes: EntryKey[] = [];
  #sent: SentId[] = [];
  #pendingSince = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;
  #inFlight: Promise<void> | null = null;
  #closed = false;
  #started = 0;
  #finished = 0;
  #barriers: { target: number; resolve: () => void }[] = [];

  constructor(readonly store: Store, readonly options: WriterOptions) {}

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
   * may well come before the write is needed.
   */
  append(entry: InboxEntry, online = false): Promise<number | null> {
    if (this.#closed) return Promise.reject(new Error("inbox writer closed"));
    return new Promise((resolve, reject) => {
      const now = Date.now();
      const wait = online ? this.options.onlineGraceMs : this.options.delayMs;
      const p: Pending = { entry, due: now + wait, done: false, resolve, reject };
      (online ? this.#later : this.#soon).push(p);
      const q = this.#byUser.get(entry.user);
      if (!q) {
        this.#byUser.set(entry.user, { list: [p], byId: new Map([[entry.id, p]]) });
        this.#waiting++;
      } else {
        q.list.push(p);
        if (!q.byId.has(entry.id)) this.#waiting++;
        q.byId.set(entry.id, p);
      }
      this.#schedule(now);
    });
  }

  /** Remembers a sender's id in the store with the next batch. */
  sent(from: string, id: string): void {
    if (this.#sent.length === 0 && this.#removes.length === 0) this.#pendingSince = Date.now();
    this.#sent.push({ from, id });
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
      if (q.list.length === 0) this.#byUser.delete(user);
      p.resolve(null);
      return;
    }
    if (this.#sent.length === 0 && this.#removes.length === 0) this.#pendingSince = Date.now();
    this.#removes.push({ user, id });
    this.#schedule();
  }

  /**
   * Resolves once `user`'s queued entries and every remove queued before the
   * call went through a finished batch (committed or failed): a login reads
   * the inbox only then, so that a message on its way in is not missed and
   * then overtaken by newer live ones, and an acked one does not come back.
   */
  settled(user: string): Promise<void> {
    const queued = this.#byUser.has(user) || this.#removes.length > 0;
    if (queued) this.#due.add(user);
    const target = queued ? this.#started + 1 : this.#started;
    if (this.#finished >= target) return Promise.resolve();
    this.#schedule();
    return new Promise((resolve) => this.#barriers.push({ target, resolve }));
  }

  /** Writes everything queued now and waits for it (shutdown). */
  async drain(): Promise<void> {
    for (const user of this.#byUser.keys()) this.#due.add(user);
    while (this.#inFlight || this.#waiting > 0 || this.#removes.length || this.#sent.length) {
      this.#clearTimer();
      if (this.#inFlight) await this.#inFlight;
      else await this.#flush();
      for (const user of this.#byUser.keys()) this.#due.add(user);
    }
  }

  /** Drains and refuses further appends. */
  async close(): Promise<void> {
    await this.drain();
    this.#closed = true;
  }

  #schedule(now = Date.now()): void {
    if (this.#inFlight) return; // the batch in flight schedules on its way out
    let at = Infinity;
    if (this.#due.size > 0) at = now;
    const soon = headDue(this.#soon), later = headDue(this.#later);
    if (soon < at) at = soon;
    if (later < at) at = later;
    if ((this.#removes.length > 0 || this.#sent.length > 0)) {
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

  #flush(): Promise<void> {
    const now = Date.now();
    const full = this.#soon.length >= this.options.maxBatch;
    for (const q of [this.#soon, this.#later]) {
      while (q.length > 0 && (q[0]!.done || q[0]!.due <= now || (full && q === this.#soon))) {
        const p = q.shift()!;
        if (!p.done) this.#due.add(p.entry.user);
        if (full && this.#due.size >= this.options.maxBatch) break;
      }
    }
    const batch: Batch = { appends: [], removes: this.#removes, sent: this.#sent };
    this.#removes = [];
    this.#sent = [];
    const live: Pending[] = [];
    for (const user of this.#due) {
      if (live.length >= this.options.maxBatch) break;
      this.#due.delete(user);
      const q = this.#byUser.get(user);
      if (!q) continue;
      for (const p of q.list) {
        p.done = true;
        batch.appends.push(p.entry);
        live.push(p);
      }
      this.#waiting -= q.byId.size;
      this.#byUser.delete(user);
    }
    this.#started++;
    const run = (batch.appends.length === 0 && batch.removes.length === 0 &&
        batch.sent.length === 0)
      ? Promise.resolve()
      : this.store.commit(batch).then(
        (depths) => {
          // `live` holds each user's entries together, in send order.
          for (let i = 0; i < live.length;) {
            const user = live[i]!.entry.user;
            let end = i;
            while (end < live.length && live[end]!.entry.user === user) end++;
            const depth = depths.get(user) ?? 0;
            for (let j = i; j < end; j++) {
              live[j]!.resolve(depthAfter(depth, j - i + 1, end - j - 1));
            }
            i = end;
          }
        },
        (err) => {
          for (const p of live) p.reject(err);
          // Acks and sent ids must not be forgotten while the store is away:
          // retry them (bounded), or ghosts come back and retries duplicate.
          if (this.#removes.length < MAX_RETRY) this.#removes.unshift(...batch.removes);
          if (this.#sent.length < MAX_RETRY) this.#sent.unshift(...batch.sent);
          this.#pendingSince = Date.now();
          this.options.onError?.(err, live.length);
        },
      );
    const done = run.finally(() => {
      this.#inFlight = null;
      this.#finished++;
      this.#release();
      this.#schedule();
    });
    this.#inFlight = done;
    return done;
  }

  #release(): void {
    if (this.#barriers.length === 0) return;
    const waiting = this.#barriers;
    this.#barriers = [];
    for (const b of waiting) {
      if (b.target <= this.#finished) b.resolve();
      else this.#barriers.push(b);
    }
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
