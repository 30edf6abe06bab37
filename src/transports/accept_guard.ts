// What the accept loops do when accepting fails (EMFILE, ENFILE: the process
// or the system is out of file descriptors): back off and keep trying, log at
// most once a second with a count, count it for /metrics, and tell /readyz.

import type { Logger } from "../log.ts";

const MIN_BACKOFF_MS = 50;
const MAX_BACKOFF_MS = 1000;
const LOG_EVERY_MS = 1000;

/** Shared by every listener of a node. */
export class AcceptGuard {
  // Per listener whose accepts fail: backoff, failures not logged yet, last log.
  readonly #failing = new Map<string, { backoff: number; unlogged: number; loggedAt: number }>();

  /** `counted` is told of every failure (the /metrics counter). */
  constructor(readonly log: Logger, readonly counted: () => void) {}

  /** True while some listener's accepts fail: the node is not ready. */
  get failing(): boolean {
    return this.#failing.size > 0;
  }

  /** An accept of `transport` failed; resolves when it is time to try again. */
  failed(transport: string, err: unknown): Promise<void> {
    this.counted();
    let f = this.#failing.get(transport);
    if (!f) {
      this.#failing.set(transport, f = { backoff: MIN_BACKOFF_MS / 2, unlogged: 0, loggedAt: 0 });
    }
    f.unlogged++;
    const now = Date.now();
    if (now - f.loggedAt >= LOG_EVERY_MS) {
      this.log.error(`${transport} accept failed (${f.unlogged} in the last second): ${err}`);
      f.loggedAt = now;
      f.unlogged = 0;
    }
    f.backoff = Math.min(MAX_BACKOFF_MS, f.backoff * 2);
    return new Promise((r) => setTimeout(r, f.backoff));
  }

  /** An accept of `transport` succeeded again. */
  ok(transport: string): void {
    if (this.#failing.delete(transport)) this.log.warn(`${transport} accepting again`);
  }
}

/**
 * Accepts from `listener` until it is closed, handing each socket to `take`.
 * A failing accept (EMFILE, ENFILE) backs off through `guard` and the loop
 * goes on: the listener recovers once descriptors are free again.
 */
export async function acceptEach<C extends Deno.Conn>(
  listener: Deno.Listener<C>,
  transport: string,
  guard: AcceptGuard,
  take: (socket: C) => void,
): Promise<void> {
  for (;;) {
    let socket: C;
    try {
      socket = await listener.accept();
    } catch (err) {
      if (err instanceof Deno.errors.BadResource || err instanceof Deno.errors.Interrupted) return;
      await guard.failed(transport, err);
      continue;
    }
    guard.ok(transport);
    take(socket);
  }
}
