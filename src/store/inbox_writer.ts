// Group commit above any Store: appends and removes queue up for a few
// milliseconds and go to the store as one batch. An entry its recipient acks
// before its batch leaves is dropped in memory and never written at all.

import type { Batch, EntryKey, InboxEntry, SentId, Store } from "./store.ts";

/** How long entries wait for their batch, and how big a batch may get. */
export interface WriterOptions {
  delayMs: number;
  maxBatch: number;
  /** Called when a commit fails, with the number of entries it held. */
  onError?: (err: unknown, entries: number) => void;
}

interface Pending {
  entry: InboxEntry;
  /** Place in the order of queued appends and removes (see `settled`). */
  seq: number;
  cancelled: boolean;
  resolve(depth: number | null): void;
  reject(err: unknown): void;
}

const MAX_RETRY_REMOVES = 100_000;

/** Batches store writes; one writer per node. */
export class InboxWriter {
  #queue: Pending[] = [];
  // Entries not yet handed to the store, by user and id: an ack finds them here.
  #waiting = new Map<string, Pending>();
  #removes: EntryKey[] = [];
  #sent: SentId[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #inFlight: Promise<void> | null = null;
  #closed = false;
  // Appends and removes are numbered as they queue; every one numbered up to
  // #doneThrough has left in a finished batch. Logins wait on this.
  #seq = 0;
  #doneThrough = 0;
  #barriers: { target: number; resolve: () => void }[] = [];

  constructor(readonly store: Store, readonly options: WriterOptions) {}

  /** Entries and removes not yet committed. */
  get backlog(): number {
    return this.#queue.length + this.#removes.length;
  }

  /**
   * Queues an entry. Resolves once it is committed, with the recipient's inbox
   * depth (or 0 when the store dropped it by policy), or once the recipient
   * acked it, with null (whichever is first); rejects when the store fails.
   */
  append(entry: InboxEntry): Promise<number | null> {
    if (this.#closed) return Promise.reject(new Error("inbox writer closed"));
    return new Promise((resolve, reject) => {
      const p: Pending = { entry, seq: ++this.#seq, cancelled: false, resolve, reject };
      this.#queue.push(p);
      this.#waiting.set(key(entry.user, entry.id), p);
      this.#schedule();
    });
  }

  /** Remembers a sender's id in the store with the next batch. */
  sent(from: string, id: string): void {
    this.#sent.push({ from, id });
    this.#schedule();
  }

  /** The recipient acked `id`: cancel the pending write, or delete the stored entry. */
  remove(user: string, id: string): void {
    const k = key(user, id);
    const p = this.#waiting.get(k);
    if (p) {
      this.#waiting.delete(k);
      p.cancelled = true;
      p.resolve(null);
      return;
    }
    this.#seq++;
    this.#removes.push({ user, id });
    this.#schedule();
  }

  /**
   * Resolves once every append and remove queued before the call has gone
   * through a finished batch (committed, cancelled or failed): a login reads
   * the inbox only then, so that a message on its way in is not missed and
   * then overtaken by newer live ones, and an acked one does not come back.
   */
  settled(): Promise<void> {
    const target = this.#seq;
    if (this.#doneThrough >= target) return Promise.resolve();
    return new Promise((resolve) => this.#barriers.push({ target, resolve }));
  }

  /** Writes everything queued now and waits for it (shutdown). */
  async drain(): Promise<void> {
    while (this.#inFlight || this.backlog > 0 || this.#sent.length > 0) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      if (this.#inFlight) await this.#inFlight;
      else await this.#flush();
    }
  }

  /** Drains and refuses further appends. */
  async close(): Promise<void> {
    await this.drain();
    this.#closed = true;
  }

  #schedule(): void {
    if (this.#inFlight || this.#timer !== undefined) return;
    const size = this.#queue.length + this.#removes.length;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#flush();
    }, size >= this.options.maxBatch ? 0 : this.options.delayMs);
  }

  #flush(): Promise<void> {
    const upTo = this.#seq;
    const take = this.#queue.splice(0, this.options.maxBatch);
    const batch: Batch = { appends: [], removes: this.#removes, sent: this.#sent };
    this.#removes = [];
    this.#sent = [];
    const live: Pending[] = [];
    for (const p of take) {
      if (p.cancelled) continue;
      this.#waiting.delete(key(p.entry.user, p.entry.id));
      batch.appends.push(p.entry);
      live.push(p);
    }
    if (batch.appends.length === 0 && batch.removes.length === 0 && batch.sent.length === 0) {
      this.#advance(upTo);
      // Everything taken was cancelled; entries past a full batch still wait.
      if (this.#queue.length > 0) this.#schedule();
      return Promise.resolve();
    }
    const run = this.store.commit(batch).then(
      (depths) => {
        for (const p of live) p.resolve(depths.get(p.entry.user) ?? 0);
      },
      (err) => {
        for (const p of live) p.reject(err);
        // Acks and sent ids must not be forgotten while the store is away:
        // retry them (bounded), or ghosts come back and retries duplicate.
        if (this.#removes.length < MAX_RETRY_REMOVES) this.#removes.unshift(...batch.removes);
        if (this.#sent.length < MAX_RETRY_REMOVES) this.#sent.unshift(...batch.sent);
        this.options.onError?.(err, live.length);
      },
    ).finally(() => {
      this.#inFlight = null;
      this.#advance(upTo);
      if (this.#queue.length > 0 || this.#removes.length > 0 || this.#sent.length > 0) {
        this.#schedule();
      }
    });
    this.#inFlight = run;
    return run;
  }

  // Batches leave in queue order: what was queued up to `upTo` is through,
  // except appends still queued because the batch was full.
  #advance(upTo: number): void {
    const head = this.#queue[0];
    this.#doneThrough = head ? Math.min(upTo, head.seq - 1) : upTo;
    if (this.#barriers.length === 0) return;
    const waiting = this.#barriers;
    this.#barriers = [];
    for (const b of waiting) {
      if (b.target <= this.#doneThrough) b.resolve();
      else this.#barriers.push(b);
    }
  }
}

function key(user: string, id: string): string {
  return `${user}\n${id}`;
}
