// Scenarios `p2p` and `cluster`: sender-recipient pairs, each sender keeping
// a window of messages outstanding; `cluster` puts every sender on one node
// and its recipient on the other, so every message crosses nodes. With
// `devices` above 1 every recipient is online with that many sessions
// (server with multi_login), and each gets every message.

import { formatEndpoint } from "../addr.ts";
import type { BenchConn } from "../conn.ts";
import { newRunId, type ScenarioContext, sourceFor } from "../context.ts";
import { closeAll, describeFailures, type FleetMember, openFleet } from "../fleet.ts";
import { Ledger } from "../ledger.ts";
import { chatPacket } from "../packets.ts";
import type { ScenarioResult } from "../report.ts";
import { describeTraffic, type Flow, type Recipient, runTraffic } from "../traffic.ts";

/** Runs `p2p` (one server) or `cluster` (pairs split over the first two servers). */
export async function runP2p(ctx: ScenarioContext, cluster: boolean): Promise<ScenarioResult> {
  const { opts } = ctx;
  const scenario = cluster ? "cluster" : "p2p";
  const nodes = cluster ? opts.raddrs.slice(0, 2) : opts.raddrs.slice(0, 1);
  const result: ScenarioResult = {
    scenario,
    ok: false,
    params: {
      raddr: nodes.map(formatEndpoint).join(","),
      pairs: opts.pairs,
      devices: opts.devices,
      window: opts.window,
      size: opts.size,
      warmup_s: opts.warmupS,
      duration_s: opts.durationS,
    },
    metrics: {},
    errors: [],
  };
  if (cluster && nodes.length < 2) {
    result.errors.push("cluster needs two servers: --raddr host:port,host:port");
    return result;
  }
  const run = newRunId();
  const jid = (role: string, i: number) => `${run}${role}${i}@${opts.domain}`;
  const member = (role: string, i: number, node: number, resource = ""): FleetMember => ({
    jid: jid(role, i) + resource,
    endpoint: nodes[node % nodes.length]!,
    localAddress: sourceFor(opts, i),
  });
  const fleetOpts = (what: string) => ({
    pwd: opts.pwd,
    concurrency: opts.concurrency,
    loginId: (i: number) => `${run}${what}${i}`,
    timeoutMs: opts.timeoutS * 1000,
    signal: ctx.signal,
    onProgress: (n: number, f: number) =>
      ctx.progress.update(`${scenario} login ${what} ${n} failed ${f}`),
  });
  // Recipients first, so that no message finds its recipient offline.
  const devices = opts.devices;
  const resource = (k: number) => devices === 1 ? "" : `/d${k}`;
  // Device k of recipient i is conns[i * devices + k].
  const recipients = await openFleet(
    Array.from(
      { length: opts.pairs * devices },
      (_, j) =>
        member("r", Math.floor(j / devices), Math.floor(j / devices) + 1, resource(j % devices)),
    ),
    fleetOpts("recipients"),
  );
  const senders = await openFleet(
    Array.from({ length: opts.pairs }, (_, i) => member("s", i, i)),
    fleetOpts("senders"),
  );
  const all: (BenchConn | null)[] = [...recipients.conns, ...senders.conns];
  try {
    result.metrics.login_ms_p50 = senders.latency.summary().p50;
    if (recipients.failed + senders.failed > 0) {
      result.errors.push(
        `logins failed: ${describeFailures(recipients.failures, senders.failures)}`,
      );
      return result;
    }
    const ledger = new Ledger();
    const flows: Flow[] = [];
    const rcpts: Recipient[] = [];
    for (let i = 0; i < opts.pairs; i++) {
      const from = jid("s", i);
      const to = jid("r", i);
      const stream = ledger.addStream();
      flows.push({
        sender: senders.conns[i]!,
        stream,
        packet: (id, content) => chatPacket(id, from, to, content),
      });
      for (let k = 0; k < devices; k++) {
        rcpts.push({
          conn: recipients.conns[i * devices + k]!,
          receiver: ledger.addReceiver(stream),
        });
      }
    }
    const t = await runTraffic(ledger, flows, rcpts, {
      label: scenario,
      window: opts.window,
      size: opts.size,
      warmupMs: opts.warmupS * 1000,
      durationMs: opts.durationS * 1000,
      drainMs: opts.drainS * 1000,
      progress: ctx.progress,
      signal: ctx.signal,
    });
    const d = describeTraffic(t);
    Object.assign(result.metrics, d.metrics);
    result.errors.push(...d.errors);
    result.ok = t.drained && t.ledger.lost === 0 && t.ledger.reordered === 0 && t.closed === 0;
    return result;
  } finally {
    closeAll(all);
  }
}
