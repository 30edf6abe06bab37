// Scenario results as a table and as JSON.

import assert from "node:assert/strict";
import { formatJson, formatTable, type ScenarioResult } from "../../src/bench/report.ts";

const result: ScenarioResult = {
  scenario: "p2p",
  ok: false,
  params: { pairs: 20 },
  metrics: { delivered_per_s: 101222, latency_ms_p50: 1.7764, notices: null },
  errors: ["1 acked messages never received"],
};

Deno.test("formatTable() shows the verdict, aligned rows and errors", () => {
  assert.equal(
    formatTable(result),
    [
      "== p2p: FAILED",
      "  pairs            20",
      "",
      "  delivered_per_s  101,222",
      "  latency_ms_p50   1.776",
      "  notices          n/a",
      "  ! 1 acked messages never received",
    ].join("\n"),
  );
});

Deno.test("formatJson() is one line that parses back to the result", () => {
  const line = formatJson(result);
  assert.ok(!line.includes("\n"));
  assert.deepEqual(JSON.parse(line), result);
});
