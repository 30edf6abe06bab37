// Opens and logs in many connections with a bounded number in flight, the
// way every scenario starts: records connect+login latency and failures.

import type { Endpoint } from "./addr.ts";
import { BenchConn } from "./conn.ts";
import { LatencyHistogram } from "./latency.ts";

/** One connection to open. */
export interface FleetMember {
  jid: string;
  endpoint: Endpoint;
  /** Source address (127.x.y.z), or the kernel's choice. */
  localAddress?: string;
  /** Runs before the login packet goes out (set handlers here). */
  prepare?: (conn: BenchConn) => void;
}

/** How to open a fleet. */
export interface FleetOptions {
  pwd: string;
  /** Connections being opened at once. */
  concurrency: number;
  /** Login packet id of member i. */
  loginId: (i: number) => string;
  timeoutMs?: number;
  /** Called after each connection settles (opened or failed). */
  onProgress?: (opened: number, failed: number) => void;
  /** Stops opening more (those opened stay open). */
  signal?: AbortSignal;
}

/** Connections opened (null where it failed), and how it went. */
export interface FleetResult {
  conns: (BenchConn | null)[];
  opened: number;
  failed: number;
  /** Failure reason -> count. */
  failures: Map<string, number>;
  /** Connect plus login, per connection. */
  latency: LatencyHistogram;
  elapsedMs: number;
}

/** Opens and logs in every member; never rejects (failures are counted). */
export async function openFleet(members: FleetMember[], opts: FleetOptions): Promise<FleetResult> {
  const result: FleetResult = {
    conns: new Array<BenchConn | null>(members.length).fill(null),
    opened: 0,
    failed: 0,
    failures: new Map(),
    latency: new LatencyHistogram(),
    elapsedMs: 0,
  };
  const t0 = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < members.length && !opts.signal?.aborted) {
      const i = next++;
      const m = members[i]!;
      const start = performance.now();
      let conn: BenchConn | null = null;
      try {
        conn = await BenchConn.connect({
          host: m.endpoint.host,
          port: m.endpoint.port,
          localAddress: m.localAddress,
          timeoutMs: opts.timeoutMs,
        });
        m.prepare?.(conn);
        const answer = await conn.login(m.jid, opts.pwd, opts.loginId(i), opts.timeoutMs);
        if (!answer.ok) throw new Error(`login refused: ${answer.reason}`);
        result.conns[i] = conn;
        result.opened++;
        result.latency.record(performance.now() - start);
      } catch (e) {
        conn?.destroy();
        result.failed++;
        const reason = e instanceof Error ? e.message : String(e);
        result.failures.set(reason, (result.failures.get(reason) ?? 0) + 1);
      }
      opts.onProgress?.(result.opened, result.failed);
    }
  };
  const n = Math.max(1, Math.min(opts.concurrency, members.length));
  await Promise.all(Array.from({ length: n }, worker));
  result.elapsedMs = performance.now() - t0;
  return result;
}

/** Failure counts of one or more fleets as one line ("reason x3; other x1"), or "". */
export function describeFailures(...failures: Map<string, number>[]): string {
  const merged = new Map<string, number>();
  for (const f of failures) for (const [k, n] of f) merged.set(k, (merged.get(k) ?? 0) + n);
  return [...merged].map(([reason, n]) => `${reason} x${n}`).join("; ");
}

/** Closes every open connection of a fleet. */
export function closeAll(conns: readonly (BenchConn | null)[]): void {
  for (const c of conns) c?.close();
}
