// Results of a benchmark scenario and how they are shown: a two-column table
// for people, one JSON object per scenario (one line) for scripts.

/** A value in a result: numbers, text, or null for "not measured". */
export type ResultValue = number | string | boolean | null;

/** The outcome of one scenario. */
export interface ScenarioResult {
  scenario: string;
  /** False when a check failed (loss, order, failed logins) or the run broke off. */
  ok: boolean;
  /** What was run (counts, durations, addresses). */
  params: Record<string, ResultValue>;
  /** What was measured. */
  metrics: Record<string, ResultValue>;
  /** Why `ok` is false, and warnings worth reading. */
  errors: string[];
}

/** One JSON line per result. */
export function formatJson(r: ScenarioResult): string {
  return JSON.stringify(r);
}

/** A table of parameters, metrics and errors. */
export function formatTable(r: ScenarioResult): string {
  const rows: [string, string][] = [];
  for (const [k, v] of Object.entries(r.params)) rows.push([k, show(v)]);
  rows.push(["", ""]);
  for (const [k, v] of Object.entries(r.metrics)) rows.push([k, show(v)]);
  const width = Math.max(...rows.map(([k]) => k.length));
  const lines = [`== ${r.scenario}: ${r.ok ? "ok" : "FAILED"}`];
  for (const [k, v] of rows) lines.push(k === "" ? "" : `  ${k.padEnd(width)}  ${v}`);
  for (const e of r.errors) lines.push(`  ! ${e}`);
  return lines.join("\n");
}

function show(v: ResultValue): string {
  if (v === null) return "n/a";
  if (typeof v === "number") {
    return Number.isInteger(v) ? v.toLocaleString("en-US") : String(Math.round(v * 1000) / 1000);
  }
  return String(v);
}
