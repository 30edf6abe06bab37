// Reads a node's /metrics like a Prometheus scraper would, so tests can
// compare samples before and after an exchange.

/** One sample line: metric name, labels, value. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text format (the subset prom-client writes). */
export function parseProm(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** One scrape; `get` sums the samples of a name whose labels include `match`. */
export class Scrape {
  constructor(readonly samples: Sample[]) {}

  /** Fetches http://127.0.0.1:port/metrics; throws unless it answers 200. */
  static async of(port: number): Promise<Scrape> {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    const text = await res.text();
    if (res.status !== 200) throw new Error(`/metrics answered ${res.status}: ${text}`);
    return new Scrape(parseProm(text));
  }

  /** Throws when there is no such sample, unless `absent` says what that reads as. */
  get(name: string, match: Record<string, string> = {}, absent?: number): number {
    let sum = 0;
    let found = false;
    for (const s of this.samples) {
      if (s.name !== name) continue;
      if (!Object.entries(match).every(([k, v]) => s.labels[k] === v)) continue;
      sum += s.value;
      found = true;
    }
    if (!found && absent !== undefined) return absent;
    if (!found) throw new Error(`no sample ${name}${JSON.stringify(match)}`);
    return sum;
  }
}
