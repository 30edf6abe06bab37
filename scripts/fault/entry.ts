// The entry point of a check script that starts processes of its own
// (fault_check, failover, scale_cluster): option errors and help, then the run
// bounded in time. On a signal or when the watchdog fires, every process it
// owns is SIGKILLed and, unless kept, the dirs they wrote in are removed, so no
// process outlives the script however it ends.

import { errMsg } from "../../src/log.ts";

/** A process an emergency exit must SIGKILL, and the dirs it wrote in. */
export interface Owned {
  readonly dirs?: readonly string[];
  killNow(): void;
}

export interface Entry<O extends object> {
  /** Prefix of every line the entry prints. */
  name: string;
  help: string;
  /** The options, or a text to print and exit 0 with (help); throws on bad options. */
  parse(args: string[]): O | string;
  /** Filled by the run as it starts processes. */
  owned: Owned[];
  /** Whether an emergency exit leaves the owned dirs in place. */
  keep(opts: O): boolean;
  /** How long the run may take before it counts as hung. */
  limitMs(opts: O): number;
  /** The run; its result is the exit code. */
  run(opts: O): Promise<number>;
}

/** Parses `Deno.args`, runs `entry` bounded in time and exits with its code. */
export async function runEntry<O extends object>(entry: Entry<O>): Promise<never> {
  let parsed: O | string;
  try {
    parsed = entry.parse(Deno.args);
  } catch (err) {
    console.error(`${entry.name}: ${errMsg(err)}\n\n${entry.help}`);
    Deno.exit(2);
  }
  if (typeof parsed === "string") {
    console.log(parsed);
    Deno.exit(0);
  }
  const opts = parsed;
  const keep = entry.keep(opts);
  const abort = (why: string) => {
    console.error(`${entry.name}: ${why}`);
    for (const o of entry.owned) o.killNow();
    for (const dir of keep ? [] : entry.owned.flatMap((o) => o.dirs ?? [])) {
      try {
        Deno.removeSync(dir, { recursive: true });
      } catch {
        // Removed already, or a dying process still wrote in it: the OS temp dir keeps it.
      }
    }
    Deno.exit(2);
  };
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(sig, () => abort(`${sig}: stopped`));
  }
  // Bounded in time whatever happens: a hung run is a failed run.
  const limit = entry.limitMs(opts);
  const watchdog = setTimeout(() => abort(`no result within ${limit / 1000} s`), limit);
  let code: number;
  try {
    code = await entry.run(opts);
  } catch (err) {
    console.error(`${entry.name}: ${errMsg(err)}`);
    code = 2;
  }
  clearTimeout(watchdog);
  Deno.exit(code);
}
