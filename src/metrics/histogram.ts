// A Prometheus histogram kept in plain arrays, so that an observation on a
// hot path allocates nothing (prom-client's own Histogram builds a label hash
// and objects on every observe); prom-client's registry renders it on scrape.

import type { Metric, Registry } from "prom-client";

/** One sample line as prom-client's registry renders it. */
interface Sample {
  metricName: string;
  labels: Record<string, string>;
  value: number;
}

/** A family in the shape of prom-client's `metric.get()`. */
interface Family {
  name: string;
  help: string;
  type: "histogram";
  aggregator: "sum";
  values: Sample[];
}

/** One labelled series: observe() is a short loop and three increments. */
export class Series {
  /** Observations per bucket (not cumulative); the last slot counts those above every bound. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(readonly bounds: readonly number[], readonly labels: Record<string, string>) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && value > b[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

/** A histogram family; its series are made once (by whoever observes) and kept. */
export class PlainHistogram {
  readonly type = "histogram";
  readonly aggregator = "sum";
  readonly #series: Series[] = [];

  /** Registers the family on `registry` under `name`. */
  constructor(
    readonly name: string,
    readonly help: string,
    readonly bounds: readonly number[],
    registry: Registry,
  ) {
    // The registry renders any object with the name, help, type and get()
    // of its own metrics; its types list only its own classes.
    registry.registerMetric(this as unknown as Metric);
  }

  /** A new series with these labels: call once per label set and keep it. */
  series(labels: Record<string, string> = {}): Series {
    const s = new Series(this.bounds, labels);
    this.#series.push(s);
    return s;
  }

  /** The family as prom-client's Histogram.get() describes one (cumulative buckets). */
  get(): Promise<Family> {
    const values: Sample[] = [];
    for (const s of this.#series) {
      let acc = 0;
      for (let i = 0; i <= this.bounds.length; i++) {
        acc += s.counts[i]!;
        const le = i < this.bounds.length ? String(this.bounds[i]) : "+Inf";
        values.push({ metricName: `${this.name}_bucket`, labels: { ...s.labels, le }, value: acc });
      }
      values.push({ metricName: `${this.name}_sum`, labels: s.labels, value: s.sum });
      values.push({ metricName: `${this.name}_count`, labels: s.labels, value: s.count });
    }
    const { name, help, type, aggregator } = this;
    return Promise.resolve({ name, help, type, aggregator, values });
  }
}
