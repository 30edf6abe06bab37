// Fault-injection check of the delivery contract (docs/protocol.md §12): senders and
// recipients on real `sara` processes (one embedded node, or N nodes sharing a
// Redis) that are SIGKILLed and restarted while messages flow. Prints `acked A, delivered D, lost L, duplicates U, reordered O`
// and exits non-zero when anything acked was lost or reordered.
// Loopback only, bounded in time; not part of `deno test`.

import { parseArgs } from "node:util";
import { Ledger } from "../src/bench/ledger.ts";
import { type ClientOptions, type Context, pause, Stats } from "./fault/context.ts";
import { type Owned, runEntry } from "./fault/entry.ts";
import { LocalNodes } from "./fault/nodes.ts";
import { Recipient } from "./fault/recipient.ts";
import { RedisProcess } from "./fault/redis.ts";
import { Sender } from "./fault/sender.ts";

const HELP = `Usage: deno run -A scripts/fault_check.ts [options]

Runs S senders and R recipients against sara nodes on 127.0.0.1 while nodes
are SIGKILLed and restarted at random (clients reconnect to a random live node,
so users move between nodes). Senders retry unacked messages after
every reconnect (same ids, in order); recipients deduplicate by id, ack, and
sometimes crash before acking. After --duration seconds the kills stop, every
sender waits for its acks and every recipient logs in once more. Then one line:

  acked A, delivered D, lost L, duplicates U, reordered O

(docs/protocol.md §12: lost = acked but never received; duplicate = received again;
reordered = a first receipt older than an earlier one, per sender and
recipient). Exit status: 0 when L = 0 and O = 0, 1 when not (or when a message
reached the wrong user), 2 when the check could not run. Every process it
starts dies with it; a SIGKILLed check leaves its temp dirs (sara-fault-*).

Options:
  --store embedded      one node on SQLite in a temp dir (the default)
  --store redis         N nodes sharing one redis-server the check starts (AOF,
                        appendfsync always, temp dir, loopback port); with
                        several nodes, one always stays up. A killed node
                        restarts with its nodeid, taken over after about 5 s
  --nodes N             nodes of --store redis (default 3)
  --kill-redis          also SIGKILL and restart Redis itself (--store redis)
  --redis-kill-every MIN,MAX
                        ms between Redis being up and its next SIGKILL
                        (default 2000,6000)
  --senders S           sending clients (default 8)
  --recipients R        receiving clients (default 8)
  --rate N              messages per second per sender (default 300)
  --window N            unacked messages per sender before it waits (default 50)
  --duration SECONDS    sending and killing phase (default 20)
  --drain SECONDS       limit of the final phase (default 30)
  --kill-every MIN,MAX  ms before the next SIGKILL of a node; a lone node is
                        restarted first (default 300,1500)
  --down MIN,MAX        ms a killed node (or Redis) stays down (default 50,500)
  --sender-drops P      chance per second that a sender drops its connection (default 0.2)
  --recipient-drops P   chance per message that a recipient crashes before its ack (default 0.002)
  --skip-login-ack P    chance per login that a recipient crashes before acking
                        the stored batch (default 0.1)
  --keep                keep the temp dirs (configs, data, sara.log, Redis AOF)
                        for inspection
  --quiet               no progress lines on stderr
  -h, --help            this text`;

