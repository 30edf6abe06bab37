// The failover check's short form (scripts/failover.ts; docs/cluster.md, "Failover
// check"): a real Redis Cluster of 3 masters and 3 replicas, two real sara nodes,
// a small cross-node load with server acks, one master SIGKILLed under it and
// its replica promoted. Fails on any acked message lost, reordered or late.

import assert from "node:assert/strict";
import { spawnTied } from "../../scripts/fault/spawn.ts";
import { releasePort, reservePort } from "../helpers/ports.ts";

const SCRIPT = new URL("../../scripts/failover.ts", import.meta.url).pathname;
// 6 Redis servers and their cluster bus ports, 2 nodes; the rest is slack for
// ports some other program binds meanwhile (the script skips those).
const PORTS = 24;

Deno.test("a Redis Cluster master SIGKILLed under load: no acked message lost, reordered or late (scripts/failover.ts, short form)", async () => {
  const ports = Array.from({ length: PORTS }, () => reservePort());
  try {
    // The script dies with this process (spawnTied), and so does everything
    // it starts; its own watchdog bounds the run.
    const out = await spawnTied(Deno.execPath(), [
      "run",
      "-A",
      SCRIPT,
      ...[
        ["--runs", "1"],
        ["--users", "20"],
        ["--rate", "10"],
        ["--duration", "8"],
        ["--fault-at", "3"],
        ["--drain", "15"],
        ["--ports", ports.join(",")],
      ].flat(),
      "--quiet",
    ]).output();
    const text = new TextDecoder().decode(out.stdout).trim();
    const why = `${text}\n${new TextDecoder().decode(out.stderr)}`;
    let r;
    try {
      r = JSON.parse(text.split("\n").at(-1)!);
    } catch {
      assert.fail(`no JSON line from the script:\n${why}`);
    }
    assert.ok(r.acked > 0, why);
    assert.deepEqual(
      { lost: r.lost, reordered: r.reordered, late: r.late, exit: out.code },
      { lost: 0, reordered: 0, late: 0, exit: 0 },
      why,
    );
  } finally {
    for (const p of ports) releasePort(p);
  }
});
