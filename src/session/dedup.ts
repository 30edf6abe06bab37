// Remembers the last `dedup_ids` message ids of each sender, so that a client
// retrying a send whose server ack it missed does not deliver it twice.

interface Recent {
  ids: string[];
  set: Set<string>;
  next: number;
  touched: number;
}

/** Per-sender ring of recent ids; memory grows with use, up to `size` ids per sender. */
export class DedupCache {
  readonly #senders = new Map<string, Recent>();

  constructor(readonly size: number) {}

  /** Records `id` for `from`; true when it was already there (a duplicate). */
  check(from: string, id: string, now: number): boolean {
    if (this.size === 0) return false;
    let r = this.#senders.get(from);
    if (!r) {
      r = { ids: [], set: new Set(), next: 0, touched: now };
      this.#senders.set(from, r);
    }
    r.touched = now;
    if (r.set.has(id)) return true;
    if (r.ids.length < this.size) {
      r.ids.push(id);
    } else {
      r.set.delete(r.ids[r.next]!);
      r.ids[r.next] = id;
      r.next = (r.next + 1) % this.size;
    }
    r.set.add(id);
    return false;
  }

  /** Seeds a sender's ids from the store (oldest first) when it logs in on this node. */
  load(from: string, ids: readonly string[], now: number): void {
    for (const id of ids.slice(-this.size)) this.check(from, id, now);
  }

  /** Forgets senders idle since before `cutoff`, bounding memory to active senders. */
  evictIdle(cutoff: number): void {
    for (const [from, r] of this.#senders) if (r.touched < cutoff) this.#senders.delete(from);
  }

  get senders(): number {
    return this.#senders.size;
  }
}
