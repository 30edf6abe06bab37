// Places handed out in order (1, 2, 3, ...) that settle in any order, and a
// wait for every place up to one to have settled. The router's lanes wait
// this way for their earlier packets: a chain of promises, one link per
// packet alive for a hand-off's whole round trip, was a large part of the
// sending node's garbage (BENCHMARKS.md, "The cross-node path").

const SETTLED: Promise<void> = Promise.resolve();

/** Places in order, settling in any order. */
export class Prefix {
  #last = 0;
  // Every place below it has settled.
  #low = 1;
  // Settled places above #low (null while none is).
  #ahead: Set<number> | null = null;
  // Waits not yet settled, in the order they were made.
  #waits: { upTo: number; resolve: () => void }[] = [];

  /** The last place handed out (0: none yet). */
  get last(): number {
    return this.#last;
  }

  /** A new place, after every one handed out so far. */
  take(): number {
    return ++this.#last;
  }

  /** Settles `place`; settling it again changes nothing. */
  settle(place: number): void {
    if (place < this.#low) return;
    if (place !== this.#low) {
      (this.#ahead ??= new Set()).add(place);
      return;
    }
    let low = place + 1;
    while (this.#ahead?.delete(low)) low++;
    this.#low = low;
    if (this.#waits.length > 0) this.#wake();
  }

  /**
   * Null when `upTo` is 0 (nothing to wait for); else a promise that settles
   * once every place up to `upTo` has (already settled when they all have:
   * awaiting it still takes a turn, behind the waits settled before it).
   */
  until(upTo: number): Promise<void> | null {
    if (upTo === 0) return null;
    if (upTo < this.#low) return SETTLED;
    return new Promise((resolve) => this.#waits.push({ upTo, resolve }));
  }

  // In the order they were made, as links of a promise chain would settle.
  #wake(): void {
    const low = this.#low;
    if (!this.#waits.some((w) => w.upTo < low)) return;
    const due = this.#waits.filter((w) => w.upTo < low);
    this.#waits = this.#waits.filter((w) => w.upTo >= low);
    for (const w of due) w.resolve();
  }
}
