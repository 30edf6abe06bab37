// Small helpers of the load tool's tests: bounded waits and a silent live line.

import { LiveLine } from "../../src/bench/live_line.ts";

/** Waits until `cond()` holds; throws after `timeoutMs` (a bound, not a timing check). */
export async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A live line that discards its output. */
export function silentLine(): LiveLine {
  return new LiveLine({ writeSync: (b) => b.length, isTerminal: () => false });
}
