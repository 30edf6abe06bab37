// Fault-injection check of the delivery contract (PROTOCOL 12): senders and
// recipients on real `sara` processes that are SIGKILLed and restarted while
// messages flow. Prints `acked A, delivered D, lost L, duplicates U, reordered O`
// and exits non-zero when anything acked was lost or reordered.
// Loopback only, bounded in time; not part of `deno test`.

import { parseArgs } from "node:util";
import { Ledger } from "../src/bench/ledger.ts";
import { type ClientOptions, type Context, pause, Stats } from "./fault/context.ts";
import { LocalNodes } from "./fault/nodes.ts";
import { Recipient } from "./fault/recipient.ts";
import { Sender } from "./fault/sender.ts";

const HELP = `Usage: deno run -A scripts/fault_check.ts [options]

Runs S senders and R recipients against sara nodes on 127.0.0.1 while nodes
are SIGKILLed and restarted at random. Senders retry unacked messages after
every reconnect (same ids, in order); recipients deduplicate by id, ack, and
sometimes crash before acking. After --duration seconds the kills stop, every
sender waits for its acks and every recipient logs in once more. Then one line:

  acked A, delivered D, lost L, duplicates U, reordered O

(PROTOCOL 12: lost = acked but never received; duplicate = received again;
reordered = a first receipt older than an earlier one, per sender and
recipient). Exit status: 0 when L = 0 and O = 0, 1 when not (or when a message
reached the wrong user), 2 when the check could not run.

Options:
  --store embedded      store of the nodes: only "embedded" so far (one node
                        on SQLite in a temp dir); a Redis mode runs N nodes
                        sharing one dbaddr (see makeNodes)
  --senders S           sending clients (default 8)
  --recipients R        receiving clients (default 8)
  --rate N              messages per second per sender (default 300)
  --window N            unacked messages per sender before it waits (default 50)
  --duration SECONDS    sending and killing phase (default 20)
  --drain SECONDS       limit of the final phase (default 30)
  --kill-every MIN,MAX  ms between a node being up and its next SIGKILL (default 300,1500)
  --down MIN,MAX        ms a killed node stays down (default 50,500)
  --sender-drops P      chance per second that a sender drops its connection (default 0.2)
  --recipient-drops P   chance per message that a recipient crashes before its ack (default 0.002)
  --skip-login-ack P    chance per login that a recipient crashes before acking
                        the stored batch (default 0.1)
  --keep                keep the temp dir (config, data, sara.log) for inspection
  --quiet               no progress lines on stderr
  -h, --help            this text`;

interface CheckOptions extends ClientOptions {
  store: string;
  durationMs: number;
  drainMs: number;
  killEvery: [number, number];
  down: [number, number];
  keep: boolean;
  quiet: boolean;
}

