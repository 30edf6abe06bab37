// Node liveness: each node holds a Redis hash and renews it every few
// seconds; a node that stopped renewing is dead, and its users count as
// offline. Starting checks that no live instance already runs this nodeid.
// A Redis outage stops every node's renewals at once, so a renewal missed
// then is not taken for a death (the rule: docs/cluster.md, "When Redis is
// unavailable").

import { hostname } from "node:os";
import { Redis } from "ioredis";
import { ConfigError } from "../errors.ts";
import { errMsg, type Logger } from "../log.ts";
import { SingleFlight, withTimeout } from "../async.ts";
import { channelOf, nodeKey, NODES_KEY } from "./keys.ts";
import { defineScript, type RedisClient, type Script } from "../store/redis_client.ts";

/** How long a liveness key lives, how often it is renewed, how long an answer is cached. */
export interface LivenessTiming {
  /** A node that renewed within this long is alive. */
  ttlMs: number;
  /**
   * Beyond `ttlMs`, how long a node that stopped renewing may still count as
   * alive when a Redis outage explains it (longer than a failover); the key
   * lives `ttlMs + graceMs`.
   */
  graceMs: number;
  renewMs: number;
  /** How long "node X is alive / dead" is reused by routing. */
  cacheMs: number;
  /** How often a starting node looks at a key it found held, and a failed renewal is retried. */
  pollMs: number;
}

/** Production timing: a killed node counts as dead within 10 s. */
export const LIVENESS: LivenessTiming = {
  ttlMs: 10_000,
  graceMs: 30_000,
  renewMs: 3_000,
  cacheMs: 1_000,
  pollMs: 250,
};

// A liveness check Redis has not answered within this long gets the last
// answer Redis gave (if it is younger than the grace) instead: while a Redis
// Cluster master fails over, commands for its slots (a node's liveness key
// among them) wait for its replica's promotion, seconds, and every delivery
// to that node's users would wait with them.
const SLOW_CHECK_MS = 250;

/** Who holds a liveness key: the fields of its hash. */
export interface Holder {
  token: string;
  host: string;
  pid: string;
  since: string;
  /** Renewal counter: a change proves the holder alive. */
  seq: string;
}

// Redis' clock in ms, inside a script (the nodes' clocks may differ).
const NOW = `local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)`;

// Sets the hash if nobody holds it, or if its holder is still exactly the one
// the caller proved dead (same token and renewal count: it did not renew since).
const CLAIM = `${NOW}
local t = redis.call('HGET', KEYS[1], 'token')
if t then
  if t ~= ARGV[6] or redis.call('HGET', KEYS[1], 'seq') ~= ARGV[7] then return 0 end
  redis.call('DEL', KEYS[1])
end
redis.call('HSET', KEYS[1], 'token', ARGV[1], 'host', ARGV[2], 'pid', ARGV[3], 'since', ARGV[4], 'seq', '0', 'at', now)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1`;

// 1: renewed; 2: it had lapsed and is ours again; 0: another instance holds it.
const RENEW = `${NOW}
local t = redis.call('HGET', KEYS[1], 'token')
if t and t ~= ARGV[1] then return 0 end
if not t then
  redis.call('HSET', KEYS[1], 'token', ARGV[1], 'host', ARGV[2], 'pid', ARGV[3], 'since', ARGV[4], 'seq', '0', 'at', now)
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return 2
end
redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('HSET', KEYS[1], 'at', now)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1`;

// Ms since the node last renewed, by Redis' clock; -1: no key (dead); -2: a
// key without a renewal time (a node of an older version: alive while it exists).
const AGE = `
local at = redis.call('HGET', KEYS[1], 'at')
if not at then return redis.call('EXISTS', KEYS[1]) == 1 and -2 or -1 end
${NOW}
return now - tonumber(at)`;

