// Timeouts of the load tool's connects and logins, swept by one interval
// instead of a timer per connection: opening 19,000 connections would
// otherwise create and clear 38,000 timers.

/** Period of the sweep: timeouts fire up to this much late. */
const SWEEP_MS = 100;

/** A set of deadlines with callbacks, checked together. */
export class Deadlines {
  readonly #pending = new Map<number, { at: number; fire: () => void }>();
  #nextId = 1;
  #timer: ReturnType<typeof setInterval> | undefined;

  /** Whether the sweep runs (only while some deadline is pending). */
  get sweeping(): boolean {
    return this.#timer !== undefined;
  }

  /** Calls `fire` once `ms` have passed, unless `cancel` is called first; returns its handle. */
  add(ms: number, fire: () => void): number {
    const id = this.#nextId++;
    this.#pending.set(id, { at: performance.now() + ms, fire });
    this.#timer ??= setInterval(() => this.#sweep(), SWEEP_MS);
    return id;
  }

  /** Forgets a deadline (one that already fired is ignored). */
  cancel(id: number): void {
    this.#pending.delete(id);
    if (this.#pending.size === 0) this.#stop();
  }

  #sweep(): void {
    const now = performance.now();
    for (const [id, d] of this.#pending) {
      if (d.at > now) continue;
      this.#pending.delete(id);
      d.fire();
    }
    if (this.#pending.size === 0) this.#stop();
  }

  #stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
