#!/usr/bin/env node
// An independent load client for emsg servers: Node.js, no code shared with
// sara, built only from the wire protocol (docs/protocol.md): JSON
// packets ended by 0x01 over TCP, login type 0, chat type 1 with `ack:1`, the
// server ack type 3 naming the message id, the recipient's ack type 3 to
// "server_ack". Pairs of sender and recipient; each sender keeps `window`
// messages outstanding (sent, not yet server-acked). Senders may log in on one
// server and recipients on another, so every message crosses nodes.
//
// Prints one JSON object: delivered msgs/s in the measured period, latency
// (send to delivery at the recipient) percentiles of the messages sent in that
// period, and lost (server-acked, never delivered after the drain), reordered
// and duplicate deliveries. Bounded: it ends after warm-up + duration + drain
// (plus login time), whatever the server does.

import net from "node:net";
import { readFileSync } from "node:fs";
import process from "node:process";

const HELP = `usage: node scripts/loadclient/loadclient.mjs [options]
  --server HOST:PORT       senders and recipients log in here (default 127.0.0.1:4222)
  --senders HOST:PORT      senders log in here (overrides --server)
  --recipients HOST:PORT   recipients log in here (overrides --server): cross-node
  --pairs N                sender/recipient pairs (default 100, at most 5000)
  --window N               messages outstanding per sender (default 10, at most 1000)
  --size N                 padding bytes per message payload (default 64, at most 65536)
  --warmup S               seconds sent before measuring (default 3)
  --duration S             measured seconds (default 15, at most 600)
  --drain S                at most this long to wait for outstanding messages (default 5)
  --domain D               jid domain (default example.com)
  --pwd P                  login pwd (default "x")
  --pids P1,P2             report CPU seconds of these processes over the measured period
`;

