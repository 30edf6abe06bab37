// Latency percentiles of a benchmark: an HDR histogram (npm hdr-histogram-js)
// of microseconds, 3 significant digits, so recording costs no allocation
// and percentiles stay exact to 0.1% whatever the number of samples.

import * as hdr from "hdr-histogram-js";

/** Percentiles in milliseconds; all 0 when nothing was recorded. */
export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** Longest latency kept apart from the rest: one hour. */
const HIGHEST_US = 3_600_000_000;

/** Records latencies in milliseconds and reports percentiles. */
export class LatencyHistogram {
  readonly #h = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: HIGHEST_US,
    numberOfSignificantValueDigits: 3,
  });

  /** Records one latency (milliseconds, clamped to 1 us .. 1 h). */
  record(ms: number): void {
    const us = Math.round(ms * 1000);
    this.#h.recordValue(us < 1 ? 1 : us > HIGHEST_US ? HIGHEST_US : us);
  }

  get count(): number {
    return this.#h.totalCount;
  }

  /** Percentiles in milliseconds, rounded to microseconds. */
  summary(): LatencySummary {
    if (this.#h.totalCount === 0) return { count: 0, p50: 0, p90: 0, p99: 0, max: 0, mean: 0 };
    const ms = (us: number) => Math.round(us) / 1000;
    return {
      count: this.#h.totalCount,
      p50: ms(this.#h.getValueAtPercentile(50)),
      p90: ms(this.#h.getValueAtPercentile(90)),
      p99: ms(this.#h.getValueAtPercentile(99)),
      max: ms(this.#h.maxValue),
      mean: ms(this.#h.mean),
    };
  }
}