interface CheckOptions extends ClientOptions {
  store: "embedded" | "redis";
  nodes: number;
  killRedis: boolean;
  redisKillEvery: [number, number];
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
      nodes: { type: "string" },
      "kill-redis": { type: "boolean", default: false },
      "redis-kill-every": { type: "string", default: "2000,6000" },
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
  if (v.store !== "embedded" && v.store !== "redis") {
    throw new RangeError(`--store must be "embedded" or "redis"`);
  }
  if (v.store === "embedded" && (v.nodes !== undefined || v["kill-redis"])) {
    throw new RangeError("--nodes and --kill-redis need --store redis");
  }
  const nodes = num("nodes", v.nodes ?? "3", 1);
  if (!Number.isInteger(nodes)) throw new RangeError("--nodes must be an integer");
  return {
    store: v.store,
    nodes: v.store === "redis" ? nodes : 1,
    killRedis: v["kill-redis"],
    redisKillEvery: range("redis-kill-every", v["redis-kill-every"]),
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

/** Processes an emergency exit (watchdog, signal) must SIGKILL, and their dirs. */
const owned: Owned[] = [];

/** The nodes of the run: one embedded node, or `--nodes` nodes sharing `redis`. */
async function makeNodes(opts: CheckOptions, redis: RedisProcess | null): Promise<LocalNodes> {
  if (redis === null) return await LocalNodes.create([{ dbaddr: "" }]);
  return await LocalNodes.create(
    Array.from({ length: opts.nodes }, (_, i) => ({
      dbaddr: redis.addr,
      nodeid: `n${String(i + 1).padStart(2, "0")}`,
    })),
  );
}

interface Counts {
  kills: number;
  redisKills: number;
  /** Node starts that failed and were retried (a node refuses to start while Redis is away). */
  failedStarts: number;
}

// With --kill-redis, as a supervisor would (systemd Restart=on-failure): a
// node restarted while Redis is down exits, and is started again a little
// later. Otherwise a failed start fails the run.
const START_ATTEMPTS = 20;

async function startNode(ctx: Context, opts: CheckOptions, i: number, counts: Counts) {
  const attempts = opts.killRedis ? START_ATTEMPTS : 1;
  for (let attempt = 1;; attempt++) {
    try {
      return await ctx.nodes.start(i);
    } catch (err) {
      if (attempt >= attempts || ctx.done) throw err;
      counts.failedStarts++;
      await pause(200, 500);
    }
  }
}

/**
 * SIGKILLs a random live node, keeps it down a while, restarts it; until
 * `sending` ends, then waits for every node to be up. A lone node is
 * restarted before the next kill; of several, the last live one is spared
 * and the others restart in the background (a restart takes seconds: the
 * nodeid is taken over only once the dead instance missed its renewals).
 */
async function chaos(ctx: Context, opts: CheckOptions, counts: Counts): Promise<void> {
  const { nodes } = ctx;
  const restarts: Promise<void>[] = [];
  let failed: unknown = null;
  while (ctx.sending && failed === null) {
    await pause(...opts.killEvery);
    if (!ctx.sending) break;
    const up: number[] = [];
    for (let j = 0; j < nodes.size; j++) if (nodes.port(j) !== null) up.push(j);
    // Of several nodes, the last live one is spared: clients always find one.
    if (up.length === 0 || (nodes.size > 1 && up.length === 1)) continue;
    const i = up[Math.floor(Math.random() * up.length)]!;
    await nodes.kill(i);
    counts.kills++;
    const back = pause(...opts.down).then(() => startNode(ctx, opts, i, counts));
    if (nodes.size === 1) await back;
    else restarts.push(back.catch((err) => void (failed ??= err)));
  }
  await Promise.all(restarts);
  if (failed !== null) throw failed;
}

/** SIGKILLs Redis, keeps it down a while, restarts it on its AOF; until `sending` ends. */
async function redisChaos(
  ctx: Context,
  redis: RedisProcess,
  opts: CheckOptions,
  counts: Counts,
): Promise<void> {
  while (ctx.sending) {
    await pause(...opts.redisKillEvery);
    if (!ctx.sending) break;
    await redis.kill();
    counts.redisKills++;
    await pause(...opts.down);
    await redis.start();
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
  const redis = opts.store === "redis" ? await RedisProcess.create() : null;
  if (redis) owned.push({ dirs: [redis.dir], killNow: () => redis.killNow() });
  let nodes: LocalNodes;
  try {
    nodes = await makeNodes(opts, redis);
  } catch (err) {
    await redis?.close(opts.keep);
    throw err;
  }
  owned.push({ dirs: [nodes.dir], killNow: () => nodes.killNow() });
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
  const counts: Counts = { kills: 0, redisKills: 0, failedStarts: 0 };
  const t0 = Date.now();
  let ticker: ReturnType<typeof setInterval> | undefined;
  let progress: ReturnType<typeof setInterval> | undefined;
  const loops: Promise<void>[] = [];
  let killing: Promise<unknown> = Promise.resolve();
  try {
    for (let i = 0; i < nodes.size; i++) await nodes.start(i);
    say(
      `fault check: store ${opts.store}${redis ? ` (${redis.addr}, appendfsync always)` : ""}, ` +
        `${nodes.size} node(s), ${opts.senders} senders, ${opts.recipients} recipients, ` +
        `${opts.rate} msg/s each, ${opts.durationMs / 1000} s` +
        (opts.killRedis ? ", Redis killed too" : ""),
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
          `received ${p.received}, kills ${counts.kills}` +
          (opts.killRedis ? ` + Redis ${counts.redisKills}` : ""),
      );
    }, 5000);

    killing = Promise.all([
      chaos(ctx, opts, counts),
      redis && opts.killRedis ? redisChaos(ctx, redis, opts, counts) : null,
    ]);
    // A failed restart ends the sending phase at once (then reported as a failed run).
    await Promise.race([new Promise((r) => setTimeout(r, opts.durationMs)), killing]);
    ctx.sending = false;
    ctx.chaos = false;
    await killing; // every node and Redis are up again

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
    // A restart still on its way (after a failure) ends before the cleanup.
    await killing.catch(() => {});
    try {
      // Nodes first: a node stopping still writes to Redis.
      await nodes.close(opts.keep);
    } finally {
      await redis?.close(opts.keep);
      owned.length = 0;
    }
    if (opts.keep) say(`  kept ${[nodes.dir, redis?.dir].filter(Boolean).join(" ")}`);
  }

  const sum = ledger.summary();
  const notices = [...stats.notices].map(([k, n]) => `${k} ${n}`).join(", ") || "none";
  say(
    `  sent ${sum.sent}, kills ${counts.kills}` +
      (opts.killRedis ? ` + Redis ${counts.redisKills}` : "") +
      (counts.failedStarts ? ` (node starts retried ${counts.failedStarts})` : "") +
      `, sender logins ${stats.senderLogins}, ` +
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
  await runEntry({
    name: "fault_check",
    help: HELP,
    parse: parseOptions,
    owned,
    keep: (opts) => opts.keep,
    limitMs: (opts) => opts.durationMs + opts.drainMs + 60_000,
    run: check,
  });
}
