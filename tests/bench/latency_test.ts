// Latency percentiles on known inputs.

import assert from "node:assert/strict";
import { LatencyHistogram } from "../../src/bench/latency.ts";

/** HDR with 3 significant digits: within 0.1%. */
function near(actual: number, expected: number): void {
  assert.ok(Math.abs(actual - expected) <= expected * 0.001, `${actual} is not ~${expected}`);
}

Deno.test("percentiles of 1..1000 ms are 500, 900, 990 and 1000 ms", () => {
  const h = new LatencyHistogram();
  for (let ms = 1; ms <= 1000; ms++) h.record(ms);
  const s = h.summary();
  assert.equal(s.count, 1000);
  near(s.p50, 500);
  near(s.p90, 900);
  near(s.p99, 990);
  near(s.max, 1000);
  near(s.mean, 500.5);
});

Deno.test("sub-millisecond latencies keep microsecond resolution", () => {
  const h = new LatencyHistogram();
  for (let i = 0; i < 99; i++) h.record(0.25);
  h.record(7.5);
  const s = h.summary();
  near(s.p50, 0.25);
  near(s.max, 7.5);
});

Deno.test("an empty histogram summarises to zeros", () => {
  assert.deepEqual(new LatencyHistogram().summary(), {
    count: 0,
    p50: 0,
    p90: 0,
    p99: 0,
    max: 0,
    mean: 0,
  });
});

Deno.test("latencies out of range are clamped, not dropped", () => {
  const h = new LatencyHistogram();
  h.record(0);
  h.record(1e10);
  assert.equal(h.summary().count, 2);
});
