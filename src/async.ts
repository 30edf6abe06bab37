// The node's few concurrency shapes, written once: a FIFO semaphore (the
// store's `dbpool`, the callback lanes), a deadline on a promise (readiness
// pings, callbacks, blacklist confirmations), a queue per key (registry steps
// of one user), a single flight per key (group lookups, liveness renewal), a
// sleep a signal cuts short (waits for a Redis Cluster at startup, bench) and
// a prefix of places that settle in any order (the router's lanes wait with
// it for their earlier packets: a chain of promises, one link per packet
// alive for a hand-off's whole round trip, was a large part of the sending
// node's garbage; BENCHMARKS.md, "The cross-node path").

/** Thrown by `Semaphore.acquire` when its line of waiters is full. */
export class WaitLineFull extends Error {
  constructor(readonly max: number) {
    super(`more than ${max} waiting`);
    this.name = "WaitLineFull";
  }
}

/** Thrown by `Semaphore.acquire` when the caller's signal aborted while it waited. */
export class WaitAborted extends Error {
  constructor() {
    super("aborted while waiting for a free slot");
    this.name = "WaitAborted";
  }
}

/** At most `limit` holders at once; later ones get their turn in call order. */
export class Semaphore {
  #active = 0;
  // Insertion-ordered: the first waiter is the oldest; leaving on abort is O(1).
  readonly #waiting = new Set<() => void>();

  /** `maxWaiting`: callers allowed in line; beyond it `acquire` rejects with WaitLineFull. */
  constructor(readonly limit: number, readonly maxWaiting = Infinity) {
    if (!(limit >= 1)) throw new RangeError(`semaphore limit must be >= 1, got ${limit}`);
  }

  /** Holders now. */
  get active(): number {
    return this.#active;
  }

  /** Callers in line for a turn. */
  get waiting(): number {
    return this.#waiting.size;
  }

  /** Takes a turn, waiting in line; rejects when the line is full or `signal` aborts. */
  acquire(signal?: AbortSignal): Promise<void> {
    if (this.#active < this.limit) {
      this.#active++;
      return Promise.resolve();
    }
    return this.#wait(signal);
  }

  #wait(signal?: AbortSignal): Promise<void> {
    if (this.#waiting.size >= this.maxWaiting) {
      return Promise.reject(new WaitLineFull(this.maxWaiting));
    }
    return new Promise((resolve, reject) => {
      const go = () => {
        signal?.removeEventListener("abort", gone);
        resolve();
      };
      const gone = () => {
        this.#waiting.delete(go);
        reject(new WaitAborted());
      };
      signal?.addEventListener("abort", gone, { once: true });
      this.#waiting.add(go);
    });
  }

  /** Gives a turn back: straight to the oldest waiter, if any. */
  release(): void {
    const next = this.#waiting.values().next();
    if (next.done) {
      this.#active--;
      return;
    }
    this.#waiting.delete(next.value);
    next.value(); // #active stays the same: the turn changes hands
  }

  /** Runs `fn` in a turn; the turn is given back however `fn` ends. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    // A free turn is taken without a wait: the store's hot path goes through here.
    if (this.#active < this.limit) this.#active++;
    else await this.#wait();
    try {
      return await fn();
    } finally {
      this.release();
    }
  }
}

/**
 * Runs `work` and resolves to its result, or to `onTimeout()` when it has not
 * settled within `ms`; then the signal given to `work` aborts (and a late
 * rejection of `work` is ignored). The timer never outlives the call.
 */
export async function withTimeout<T>(
  ms: number,
  work: (signal: AbortSignal) => Promise<T>,
  onTimeout: () => T | Promise<T>,
): Promise<T> {
  const abort = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), ms);
  });
  try {
    const running = work(abort.signal);
    const first = await Promise.race([running, late]);
    if (first !== TIMED_OUT) return first as T;
    abort.abort();
    running.catch(() => {});
    return await onTimeout();
  } finally {
    clearTimeout(timer);
  }
}

const TIMED_OUT = Symbol("timed out");

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done);
  });
}

/** Steps given the same key run one after another, in call order; keys run independently. */
export class KeyedQueue<K = string> {
  readonly #tails = new Map<K, Promise<void>>();

  /** Runs `step` after every earlier step of `key` settled; resolves or rejects as `step` does. */
  run<T>(key: K, step: () => Promise<T>): Promise<T> {
    const result = (this.#tails.get(key) ?? Promise.resolve()).then(step);
    const tail = result.then(noop, noop);
    this.#tails.set(key, tail);
    tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return result;
  }

  /** Resolves once every step started so far has settled. */
  async settled(): Promise<void> {
    await Promise.all(this.#tails.values());
  }
}

/**
 * One run per key at a time: a caller arriving while a run of its key is on
 * its way shares that run's result instead of starting another.
 */
export class SingleFlight<K, T> {
  readonly #flights = new Map<K, { run: Promise<T> | null }>();

  /**
   * The run of `key` on its way, or a new one of `fn`. `fn` gets `current()`,
   * false once `forget(key)` dropped this run (its answer may be stale).
   */
  run(key: K, fn: (current: () => boolean) => Promise<T>): Promise<T> {
    const pending = this.#flights.get(key)?.run;
    if (pending) return pending;
    const flight: { run: Promise<T> | null } = { run: null };
    this.#flights.set(key, flight);
    const current = () => this.#flights.get(key) === flight;
    try {
      flight.run = fn(current).finally(() => {
        if (current()) this.#flights.delete(key);
      });
    } catch (err) {
      this.#flights.delete(key);
      throw err;
    }
    return flight.run;
  }

  /** The run of `key` on its way, if any. */
  pending(key: K): Promise<T> | undefined {
    return this.#flights.get(key)?.run ?? undefined;
  }

  /** Drops the run of `key`: its callers still get its result, later ones start anew. */
  forget(key: K): void {
    this.#flights.delete(key);
  }
}

function noop(): void {}

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

  // In the order they were made, as links of a promise chain would settle;
  // one pass that keeps the rest in place (resolving runs no code of theirs
  // before this returns).
  #wake(): void {
    const low = this.#low;
    const waits = this.#waits;
    let kept = 0;
    for (const w of waits) {
      if (w.upTo < low) w.resolve();
      else waits[kept++] = w;
    }
    waits.length = kept;
  }
}
