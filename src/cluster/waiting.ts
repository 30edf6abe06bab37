// The hand-offs a node waits on for their "took" answer, by reference. The
// references are numbered in order and mostly answered in order, so an array
// that drops its answered head holds them: a Map keyed by reference, with one
// insert and one delete per hand-off, rehashed its table over and over, and
// those tables were much of the sending node's promoted garbage (BENCHMARKS.md,
// "The cross-node path").

/** One waiting hand-off: how to answer it, and since when it waits (ms since the epoch). */
export interface Wait<A> {
  resolve: (answer: A) => void;
  since: number;
}

// Answered entries at the head dropped at once (one copy of the rest per this many).
const DROP_AT = 1024;

/** Waits (of type `W`, carrying what its owner needs to find them) by reference, oldest first. */
export class Waiting<A, W extends Wait<A> = Wait<A>> {
  #next = 0;
  // The reference of #waits[0]; #waits[i] is undefined once answered.
  #base = 0;
  #head = 0;
  #waits: (W | undefined)[] = [];
  #size = 0;

  /** Waits still unanswered. */
  get size(): number {
    return this.#size;
  }

  /** Adds `w` under a new reference (in base 36, as it travels). */
  add(w: W): string {
    this.#waits.push(w);
    this.#size++;
    return (this.#next++).toString(36);
  }

  /** Answers the wait of `ref`; false when there is none (answered, expired, or never made). */
  answer(ref: string, a: A): boolean {
    const n = parseInt(ref, 36);
    if (!Number.isSafeInteger(n) || n.toString(36) !== ref) return false;
    const i = n - this.#base;
    const w = i >= this.#head ? this.#waits[i] : undefined;
    if (w === undefined) return false;
    this.#waits[i] = undefined;
    this.#size--;
    if (i === this.#head) this.#trim();
    w.resolve(a);
    return true;
  }

  /** Answers `a` to every wait made at `limit` or before (oldest first); to all when `limit` is absent. */
  expire(a: A, limit = Infinity, each?: (ref: string) => void): void {
    while (this.#head < this.#waits.length) {
      const w = this.#waits[this.#head];
      if (w !== undefined && w.since > limit) break;
      if (w !== undefined) {
        const ref = (this.#base + this.#head).toString(36);
        each?.(ref);
        this.answer(ref, a);
      } else this.#head++;
    }
    this.#trim();
  }

  /** Answers `a` to every wait `which` picks, oldest first (a scan: for rare events only). */
  expireIf(a: A, which: (w: W) => boolean): void {
    // References first: answering the head may drop it and renumber the array.
    const refs: string[] = [];
    for (let i = this.#head; i < this.#waits.length; i++) {
      const w = this.#waits[i];
      if (w !== undefined && which(w)) refs.push((this.#base + i).toString(36));
    }
    for (const ref of refs) this.answer(ref, a);
  }

  #trim(): void {
    while (this.#head < this.#waits.length && this.#waits[this.#head] === undefined) this.#head++;
    if (this.#head === this.#waits.length || this.#head >= DROP_AT) {
      this.#waits.splice(0, this.#head);
      this.#base += this.#head;
      this.#head = 0;
    }
  }
}
