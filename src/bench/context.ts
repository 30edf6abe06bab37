// What every scenario is handed: the options, the live line, the abort
// signal, and helpers for unique jids and source addresses.

import type { LiveLine } from "./live_line.ts";
import type { BenchOptions } from "./options.ts";

/** Shared by the scenarios of one `sara bench` run. */
export interface ScenarioContext {
  opts: BenchOptions;
  /** Progress on stderr. */
  progress: LiveLine;
  /** Set on Ctrl-C: scenarios wind down and report what they have. */
  signal: AbortSignal;
}

/**
 * A short random prefix for the jids, group ids and login ids of one
 * scenario run, so that runs never meet each other's stored messages or
 * cached groups on the server.
 */
export function newRunId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(5));
  return "b" + Array.from(bytes, (b) => (b % 36).toString(36)).join("");
}

/** Source address of the i-th connection (the options' list, in turn). */
export function sourceFor(opts: BenchOptions, i: number): string | undefined {
  return opts.laddrs.length === 0 ? undefined : opts.laddrs[i % opts.laddrs.length];
}
