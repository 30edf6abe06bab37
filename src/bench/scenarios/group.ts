// Scenario `group`: one sender writes into groups of G members (itself one
// of them) with a window per group; every other member must get each
// message once and in order. The member lists come from a callback stub the
// scenario runs, which the server must have as its `callback`.

import { formatEndpoint } from "../addr.ts";
import { type CallbackStub, startCallbackStub } from "../callback_stub.ts";
import type { BenchConn } from "../conn.ts";
import { newRunId, type ScenarioContext, sourceFor } from "../context.ts";
import { closeAll, describeFailures, openFleet } from "../fleet.ts";
import { Ledger } from "../ledger.ts";
import { groupPacket } from "../packets.ts";
import type { ScenarioResult } from "../report.ts";
import { describeTraffic, type Flow, type Recipient, runTraffic } from "../traffic.ts";

/** Runs the group scenario against the first server. */
export async function runGroup(ctx: ScenarioContext): Promise<ScenarioResult> {
  const { opts } = ctx;
  const node = opts.raddrs[0]!;
  const result: ScenarioResult = {
    scenario: "group",
    ok: false,
    params: {
      raddr: formatEndpoint(node),
      groups: opts.groups,
      members: opts.members,
      window: opts.window,
      size: opts.size,
      warmup_s: opts.warmupS,
      duration_s: opts.durationS,
      callback: null,
    },
    metrics: {},
    errors: [],
  };
  const run = newRunId();
  const senderName = `${run}s`;
  const directory = new Map<string, string[]>();
  const memberNames: { name: string; group: number }[] = [];
  for (let g = 0; g < opts.groups; g++) {
    const users = [senderName];
    for (let m = 1; m < opts.members; m++) {
      const name = `${run}g${g}m${m}`;
      users.push(name);
      memberNames.push({ name, group: g });
    }
    directory.set(gid(run, g), users);
  }

  let stub: CallbackStub;
  try {
    stub = await startCallbackStub(opts.callbackPort, directory);
  } catch (e) {
    result.errors.push(`cannot start the callback stub on port ${opts.callbackPort}: ${e}`);
    return result;
  }
  result.params.callback = stub.url;
  ctx.progress.print(`group: member lists served at ${stub.url} (the server's "callback")`);

  const fleetOpts = (what: string, total: number) => ({
    pwd: opts.pwd,
    concurrency: opts.concurrency,
    loginId: (i: number) => `${run}${what}${i}`,
    timeoutMs: opts.timeoutS * 1000,
    signal: ctx.signal,
    onProgress: (n: number, f: number) =>
      ctx.progress.update(`group login ${what} ${n}/${total} failed ${f}`),
  });
  const members = await openFleet(
    memberNames.map((m, i) => ({
      jid: `${m.name}@${opts.domain}`,
      endpoint: node,
      localAddress: sourceFor(opts, i),
    })),
    fleetOpts("members", memberNames.length),
  );
  const sender = await openFleet(
    [{ jid: `${senderName}@${opts.domain}`, endpoint: node, localAddress: sourceFor(opts, 0) }],
    fleetOpts("sender", 1),
  );
  const all: (BenchConn | null)[] = [...members.conns, ...sender.conns];
  try {
    const failures = describeFailures(members.failures, sender.failures);
    if (failures !== "") {
      result.errors.push(`logins failed: ${failures}`);
      return result;
    }
    const ledger = new Ledger();
    const from = `${senderName}@${opts.domain}`;
    const flows: Flow[] = [];
    for (let g = 0; g < opts.groups; g++) {
      const id = gid(run, g);
      flows.push({
        sender: sender.conns[0]!,
        stream: ledger.addStream(),
        packet: (msgId, content) => groupPacket(msgId, from, id, content),
      });
    }
    const recipients: Recipient[] = memberNames.map((m, i) => ({
      conn: members.conns[i]!,
      receiver: ledger.addReceiver(m.group),
    }));
    const t = await runTraffic(ledger, flows, recipients, {
      label: "group",
      window: opts.window,
      size: opts.size,
      warmupMs: opts.warmupS * 1000,
      durationMs: opts.durationS * 1000,
      drainMs: opts.drainS * 1000,
      progress: ctx.progress,
      signal: ctx.signal,
    });
    const d = describeTraffic(t);
    Object.assign(result.metrics, d.metrics, { callback_requests: stub.groupRequests });
    result.errors.push(...d.errors);
    if (t.notices["group_notfound"] && stub.groupRequests === 0) {
      result.errors.push(`the server never asked the stub: set "callback": "${stub.url}"`);
    }
    result.ok = t.drained && t.ledger.lost === 0 && t.ledger.reordered === 0 &&
      t.closed === 0 && t.rejected === 0;
    return result;
  } finally {
    closeAll(all);
    await stub.close();
  }
}

function gid(run: string, g: number): string {
  return `${run}g${g}`;
}
