// `sara makeconn`, after the seed's tool: opens and logs in N connections,
// keeps them alive with heartbeats, optionally sends each a message to a
// random peer every few seconds, and shows SEND RECV SEND/s RECV/s live.

import { type Endpoint, formatEndpoint } from "./addr.ts";
import type { BenchConn } from "./conn.ts";
import { newRunId } from "./context.ts";
import { closeAll, describeFailures, openFleet } from "./fleet.ts";
import { type LiveLine, RateMeter } from "./live_line.ts";
import { ackPacket, chatPacket, padding } from "./packets.ts";
import { intField, stringField } from "./scan.ts";

/** What makeconn does. */
export interface MakeconnOptions {
  raddr: Endpoint;
  /** Source addresses used in turn; [] lets the kernel choose. */
  laddrs: string[];
  total: number;
  heartbeatS: number;
  /** Seconds between two messages of one connection. */
  messageGapS: number;
  /** Message size in KiB; 0 sends no messages. */
  messageSizeKib: number;
  /** How long to hold the connections once open. */
  durationS: number;
  concurrency: number;
  pwd: string;
  domain: string;
  timeoutS: number;
}

/** Counts of a makeconn run. */
export interface MakeconnSummary {
  opened: number;
  failed: number;
  sent: number;
  received: number;
  closedByServer: number;
}

/** Timer period; heartbeats and messages are spread over its ticks. */
const TICK_MS = 100;
/** Period of the live line, as the seed's tool had it. */
const SHOW_MS = 2000;

/** Runs makeconn; `out` shows progress and the live line, `signal` ends the hold early. */
export async function runMakeconn(
  opts: MakeconnOptions,
  out: LiveLine,
  signal: AbortSignal,
): Promise<MakeconnSummary> {
  const run = newRunId();
  const sources = opts.laddrs.length === 0 ? "kernel's choice" : opts.laddrs.join(",");
  out.print(
    `makeconn: ${opts.total} connections to ${formatEndpoint(opts.raddr)} from ${sources}, ` +
      `heartbeat ${opts.heartbeatS}s` +
      (opts.messageSizeKib > 0
        ? `, a ${opts.messageSizeKib} KiB message every ${opts.messageGapS}s per connection`
        : ""),
  );
  const fleet = await openFleet(
    Array.from({ length: opts.total }, (_, i) => ({
      jid: `${run}u${i}@${opts.domain}`,
      endpoint: opts.raddr,
      localAddress: opts.laddrs.length === 0 ? undefined : opts.laddrs[i % opts.laddrs.length],
    })),
    {
      pwd: opts.pwd,
      concurrency: opts.concurrency,
      loginId: (i) => `${run}L${i}`,
      timeoutMs: opts.timeoutS * 1000,
      signal,
      onProgress: (n, f) => {
        if ((n + f) % 100 === 0) out.update(`connecting ${n + f}/${opts.total} failed ${f}`);
      },
    },
  );
  const conns = fleet.conns.filter((c): c is BenchConn => c !== null);
  const secs = fleet.elapsedMs / 1000;
  out.print(
    `total: ${opts.total} finished, fail: ${fleet.failed}, time: ${
      Math.round(fleet.elapsedMs)
    } ms` +
      ` (${Math.round(fleet.opened / secs)} conns/s), heartbeat: ${opts.heartbeatS}s`,
  );
  if (fleet.failed > 0) out.print(`failures: ${describeFailures(fleet.failures)}`);

  const summary: MakeconnSummary = {
    opened: fleet.opened,
    failed: fleet.failed,
    sent: 0,
    received: 0,
    closedByServer: 0,
  };
  let stopping = false;
  for (const c of conns) {
    c.onPacket = (p) => {
      const type = intField(p, "type");
      // Server acks (type 3) and notices are not messages.
      if (type === 3 || type === 4) return;
      summary.received++;
      if (intField(p, "ack") === 1) {
        const id = stringField(p, "id");
        if (id !== undefined) c.send(ackPacket(id, c.jid));
      }
    };
    c.onClose = () => {
      if (!stopping) summary.closedByServer++;
    };
  }

  const content = padding(opts.messageSizeKib * 1024);
  const hbSlots = Math.max(1, Math.round((opts.heartbeatS * 1000) / TICK_MS));
  const msgSlots = Math.max(1, Math.round((opts.messageGapS * 1000) / TICK_MS));
  const showEvery = SHOW_MS / TICK_MS;
  const sendMeter = new RateMeter();
  const recvMeter = new RateMeter();
  let tick = 0;
  let msgId = 0;
  if (conns.length > 0) out.print("SEND\tRECV\tSEND/s\tRECV/s");
  await new Promise<void>((resolve) => {
    const end = performance.now() + opts.durationS * 1000;
    const timer = setInterval(() => {
      tick++;
      // Each tick serves one slot of connections, spreading the load evenly.
      for (let i = tick % hbSlots; i < conns.length; i += hbSlots) conns[i]!.heartbeat();
      if (content !== "" && conns.length > 1) {
        for (let i = tick % msgSlots; i < conns.length; i += msgSlots) {
          const from = conns[i]!;
          const to =
            conns[(i + 1 + Math.floor(Math.random() * (conns.length - 1))) % conns.length]!;
          if (from.closed || to.closed) continue;
          from.send(chatPacket(`${run}.${msgId++}`, from.jid, to.jid, content));
          summary.sent++;
        }
      }
      if (tick % showEvery === 0) {
        const now = performance.now();
        out.update(
          `${summary.sent}\t${summary.received}\t${sendMeter.rate(summary.sent, now)}\t` +
            `${recvMeter.rate(summary.received, now)}`,
        );
      }
      if (performance.now() >= end || signal.aborted || conns.every((c) => c.closed)) {
        clearInterval(timer);
        resolve();
      }
    }, TICK_MS);
  });
  stopping = true;
  out.print(
    `sent ${summary.sent}, received ${summary.received}, ` +
      `closed by the server ${summary.closedByServer}`,
  );
  closeAll(conns);
  return summary;
}
