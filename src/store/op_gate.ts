// A FIFO bound on operations in flight: what `dbpool` means for the Redis
// store (one multiplexed connection, at most N store operations outstanding).

/** Runs at most `limit` operations at once; later ones wait their turn in call order. */
export class OpGate {
  #active = 0;
  // Waiters from #head on; the consumed front is dropped now and then.
  #waiting: (() => void)[] = [];
  #head = 0;

  constructor(readonly limit: number) {
    if (!(limit >= 1)) throw new RangeError(`gate limit must be >= 1, got ${limit}`);
  }

  /** Operations running now. */
  get active(): number {
    return this.#active;
  }

  /** Operations waiting for a turn. */
  get waiting(): number {
    return this.#waiting.length - this.#head;
  }

  /** Runs `fn` once a turn is free; the turn is given back however `fn` ends. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#active < this.limit) this.#active++;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    try {
      return await fn();
    } finally {
      this.#release();
    }
  }

  #release(): void {
    if (this.#head === this.#waiting.length) {
      if (this.#head > 0) {
        this.#waiting = [];
        this.#head = 0;
      }
      this.#active--;
      return;
    }
    // The turn passes straight to the next waiter, so #active stays the same.
    const next = this.#waiting[this.#head++]!;
    if (this.#head > 1024 && this.#head * 2 > this.#waiting.length) {
      this.#waiting = this.#waiting.slice(this.#head);
      this.#head = 0;
    }
    next();
  }
}