const opts = parseArgs(process.argv.slice(2));
const END = 0x01;
const HEARTBEAT = 0x02;
const run = `lc${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
const pad = "a".repeat(opts.size);

function parseArgs(argv) {
  const o = {
    server: "127.0.0.1:4222",
    senders: "",
    recipients: "",
    pairs: 100,
    window: 10,
    size: 64,
    warmup: 3,
    duration: 15,
    drain: 5,
    domain: "example.com",
    pwd: "x",
    pids: "",
  };
  const limits = { pairs: 5000, window: 1000, size: 65536, warmup: 600, duration: 600, drain: 120 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "-h" || a === "--help") {
      process.stdout.write(HELP);
      process.exit(0);
    }
    const key = a.startsWith("--") ? a.slice(2) : "";
    if (!(key in o) || i + 1 >= argv.length) fail(`unknown option or missing value: ${a}`);
    const v = argv[++i];
    if (typeof o[key] === "number") {
      const n = Number(v);
      if (!Number.isFinite(n) || n < 0 || n > limits[key]) fail(`--${key}: 0..${limits[key]}`);
      o[key] = n;
    } else o[key] = v;
  }
  if (o.pairs < 1 || o.window < 1 || o.duration <= 0) fail("--pairs, --window, --duration > 0");
  o.senders ||= o.server;
  o.recipients ||= o.server;
  return o;
}

function fail(msg) {
  process.stderr.write(`loadclient: ${msg}\n${HELP}`);
  process.exit(2);
}

function endpoint(s) {
  const i = s.lastIndexOf(":");
  const host = s.slice(0, i).replace(/^\[|\]$/g, "");
  const port = Number(s.slice(i + 1));
  if (!host || !(port > 0 && port < 65536)) fail(`not host:port: ${s}`);
  if (!/^(127\.|::1$|localhost$)/.test(host)) fail(`loopback only: ${s}`);
  return { host, port };
}

/** One TCP connection speaking the framing: packets in, packets out (one write per turn). */
class Conn {
  constructor(addr, jid, onPacket) {
    this.jid = jid;
    this.onPacket = onPacket;
    this.closed = false;
    this.out = [];
    this.tail = null;
    this.sock = net.createConnection(addr);
    this.sock.setNoDelay(true);
    this.sock.on("data", (b) => this.#data(b));
    this.sock.on("error", () => {});
    this.sock.on("close", () => (this.closed = true));
  }

  send(text) {
    if (this.out.length === 0) queueMicrotask(() => this.#flush());
    this.out.push(text);
  }

  #flush() {
    if (this.closed) return void (this.out = []);
    this.sock.write(this.out.join("\x01") + "\x01");
    this.out = [];
  }

  #data(b) {
    let start = 0;
    if (this.tail) {
      b = Buffer.concat([this.tail, b]);
      this.tail = null;
    }
    for (;;) {
      const i = b.indexOf(END, start);
      if (i === -1) break;
      if (i > start && !(i === start + 1 && b[start] === HEARTBEAT)) {
        this.onPacket(b.toString("utf8", start, i));
      }
      start = i + 1;
    }
    if (start < b.length) this.tail = b.subarray(start);
  }

  close() {
    this.sock.destroy();
  }
}

/** Logs `jid` in at `addr`; resolves to the connection once the answer says ok. */
function login(addr, jid) {
  return new Promise((resolve, reject) => {
    const id = `${jid}-login`;
    const timer = setTimeout(() => {
      c.close();
      reject(new Error(`login of ${jid} timed out`));
    }, 10_000);
    const c = new Conn(addr, jid, (text) => {
      const p = JSON.parse(text);
      if (p.envelope?.type !== 0) return;
      clearTimeout(timer);
      if (p.entity?.result !== "ok") {
        c.close();
        return reject(new Error(`login of ${jid} refused: ${text}`));
      }
      resolve(c);
    });
    c.sock.on("close", () => reject(new Error(`login of ${jid}: connection closed`)));
    c.send(JSON.stringify({
      envelope: { id, type: 0, jid, pwd: opts.pwd },
      vsn: "0.0.1",
    }));
  });
}

function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, clock ticks of 10 ms
  } catch {
    return NaN;
  }
}

function percentile(sorted, q) {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1);
  return Math.round(sorted[Math.max(0, i)] * 100) / 100;
}

async function main() {
  const sAddr = endpoint(opts.senders);
  const rAddr = endpoint(opts.recipients);
  const pairs = [];
  for (let i = 0; i < opts.pairs; i++) {
    pairs.push({
      i,
      from: `${run}s${i}@${opts.domain}`,
      to: `${run}r${i}@${opts.domain}`,
      next: 0,
      outstanding: 0,
      // seq -> send time (ms, hrtime) of messages not yet delivered
      sentAt: new Map(),
      // seqs server-acked and not yet delivered
      ackedUndelivered: new Set(),
      // highest seq delivered so far
      maxSeen: -1,
      sender: null,
      recipient: null,
    });
  }
  const now = () => performance.now();
  let phase = "warmup";
  let periodStart = Infinity;
  let periodEnd = Infinity;
  const stats = {
    sent: 0,
    acked: 0,
    delivered: 0,
    deliveredInPeriod: 0,
    ackedInPeriod: 0,
    reordered: 0,
    duplicates: 0,
    notices: {},
    other: 0,
  };
  let lat = new Float64Array(1 << 16);
  let latN = 0;

  const pump = (p) => {
    while (phase !== "drain" && p.outstanding < opts.window && !p.sender.closed) {
      const seq = p.next++;
      p.outstanding++;
      stats.sent++;
      p.sentAt.set(seq, now());
      p.sender.send(
        `{"envelope":{"id":"${run}-${p.i}-${seq}","type":1,"from":"${p.from}","to":"${p.to}","ack":1},"payload":{"content":"${pad}"},"vsn":"0.0.1"}`,
      );
    }
  };
  const seqOf = (id, p) => {
    if (typeof id !== "string") return -1;
    const prefix = `${run}-${p.i}-`;
    return id.startsWith(prefix) ? Number(id.slice(prefix.length)) : -1;
  };

  const onSender = (p) => (text) => {
    const packet = JSON.parse(text);
    const env = packet.envelope ?? {};
    if (env.type === 4) {
      const reason = packet.entity?.reason ?? "?";
      stats.notices[reason] = (stats.notices[reason] ?? 0) + 1;
      return;
    }
    if (env.type !== 3) return void stats.other++;
    const seq = seqOf(env.id, p);
    if (seq < 0) return void stats.other++;
    stats.acked++;
    if (now() >= periodStart && now() < periodEnd) stats.ackedInPeriod++;
    if (p.sentAt.has(seq)) p.ackedUndelivered.add(seq);
    p.outstanding--;
    pump(p);
  };
  const onRecipient = (p) => (text) => {
    const packet = JSON.parse(text);
    const env = packet.envelope ?? {};
    if (env.ack === 1 || env.ack === "1" || env.ack === true) {
      p.recipient.send(
        `{"envelope":{"id":${
          JSON.stringify(env.id)
        },"type":3,"from":"${p.to}","to":"server_ack"},"vsn":"0.0.1"}`,
      );
    }
    const seq = seqOf(env.id, p);
    if (env.type !== 1 || seq < 0) return void stats.other++;
    const t = now();
    // Every seq not yet delivered is still in sentAt.
    if (!p.sentAt.has(seq)) return void stats.duplicates++;
    if (seq < p.maxSeen) stats.reordered++;
    p.maxSeen = Math.max(p.maxSeen, seq);
    const sentAt = p.sentAt.get(seq);
    p.sentAt.delete(seq);
    p.ackedUndelivered.delete(seq);
    stats.delivered++;
    if (t >= periodStart && t < periodEnd) stats.deliveredInPeriod++;
    if (sentAt !== undefined && sentAt >= periodStart && sentAt < periodEnd) {
      if (latN === lat.length) {
        const bigger = new Float64Array(lat.length * 2);
        bigger.set(lat);
        lat = bigger;
      }
      lat[latN++] = t - sentAt;
    }
  };

  // Recipients first, so that no message finds its recipient offline.
  const t0 = now();
  await Promise.all(pairs.map(async (p) => {
    p.recipient = await login(rAddr, p.to);
    p.recipient.onPacket = onRecipient(p);
  }));
  await Promise.all(pairs.map(async (p) => {
    p.sender = await login(sAddr, p.from);
    p.sender.onPacket = onSender(p);
  }));
  const loginMs = now() - t0;

  for (const p of pairs) pump(p);
  await sleep(opts.warmup * 1000);
  phase = "measure";
  periodStart = now();
  const cpu0 = process.cpuUsage();
  const pids = opts.pids ? opts.pids.split(",").map(Number) : [];
  const pidCpu0 = pids.map(cpuSeconds);
  const load0 = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  await sleep(opts.duration * 1000);
  periodEnd = now();
  const cpu1 = process.cpuUsage(cpu0);
  const pidCpu = pids.map((pid, k) => Math.round((cpuSeconds(pid) - pidCpu0[k]) * 100) / 100);
  phase = "drain";
  const drainStart = now();
  const outstanding = () => pairs.reduce((n, p) => n + p.outstanding + p.ackedUndelivered.size, 0);
  while (outstanding() > 0 && now() - drainStart < opts.drain * 1000) await sleep(20);
  const drainMs = now() - drainStart;

  let lost = 0;
  let notAcked = 0;
  let closed = 0;
  for (const p of pairs) {
    lost += p.ackedUndelivered.size;
    notAcked += p.outstanding;
    closed += (p.sender.closed ? 1 : 0) + (p.recipient.closed ? 1 : 0);
    p.sender.close();
    p.recipient.close();
  }
  const sorted = lat.subarray(0, latN).sort();
  const periodS = (periodEnd - periodStart) / 1000;
  const out = {
    client: "loadclient.mjs (Node.js " + process.version + ")",
    params: {
      senders: opts.senders,
      recipients: opts.recipients,
      pairs: opts.pairs,
      window: opts.window,
      size: opts.size,
      warmup_s: opts.warmup,
      duration_s: opts.duration,
    },
    msgs_per_s: Math.round(stats.deliveredInPeriod / periodS),
    acked_per_s: Math.round(stats.ackedInPeriod / periodS),
    latency_ms: {
      p50: percentile(sorted, 0.5),
      p90: percentile(sorted, 0.9),
      p99: percentile(sorted, 0.99),
      max: percentile(sorted, 1),
      samples: latN,
    },
    sent: stats.sent,
    acked: stats.acked,
    delivered: stats.delivered,
    lost,
    reordered: stats.reordered,
    duplicates: stats.duplicates,
    not_acked: notAcked,
    notices: stats.notices,
    other_packets: stats.other,
    closed_connections: closed,
    drain_ms: Math.round(drainMs),
    login_ms: Math.round(loginMs),
    client_cpu_pct: Math.round((cpu1.user + cpu1.system) / 10_000 / periodS),
    process_cpu_s: Object.fromEntries(pids.map((pid, k) => [pid, pidCpu[k]])),
    loadavg_at_start: load0,
  };
  process.stdout.write(JSON.stringify(out) + "\n");
  process.exit(lost > 0 || stats.reordered > 0 || closed > 0 ? 1 : 0);
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// Hard bound: whatever the server does, the client ends.
const budget = 30 + opts.warmup + opts.duration + opts.drain;
setTimeout(() => {
  process.stderr.write(`loadclient: gave up after ${budget} s\n`);
  process.exit(3);
}, budget * 1000).unref();

main().catch((err) => {
  process.stderr.write(`loadclient: ${err.message}\n`);
  process.exit(1);
});
