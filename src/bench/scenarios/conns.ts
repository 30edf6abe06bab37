// Scenario `conns`: N idle logged-in connections. Measures the connect+login
// rate, and the server's memory per connection from its RSS (/proc) before
// and after; checks that every session answers a heartbeat.

import { formatEndpoint } from "../addr.ts";
import { newRunId, type ScenarioContext, sourceFor } from "../context.ts";
import { sleep } from "../../async.ts";
import { closeAll, describeFailures, openFleet } from "../fleet.ts";
import type { ScenarioResult } from "../report.ts";
import { portsPerSourceAddress, readPidFile, readRssKib } from "../system.ts";

/** Time the server gets to settle after the last login before RSS is read. */
const SETTLE_MS = 1000;
/** Longest wait for the heartbeat replies. */
const HEARTBEAT_WAIT_MS = 5000;

/** Runs the conns scenario against the first server. */
export async function runConns(ctx: ScenarioContext): Promise<ScenarioResult> {
  const { opts } = ctx;
  const node = opts.raddrs[0]!;
  const pid = opts.pid ?? readPidFile(opts.pidfile);
  const result: ScenarioResult = {
    scenario: "conns",
    ok: false,
    params: {
      raddr: formatEndpoint(node),
      conns: opts.conns,
      concurrency: opts.concurrency,
      source_addresses: opts.laddrs.length === 0 ? "kernel" : opts.laddrs.join(","),
      server_pid: pid,
    },
    metrics: {},
    errors: [],
  };
  const perAddress = portsPerSourceAddress();
  if (opts.laddrs.length > 0 && opts.laddrs.length * perAddress < opts.conns) {
    const needed = Math.ceil(opts.conns / perAddress);
    result.errors.push(
      `${opts.conns} connections need at least ${needed} source addresses ` +
        `(${perAddress} ports each): give more with --laddr`,
    );
    return result;
  }
  const rssBefore = pid === null ? null : readRssKib(pid);
  if (pid === null) {
    result.errors.push(`server RSS not measured: no --pid and no pid in ${opts.pidfile}`);
  } else if (rssBefore === null) {
    result.errors.push(`server RSS not measured: cannot read /proc/${pid}/status`);
  }

  const run = newRunId();
  const fleet = await openFleet(
    Array.from({ length: opts.conns }, (_, i) => ({
      jid: `${run}c${i}@${opts.domain}`,
      endpoint: node,
      localAddress: sourceFor(opts, i),
    })),
    {
      pwd: opts.pwd,
      concurrency: opts.concurrency,
      loginId: (i) => `${run}L${i}`,
      timeoutMs: opts.timeoutS * 1000,
      signal: ctx.signal,
      onProgress: (n, f) => {
        if ((n + f) % 100 === 0) ctx.progress.update(`conns login ${n}/${opts.conns} failed ${f}`);
      },
    },
  );
  const open = fleet.conns.filter((c) => c !== null);
  try {
    const login = fleet.latency.summary();
    Object.assign(result.metrics, {
      opened: fleet.opened,
      failed: fleet.failed,
      connect_login_per_s: Math.round(fleet.opened / (fleet.elapsedMs / 1000)),
      elapsed_ms: Math.round(fleet.elapsedMs),
      login_ms_p50: login.p50,
      login_ms_p99: login.p99,
      login_ms_max: login.max,
    });
    if (fleet.failed > 0) result.errors.push(`logins failed: ${describeFailures(fleet.failures)}`);

    ctx.progress.update(`conns settling ${SETTLE_MS} ms`);
    await sleep(SETTLE_MS, ctx.signal);
    const rssAfter = pid === null ? null : readRssKib(pid);
    Object.assign(result.metrics, {
      server_rss_before_mib: rssBefore === null ? null : round1(rssBefore / 1024),
      server_rss_after_mib: rssAfter === null ? null : round1(rssAfter / 1024),
      server_kib_per_conn: rssBefore === null || rssAfter === null || open.length === 0
        ? null
        : round1((rssAfter - rssBefore) / open.length),
    });

    for (const c of open) c.heartbeat();
    const deadline = performance.now() + HEARTBEAT_WAIT_MS;
    let replies = 0;
    while (performance.now() < deadline && !ctx.signal.aborted) {
      replies = open.reduce((n, c) => n + (c.heartbeats > 0 ? 1 : 0), 0);
      ctx.progress.update(`conns heartbeat replies ${replies}/${open.length}`);
      if (replies === open.length) break;
      await sleep(50, ctx.signal);
    }
    const closed = open.filter((c) => c.closed).length;
    Object.assign(result.metrics, { heartbeat_replies: replies, closed_by_server: closed });
    if (replies < open.length) {
      result.errors.push(`${open.length - replies} sessions did not answer a heartbeat`);
    }
    if (closed > 0) result.errors.push(`the server closed ${closed} idle sessions`);
    if (ctx.signal.aborted) result.errors.push("interrupted");
    result.ok = fleet.failed === 0 && replies === open.length && closed === 0 &&
      !ctx.signal.aborted;
    return result;
  } finally {
    closeAll(open);
  }
}

function round1(n: number): number {
  return Math.round(n * 10) / 10;
}
