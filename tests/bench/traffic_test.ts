// The message pump end to end against a fake server: it sees every message
// through, and it notices a message the server acked but dropped, or
// delivered after its successor.

import assert from "node:assert/strict";
import { BenchConn } from "../../src/bench/conn.ts";
import { Ledger } from "../../src/bench/ledger.ts";
import { chatPacket } from "../../src/bench/packets.ts";
import {
  type Flow,
  type Recipient,
  runTraffic,
  type TrafficResult,
} from "../../src/bench/traffic.ts";
import { FakeServer, type FakeServerOptions } from "./fake_server.ts";
import { silentLine } from "./helpers.ts";

async function login(port: number, jid: string): Promise<BenchConn> {
  const conn = await BenchConn.connect({ host: "127.0.0.1", port });
  await conn.login(jid, "pw", `L-${jid}`);
  return conn;
}

/** Two pairs through a fake server for a short period. */
async function pump(
  opts: FakeServerOptions,
  drainMs: number,
  ledger = new Ledger(),
): Promise<TrafficResult> {
  const server = new FakeServer(opts);
  const flows: Flow[] = [];
  const recipients: Recipient[] = [];
  const conns: BenchConn[] = [];
  for (let i = 0; i < 2; i++) {
    const r = await login(server.port, `r${i}@d`);
    const s = await login(server.port, `s${i}@d`);
    conns.push(r, s);
    const stream = ledger.addStream();
    flows.push({ sender: s, stream, packet: (id, c) => chatPacket(id, s.jid, r.jid, c) });
    recipients.push({ conn: r, receiver: ledger.addReceiver(stream) });
  }
  const result = await runTraffic(ledger, flows, recipients, {
    label: "test",
    window: 4,
    size: 16,
    warmupMs: 0,
    durationMs: 300,
    drainMs,
    progress: silentLine(),
  });
  for (const c of conns) c.close();
  await server.close();
  return result;
}

Deno.test("runTraffic() sees every acked message through, in order", async () => {
  const t = await pump({}, 5000);
  assert.ok(t.ledger.sent > 0);
  assert.deepEqual(
    [t.drained, t.ledger.acked, t.ledger.received, t.ledger.lost, t.ledger.reordered],
    [true, t.ledger.sent, t.ledger.sent, 0, 0],
  );
  assert.equal(t.latency.count, t.ledger.received);
});

Deno.test("runTraffic() counts a message the server acked but dropped as lost", async () => {
  const t = await pump({ drop: new Set(["0.3"]) }, 200);
  assert.deepEqual([t.drained, t.ledger.lost, t.ledger.reordered], [false, 1, 0]);
});

Deno.test("runTraffic() counts a message delivered after its successor as reordered", async () => {
  const t = await pump({ holdBack: new Set(["1.2"]) }, 5000);
  assert.deepEqual([t.drained, t.ledger.lost, t.ledger.reordered], [true, 0, 1]);
});

Deno.test("runTraffic() counts a refused message as rejected, not lost, and goes on", async () => {
  const ledger = new Ledger();
  const t = await pump({ notice: new Map([["0.2", "rate_limited"]]) }, 5000, ledger);
  assert.deepEqual([t.drained, t.rejected, t.notices, t.ledger.lost], [true, 1, {
    rate_limited: 1,
  }, 0]);
  assert.equal(t.ledger.acked, t.ledger.sent - 1);
  // Stream 0 went on sending after its pause (stalled, it would stop at about 6;
  // how far past that it gets in the 200 ms left depends on the machine's load).
  assert.ok(!Number.isNaN(ledger.sentAt(0, 20)));
});

Deno.test("runTraffic() writes off a flow stalled by a refusal naming no message", async () => {
  const ledger = new Ledger();
  const t = await pump({ anonymousNotice: new Set(["0.2"]) }, 5000, ledger);
  assert.deepEqual([t.drained, t.rejected, t.ledger.lost], [true, 0, 0]);
  assert.ok(t.writtenOff > 0);
  assert.equal(t.ledger.acked, t.ledger.sent - 1);
  assert.ok(!Number.isNaN(ledger.sentAt(0, 20)));
});