function parseOptions(args: string[]): CheckOptions | string {
  const { values: v } = parseArgs({
    args,
    options: {
      store: { type: "string", default: "embedded" },
      senders: { type: "string", default: "8" },
      recipients: { type: "string", default: "8" },
      rate: { type: "string", default: "300" },
      window: { type: "string", default: "50" },
      duration: { type: "string", default: "20" },
      drain: { type: "string", default: "30" },
      "kill-every": { type: "string", default: "300,1500" },
      down: { type: "string", default: "50,500" },
      "sender-drops": { type: "string", default: "0.2" },
      "recipient-drops": { type: "string", default: "0.002" },
      "skip-login-ack": { type: "string", default: "0.1" },
      keep: { type: "boolean", default: false },
      quiet: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (v.help) return HELP;
  const num = (name: string, s: string, min: number): number => {
    const n = Number(s);
    if (!Number.isFinite(n) || n < min) {
      throw new RangeError(`--${name} must be a number >= ${min}`);
    }
    return n;
  };
  const range = (name: string, s: string): [number, number] => {
    const [a, b] = s.split(",").map((x) => num(name, x, 0));
    if (a === undefined || b === undefined || b < a) {
      throw new RangeError(`--${name} must be MIN,MAX`);
    }
    return [a, b];
  };
  return {
    store: v.store,
    senders: num("senders", v.senders, 1),
    recipients: num("recipients", v.recipients, 1),
    rate: num("rate", v.rate, 1),
    window: num("window", v.window, 1),
    durationMs: num("duration", v.duration, 1) * 1000,
    drainMs: num("drain", v.drain, 1) * 1000,
    killEvery: range("kill-every", v["kill-every"]),
    down: range("down", v.down),
    senderDrops: num("sender-drops", v["sender-drops"], 0),
    recipientDrops: num("recipient-drops", v["recipient-drops"], 0),
    skipLoginAck: num("skip-login-ack", v["skip-login-ack"], 0),
    keep: v.keep,
    quiet: v.quiet,
  };
}

// A Redis mode adds here: N nodes (`--nodes`), each `{ nodeid, dbaddr }`
// with one shared `--dbaddr` (a Redis run with appendfsync always).
async function makeNodes(opts: CheckOptions): Promise<LocalNodes> {
  if (opts.store === "embedded") return await LocalNodes.create([{ dbaddr: "" }]);
  throw new RangeError(`--store ${opts.store}: not available yet (embedded only)`);
}

/** SIGKILLs a random node, keeps it down a while, restarts it; until `sending` ends. */
async function chaos(ctx: Context, opts: CheckOptions, counts: { kills: number }): Promise<void> {
  while (ctx.sending) {
    await pause(...opts.killEvery);
    if (!ctx.sending) break;
    const i = Math.floor(Math.random() * ctx.nodes.size);
    await ctx.nodes.kill(i);
    counts.kills++;
    await pause(...opts.down);
    await ctx.nodes.start(i);
  }
}

async function waitFor(cond: () => boolean, until: number): Promise<boolean> {
  while (!cond()) {
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

async function check(opts: CheckOptions): Promise<number> {
  const nodes = await makeNodes(opts);
  const say = (s: string) => opts.quiet || console.error(s);
  const ledger = new Ledger();
  for (let s = 0; s < opts.senders; s++) {
    for (let r = 0; r < opts.recipients; r++) ledger.addReceiver(ledger.addStream());
  }
  const stats = new Stats();
  const ctx: Context = {
    nodes,
    ledger,
    opts,
    stats,
    sending: true,
    chaos: true,
    final: false,
    done: false,
  };
  const senders = Array.from({ length: opts.senders }, (_, i) => new Sender(i, ctx));
  const recipients = Array.from({ length: opts.recipients }, (_, i) => new Recipient(i, ctx));
  const counts = { kills: 0 };
  const t0 = Date.now();
  let ticker: ReturnType<typeof setInterval> | undefined;
  let progress: ReturnType<typeof setInterval> | undefined;
  const loops: Promise<void>[] = [];
  try {
    for (let i = 0; i < nodes.size; i++) await nodes.start(i);
    say(
      `fault check: store ${opts.store}, ${nodes.size} node(s), ${opts.senders} senders, ` +
        `${opts.recipients} recipients, ${opts.rate} msg/s each, ${opts.durationMs / 1000} s`,
    );
    loops.push(...senders.map((s) => s.run()), ...recipients.map((r) => r.run()));
    let last = performance.now();
    ticker = setInterval(() => {
      const now = performance.now();
      for (const s of senders) s.tick(now - last);
      last = now;
    }, 10);
    progress = setInterval(() => {
      const p = ledger.progress();
      say(
        `  ${((Date.now() - t0) / 1000).toFixed(0)}s: acked ${ledger.summary().acked}, ` +
          `received ${p.received}, kills ${counts.kills}`,
      );
    }, 5000);

    const killing = chaos(ctx, opts, counts);
    await new Promise((r) => setTimeout(r, opts.durationMs));
    ctx.sending = false;
    ctx.chaos = false;
    await killing; // every node is up again

    // Drain: every sender gets its acks, every acked message arrives.
    const deadline = Date.now() + opts.drainMs;
    const unacked = () => senders.reduce((n, s) => n + s.unacked, 0);
    await waitFor(() => unacked() === 0, deadline);
    await waitFor(() => {
      const p = ledger.progress();
      return p.received >= p.expected;
    }, Math.min(deadline, Date.now() + 3000));
    // The login the contract promises: whatever waits in an inbox comes now.
    ctx.final = true;
    const before = recipients.map((r) => r.loginsDone);
    for (const r of recipients) r.relogin();
    await waitFor(() => recipients.every((r, i) => r.loginsDone > before[i]!), deadline);
    await new Promise((r) => setTimeout(r, 300));
    const left = unacked();
    if (left > 0) say(`  ${left} messages still unacked at the end (not counted as acked)`);
  } finally {
    ctx.done = true;
    ctx.sending = false;
    clearInterval(ticker);
    clearInterval(progress);
    for (const c of [...senders, ...recipients]) c.stop();
    await Promise.all(loops);
    await nodes.close(opts.keep);
    if (opts.keep) say(`  kept ${nodes.dir}`);
  }

  const sum = ledger.summary();
  const notices = [...stats.notices].map(([k, n]) => `${k} ${n}`).join(", ") || "none";
  say(
    `  sent ${sum.sent}, kills ${counts.kills}, sender logins ${stats.senderLogins}, ` +
      `resent ${stats.resent}, recipient logins ${stats.recipientLogins}, ` +
      `drops ${stats.senderDrops}+${stats.recipientDrops}, login acks skipped ` +
      `${stats.loginAcksSkipped}, failed logins ${stats.loginFailures}, notices: ${notices}, ` +
      `unexpected ${stats.unexpected + sum.unknown}, misrouted ${stats.misrouted}, ` +
      `late (only at the final login) ${stats.late}, ${((Date.now() - t0) / 1000).toFixed(1)} s`,
  );
  console.log(
    `acked ${sum.acked}, delivered ${sum.received}, lost ${sum.lost}, ` +
      `duplicates ${sum.duplicates}, reordered ${sum.reordered}`,
  );
  if (sum.acked === 0) {
    console.error("fault check: nothing was acked, so nothing was checked");
    return 2;
  }
  return sum.lost > 0 || sum.reordered > 0 || stats.misrouted > 0 ? 1 : 0;
}

if (import.meta.main) {
  let opts: CheckOptions | string;
  try {
    opts = parseOptions(Deno.args);
  } catch (err) {
    console.error(`fault_check: ${(err as Error).message}\n\n${HELP}`);
    Deno.exit(2);
  }
  if (typeof opts === "string") {
    console.log(opts);
    Deno.exit(0);
  }
  // Bounded in time whatever happens: a hung run is a failed run.
  const limit = opts.durationMs + opts.drainMs + 60_000;
  const watchdog = setTimeout(() => {
    console.error(`fault_check: no result within ${limit / 1000} s`);
    Deno.exit(2);
  }, limit);
  let code: number;
  try {
    code = await check(opts);
  } catch (err) {
    console.error(`fault_check: ${(err as Error).message}`);
    code = 2;
  }
  clearTimeout(watchdog);
  Deno.exit(code);
}