const RELEASE = `
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/** This node's liveness key, and the liveness of the others. */
export class Liveness {
  readonly #key: string;
  readonly #fields: (string | number)[];
  readonly #renewScript: Script;
  readonly #releaseScript: Script;
  readonly #ageScript: Script;
  // Shared answers (the promise itself, so that lookups made in order finish
  // in order: deliveries to one recipient are published in send order).
  readonly #cache = new Map<
    string,
    { alive: Promise<boolean>; until: number; settled: boolean }
  >();
  // The last answer Redis gave about each node, and when (for SLOW_CHECK_MS).
  readonly #known = new Map<string, { alive: boolean; at: number }>();
  // Per node, since when Redis leaves its checks unanswered: from the first
  // check since the last answer (a check that fails, slowly, does not end it).
  readonly #unanswered = new Map<string, number>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;
  // When this node last failed to reach Redis (renewal or check), ms since the epoch.
  #troubleAt = -Infinity;
  // One renewal at a time: a slow Redis never piles them up.
  readonly #renewing = new SingleFlight<"renew", void>();
  #state: "ok" | "failing" | "lost" = "ok";

  private constructor(
    readonly client: RedisClient,
    readonly nodeid: string,
    readonly token: string,
    me: Omit<Holder, "token" | "seq">,
    readonly log: Logger,
    readonly timing: LivenessTiming,
    /** Called when the key had lapsed and was claimed again (Redis was away or lost it). */
    readonly onReclaimed: (() => void) | null,
  ) {
    this.#key = nodeKey(nodeid);
    this.#fields = [token, me.host, me.pid, me.since, timing.ttlMs + timing.graceMs];
    this.#renewScript = defineScript(client, "saraNodeRenew", 1, RENEW);
    this.#releaseScript = defineScript(client, "saraNodeRelease", 1, RELEASE);
    this.#ageScript = defineScript(client, "saraNodeAge", 1, AGE);
  }

  /**
   * Claims `nodeid` and starts renewing it. A key held by another instance is
   * watched: renewed means that instance is alive, and the claim fails with a
   * ConfigError; lapsed (or not renewed and its process provably gone, after
   * a restart on the same host) means it died, and this node takes over.
   * `onReclaimed` runs whenever the key had lapsed and is claimed again.
   */
  static async claim(
    client: RedisClient,
    nodeid: string,
    log: Logger,
    timing: LivenessTiming = LIVENESS,
    onReclaimed: (() => void) | null = null,
  ): Promise<Liveness> {
    const me = { host: hostname(), pid: String(Deno.pid), since: new Date().toISOString() };
    const live = new Liveness(client, nodeid, crypto.randomUUID(), me, log, timing, onReclaimed);
    await live.#claim();
    await client.sadd(NODES_KEY, nodeid);
    live.#schedule(timing.renewMs);
    return live;
  }

  async #claim(): Promise<void> {
    const claim = defineScript(this.client, "saraNodeClaim", 1, CLAIM);
    const put = async (expect: Holder | null) =>
      await claim(this.#key, ...this.#fields, expect?.token ?? "", expect?.seq ?? "") === 1;
    // A holder that stops renewing is taken over after ttlMs; the rest covers slow polls.
    const deadline = Date.now() + 2 * this.timing.ttlMs;
    let seen: Holder | null = null;
    let seenAt = 0;
    for (;;) {
      if (await put(null)) {
        if (seen) this.log.warn(`nodeid ${this.nodeid}: ${describeHolder(seen)} lapsed; took over`);
        return;
      }
      const cur = await readHolder(this.client, this.#key);
      if (cur === null) continue; // lapsed between the two calls: claim again
      if (seen === null || cur.token !== seen.token) {
        seen = cur;
        seenAt = Date.now();
      } else if (
        cur.seq === seen.seq && Date.now() - seenAt >= this.timing.ttlMs &&
        !(await this.#listening(this.nodeid)) && await put(cur)
      ) {
        this.log.warn(`nodeid ${this.nodeid}: ${describeHolder(cur)} stopped renewing; took over`);
        return;
      } else if (cur.seq !== seen.seq || Date.now() > deadline) {
        throw new ConfigError(
          `nodeid "${this.nodeid}" is already running (${describeHolder(cur)}, alive at ` +
            `${new Date().toISOString()}); every node needs its own nodeid`,
        );
      } else if (
        Date.now() - seenAt >= this.timing.renewMs * 1.5 && provablyDead(cur) && await put(cur)
      ) {
        this.log.warn(
          `nodeid ${this.nodeid}: ${describeHolder(cur)} stopped renewing and its process is ` +
            `gone; took over`,
        );
        return;
      }
      await new Promise((r) => setTimeout(r, this.timing.pollMs));
    }
  }

  // A failed renewal is retried every pollMs, so that the key is fresh again
  // right after an outage.
  #schedule(ms: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      void this.#renewing.run("renew", () => this.#renewOnce()).finally(() =>
        this.#schedule(this.#state === "failing" ? this.timing.pollMs : this.timing.renewMs)
      );
    }, ms);
  }

  async #renewOnce(): Promise<void> {
    let r: unknown;
    try {
      r = await this.#renewScript(this.#key, ...this.#fields);
    } catch (err) {
      this.#troubleAt = Date.now();
      if (this.#state !== "failing") {
        this.log.warn(`cluster: cannot renew liveness of ${this.nodeid}: ${errMsg(err)}`);
      }
      this.#state = "failing";
      return;
    }
    if (r === 0) {
      if (this.#state !== "lost") {
        this.log.error(
          `cluster: nodeid ${this.nodeid} is held by another instance; ` +
            `this node no longer counts as alive (two nodes share one nodeid?)`,
        );
      }
      this.#state = "lost";
      return;
    }
    if (this.#state !== "ok") this.log.info(`cluster: liveness of ${this.nodeid} renewed again`);
    this.#state = "ok";
    if (r === 2) {
      this.log.warn(`cluster: liveness key of ${this.nodeid} had lapsed; claimed it again`);
      this.onReclaimed?.();
    }
  }

  /**
   * True when `node` renewed within ttlMs; or, within the grace beyond, when
   * its renewals may have failed for a reason that is not its death: it
   * still listens on its channel, or this node itself failed to reach Redis
   * within the grace (an outage stops every node's renewals). Answers are
   * reused for `cacheMs`; once Redis has left the checks of `node`
   * unanswered for SLOW_CHECK_MS, callers get the last answer Redis gave (if
   * it is younger than the grace) without waiting.
   */
  isAlive(node: string): Promise<boolean> {
    if (node === this.nodeid) return Promise.resolve(true);
    const now = Date.now();
    let c = this.#cache.get(node);
    if (!c || c.until <= now) {
      const alive = this.#check(node);
      const entry = c = { alive, until: now + this.timing.cacheMs, settled: false as boolean };
      this.#cache.set(node, entry);
      if (!this.#unanswered.has(node)) this.#unanswered.set(node, now);
      alive.then((a) => {
        entry.settled = true;
        this.#known.set(node, { alive: a, at: Date.now() });
        this.#unanswered.delete(node);
      }, () => {
        entry.settled = true;
        // A failed check is not reused.
        if (this.#cache.get(node) === entry) this.#cache.delete(node);
      });
    }
    if (c.settled) return c.alive;
    const known = this.#known.get(node);
    if (!known || now - known.at > this.timing.graceMs) return c.alive;
    // Counted from the first unanswered check, not from this call: while a
    // master fails over every delivery to that node's users would wait
    // SLOW_CHECK_MS again, and a check whose retries fail takes 2 s.
    const left = SLOW_CHECK_MS - (now - (this.#unanswered.get(node) ?? now));
    if (left <= 0) return Promise.resolve(known.alive);
    const pending = c.alive;
    return withTimeout(left, () => pending, () => known.alive);
  }

  async #check(node: string): Promise<boolean> {
    let age: number;
    try {
      age = Number(await this.#ageScript(nodeKey(node)));
    } catch (err) {
      this.#troubleAt = Date.now();
      throw err;
    }
    if (age === -1) return false;
    if (age === -2 || age < this.timing.ttlMs) return true;
    if (Date.now() - this.#troubleAt < this.timing.graceMs) return true;
    return await this.#listening(node);
  }

  /** Whether `node` is subscribed to its channel on any Redis server. */
  async #listening(node: string): Promise<boolean> {
    const servers = this.client instanceof Redis ? [this.client] : this.client.nodes("all");
    const counts = await Promise.all(
      servers.map((r) => r.pubsub("NUMSUB", channelOf(node)) as Promise<[string, number]>),
    );
    return counts.some((c) => Number(c[1]) > 0);
  }

  /** Every node that ever started here and is alive now, this one included, sorted. */
  async liveNodes(): Promise<string[]> {
    const known = await this.client.smembers(NODES_KEY);
    const others = known.filter((n) => n !== this.nodeid);
    // Not the cached answers: a node that just stopped is gone from the list at once.
    const alive = await Promise.all(others.map((n) => this.#check(n)));
    const live = others.filter((_, i) => alive[i]);
    return [this.nodeid, ...live].sort();
  }

  /** Stops renewing and deletes the key (if still ours), so other nodes see this one gone at once. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#renewing.pending("renew");
    try {
      await this.#releaseScript(this.#key, this.token);
    } catch (err) {
      this.log.warn(`cluster: cannot release liveness of ${this.nodeid}: ${errMsg(err)}`);
    }
  }
}

/** The holder of a liveness key, or null when there is none. */
export async function readHolder(client: RedisClient, key: string): Promise<Holder | null> {
  const h = await client.hgetall(key);
  if (typeof h.token !== "string") return null;
  return {
    token: h.token,
    host: h.host ?? "",
    pid: h.pid ?? "",
    since: h.since ?? "",
    seq: h.seq ?? "",
  };
}

function describeHolder(h: Holder): string {
  return `pid ${h.pid} on ${h.host}, up since ${h.since}`;
}

/**
 * True when the holder ran on this host and its process is gone. Only
 * consulted after it missed its renewals, so another pid namespace sharing
 * the hostname cannot make a live holder look dead.
 */
function provablyDead(h: Holder): boolean {
  if (h.host !== hostname()) return false;
  // Our own pid in an earlier life (a container's sara is pid 1 every time).
  if (h.pid === String(Deno.pid)) return true;
  if (!exists("/proc/self")) return false; // no procfs: cannot tell
  return !exists(`/proc/${h.pid}`);
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}
