// Remembers the last `dedup_ids` message ids of each sender, so that a client
// retrying a send whose server ack it missed does not deliver it twice, and
// is not acked before the first copy is safe.

interface Recent {
  // Ring of ids; a slot is emptied when its id is forgotten.
  ids: (string | undefined)[];
  set: Set<string>;
  next: number;
  touched: number;
  /** First copies not yet safe, by id; null while there are none. */
  unsafe: Map<string, Promise<unknown>> | null;
}

/** Per-sender ring of recent ids; memory grows with use, up to `size` ids per sender. */
export class DedupCache {
  readonly #senders = new Map<string, Recent>();

  constructor(readonly size: number) {}

  /** Records `id` for `from`; true when it was already there (a duplicate). */
  check(from: string, id: string, now: number): boolean {
    if (this.size === 0) return false;
    const r = this.#of(from, now);
    r.touched = now;
    if (r.set.has(id)) return true;
    if (r.ids.length < this.size) {
      r.ids.push(id);
    } else {
      const old = r.ids[r.next];
      if (old !== undefined) r.set.delete(old);
      r.ids[r.next] = id;
      r.next = (r.next + 1) % this.size;
    }
    r.set.add(id);
    return false;
  }

  /**
   * Follows the first copy of `id` until it is safe: a duplicate waits for
   * the same promise (`firstCopy`) before its server ack. If the first copy
   * fails, the id is forgotten, so that a retry is routed again instead of
   * being acked without ever being kept.
   */
  track(from: string, id: string, safe: Promise<unknown>): void {
    // Without suppression no duplicate ever asks (check() is always false).
    if (this.size === 0) return;
    const unsafe = this.#of(from, Date.now()).unsafe ??= new Map();
    unsafe.set(id, safe);
    const done = () => {
      if (unsafe.get(id) === safe) unsafe.delete(id);
    };
    safe.then(done, () => {
      done();
      this.#forget(from, id);
    });
  }

  /** What a duplicate of `id` must wait for: the first copy's safety, if still pending. */
  firstCopy(from: string, id: string): Promise<unknown> {
    return this.#senders.get(from)?.unsafe?.get(id) ?? Promise.resolve();
  }

  /** Seeds a sender's ids from the store (oldest first) when it logs in on this node. */
  load(from: string, ids: readonly string[], now: number): void {
    for (const id of ids.slice(-this.size)) this.check(from, id, now);
  }

  /** Forgets senders idle since before `cutoff`, bounding memory to active senders. */
  evictIdle(cutoff: number): void {
    for (const [from, r] of this.#senders) if (r.touched < cutoff) this.#senders.delete(from);
  }

  #of(from: string, now: number): Recent {
    let r = this.#senders.get(from);
    if (!r) {
      r = { ids: [], set: new Set(), next: 0, touched: now, unsafe: null };
      this.#senders.set(from, r);
    }
    return r;
  }

  #forget(from: string, id: string): void {
    const r = this.#senders.get(from);
    if (!r || !r.set.delete(id)) return;
    const i = r.ids.lastIndexOf(id);
    if (i !== -1) r.ids[i] = undefined;
  }
}
