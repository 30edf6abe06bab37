// Counters and gauges whose values live elsewhere (plain numbers the hot path
// bumps, or state read on demand) and are copied into prom-client only when
// the registry is scraped.

import { Counter, Gauge, type Registry } from "prom-client";

/** The current value of each series: its labels and its number. */
export type Rows = Iterable<readonly [Record<string, string>, number]>;

/** What a scraped family is: name, help, label names, and how to read it. */
export interface ScrapedFamily {
  name: string;
  help: string;
  labelNames?: readonly string[];
  rows: () => Rows;
}

/** A counter whose totals `rows` reads at scrape time (they only ever grow). */
export function scrapedCounter(registry: Registry, f: ScrapedFamily): void {
  const rows = f.rows;
  new Counter({
    name: f.name,
    help: f.help,
    labelNames: f.labelNames ?? [],
    registers: [registry],
    collect() {
      // Totals are kept outside: the counter is set to them, not added to.
      this.reset();
      for (const [labels, value] of rows()) this.inc(labels, value);
    },
  });
}

/** A gauge whose values `rows` reads at scrape time; series it no longer lists disappear. */
export function scrapedGauge(registry: Registry, f: ScrapedFamily): void {
  const rows = f.rows;
  new Gauge({
    name: f.name,
    help: f.help,
    labelNames: f.labelNames ?? [],
    registers: [registry],
    collect() {
      this.reset();
      for (const [labels, value] of rows()) this.set(labels, value);
    },
  });
}

/** Rows of one label over parallel arrays of label values and counts. */
export function* labelled(
  label: string,
  values: readonly string[],
  counts: ArrayLike<number>,
): Generator<readonly [Record<string, string>, number]> {
  for (let i = 0; i < values.length; i++) yield [{ [label]: values[i]! }, counts[i]!];
}

/** The single row of an unlabelled family. */
export function single(value: number): Rows {
  return [[{}, value]];
}
