// Runs the scenarios `sara bench` was asked for, in order, and prints each
// result as it completes: a table, or one JSON line with --json.

import type { ScenarioContext } from "./context.ts";
import { formatJson, formatTable, type ScenarioResult } from "./report.ts";
import { runConns } from "./scenarios/conns.ts";
import { runGroup } from "./scenarios/group.ts";
import { runOffline } from "./scenarios/offline.ts";
import { runP2p } from "./scenarios/p2p.ts";

/** Scenario names, in the order `all` runs them. */
export const SCENARIOS = ["conns", "p2p", "group", "offline", "cluster"] as const;
/** A scenario name. */
export type ScenarioName = typeof SCENARIOS[number];

const RUNNERS: Record<ScenarioName, (ctx: ScenarioContext) => Promise<ScenarioResult>> = {
  conns: runConns,
  p2p: (ctx) => runP2p(ctx, false),
  group: runGroup,
  offline: runOffline,
  cluster: (ctx) => runP2p(ctx, true),
};

/**
 * Runs the scenarios; `print` gets each formatted result. Resolves true when
 * every scenario passed its checks.
 */
export async function runScenarios(
  names: readonly ScenarioName[],
  ctx: ScenarioContext,
  print: (text: string) => void,
): Promise<boolean> {
  let ok = true;
  for (const name of names) {
    if (ctx.signal.aborted) break;
    const result = await RUNNERS[name](ctx);
    ctx.progress.done();
    print(ctx.opts.json ? formatJson(result) : formatTable(result) + "\n");
    ok &&= result.ok;
  }
  return ok && !ctx.signal.aborted;
}
