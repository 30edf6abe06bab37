// Event-loop lag: a timer asks to run every `intervalMs` and records how much
// later than asked it ran. (node:perf_hooks' monitorEventLoopDelay reports
// nothing under Deno, so prom-client's default lag metrics read zero there.)

import type { Series } from "./histogram.ts";

/** Observes the lag in seconds into `series` until the returned function is called. */
export function sampleEventLoop(series: Series, intervalMs: number): () => void {
  let expected = performance.now() + intervalMs;
  const timer = setInterval(() => {
    const now = performance.now();
    series.observe(Math.max(0, now - expected) / 1000);
    expected = now + intervalMs;
  }, intervalMs);
  // A sampler never keeps the process alive on its own.
  Deno.unrefTimer(timer);
  return () => clearInterval(timer);
}
