// Session registry in Redis: bare JID -> {node, sid, transport, since} (with
// multi_login: a hash per bare JID, one field per resource), and per node the
// set of sessions it registered, so that a restarted node can clear the
// entries its previous life left behind.

import { Redis } from "ioredis";
import { setImmediate } from "node:timers";
import { errMsg, type Logger } from "../log.ts";
import { KeyedQueue } from "../async.ts";
import { devicesKey, nodeSessionsKey, sessionKey } from "./keys.ts";
import { command, defineScript, type RedisClient, type Script } from "../store/redis_client.ts";

/** One registered session. */
export interface SessionEntry {
  node: string;
  sid: string;
  transport: string;
  /** Login time, ms since the epoch. */
  since: number;
  /** The login's resource (single login; with multi_login it is the hash field). */
  resource?: string;
}

/**
 * Called when a registration replaced a session of the same user on another
 * node (with multi_login: of the same resource, or the oldest beyond
 * max_sessions, on any node, this one included). `jid` is bare.
 */
export type KickFn = (node: string, jid: string, sid: string) => Promise<void>;

// Deletes the entry only while it still names this session (or this node).
const DELETE_IF = `
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local ok, e = pcall(cjson.decode, v)
if ok and type(e) == 'table' and e[ARGV[1]] == ARGV[2] then return redis.call('DEL', KEYS[1]) end
return 0`;

// multi_login: the same for one field of a user's hash.
const DELETE_FIELD_IF = `
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 0 end
local ok, e = pcall(cjson.decode, v)
if ok and type(e) == 'table' and e[ARGV[2]] == ARGV[3] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0`;

// multi_login: sets the session of resource ARGV[1] and, while the user has
// more than ARGV[3] sessions, removes the oldest other one. Returns the
// entries it replaced or removed. One script: two logins on two nodes at
// once cannot both stay under the bound.
const REGISTER_DEVICE = `
local old = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local out = {}
if old then out[#out + 1] = old end
local max = tonumber(ARGV[3])
local all = redis.call('HGETALL', KEYS[1])
local n = #all / 2
while n > max do
  local at, since = nil, nil
  for i = 1, #all, 2 do
    if all[i] ~= ARGV[1] and all[i + 1] then
      local ok, e = pcall(cjson.decode, all[i + 1])
      local s = (ok and type(e) == 'table' and tonumber(e.since)) or 0
      if since == nil or s < since then at, since = i, s end
    end
  end
  if at == nil then break end
  redis.call('HDEL', KEYS[1], all[at])
  out[#out + 1] = all[at + 1]
  all[at + 1] = false
  n = n - 1
end
return out`;

/** With multi_login: one registered session of a user. */
export interface DeviceEntry {
  resource: string;
  node: string;
  sid: string;
  since: number;
}

/** With multi_login: the bound on a user's sessions across the cluster. */
export interface MultiRegistry {
  maxSessions: number;
}

/** The registry as one node sees it. */
export class Registry {
  readonly #deleteIf: Script;
  readonly #deleteFieldIf: Script;
  readonly #registerDevice: Script;
  readonly #setKey: string;
  // Per user, the registry steps of this node run one after another, so a
  // quick re-login never has its entry removed by the older session's logout.
  readonly #steps = new KeyedQueue();
  // What this node registered, to put back after Redis lost it.
  readonly #mine = new Map<string, SessionEntry>();
  // Unregistrations that failed (Redis away): retried by `restore`.
  readonly #failed = new Map<string, string>();
  // Lookups made in this turn, answered by one MGET at its end (one Redis).
  #lookups: { jid: string; done: (v: (string | null)[] | Error, i: number) => void }[] = [];

  constructor(
    readonly client: RedisClient,
    readonly nodeid: string,
    readonly log: Logger,
    readonly kick: KickFn,
    readonly multi: MultiRegistry | null = null,
  ) {
    this.#deleteIf = defineScript(client, "saraSessionDeleteIf", 1, DELETE_IF);
    this.#deleteFieldIf = defineScript(client, "saraDeviceDeleteIf", 1, DELETE_FIELD_IF);
    this.#registerDevice = defineScript(client, "saraDeviceRegister", 1, REGISTER_DEVICE);
    this.#setKey = nodeSessionsKey(nodeid);
  }

  /**
   * Makes (jid, sid) the user's session, on this node; a session it replaces
   * on another node is kicked. Rejects when Redis cannot be reached: then the
   * login must fail. With multi_login `jid` is the full JID.
   */
  register(jid: string, sid: string, transport: string, resource = ""): Promise<void> {
    return this.#serial(jid, async () => {
      const entry: SessionEntry = { node: this.nodeid, sid, transport, since: Date.now() };
      // Listed first: a crash between the two leaves a listed entry that the
      // next start clears, never an unlisted one naming this node.
      await this.client.sadd(this.#setKey, member(jid, sid));
      if (this.multi) return await this.#registerDev(jid, entry, this.multi.maxSessions);
      entry.resource = resource;
      const old = parseEntry(await this.client.set(sessionKey(jid), JSON.stringify(entry), "GET"));
      this.#mine.set(jid, entry);
      this.#failed.delete(jid);
      if (old && old.node !== this.nodeid) {
        await this.kick(old.node, jid, old.sid).catch((err) =>
          this.log.warn(`cluster: cannot kick ${jid} on ${old.node}: ${errMsg(err)}`)
        );
      }
    });
  }

  async #registerDev(full: string, entry: SessionEntry, max: number): Promise<void> {
    const [jid, resource] = splitFull(full);
    const gone = await this.#registerDevice(devicesKey(jid), resource, JSON.stringify(entry), max);
    this.#mine.set(full, entry);
    this.#failed.delete(full);
    for (const text of Array.isArray(gone) ? gone : []) {
      const old = parseEntry(typeof text === "string" ? text : null);
      if (old === null || old.sid === entry.sid) continue;
      await this.kick(old.node, jid, old.sid).catch((err) =>
        this.log.warn(`cluster: cannot kick ${jid} on ${old.node}: ${errMsg(err)}`)
      );
    }
  }

  /** Removes (jid, sid) unless a newer session replaced it; retried later if Redis is away. */
  unregister(jid: string, sid: string): Promise<void> {
    return this.#serial(jid, async () => {
      if (this.#mine.get(jid)?.sid === sid) this.#mine.delete(jid);
      try {
        await this.#deleteOne(jid, "sid", sid);
        await this.client.srem(this.#setKey, member(jid, sid));
        if (this.#failed.get(jid) === sid) this.#failed.delete(jid);
      } catch (err) {
        this.#failed.set(jid, sid);
        this.log.warn(`cluster: cannot unregister ${jid}: ${errMsg(err)}`);
      }
    });
  }

  /**
   * The user's registered session, wherever it is. On one Redis the lookups
   * of a turn share one MGET (in a Redis Cluster the users' keys sit in
   * different slots, and each lookup follows a failover by the store's retry
   * rule, docs/cluster.md); either way they resolve in the order they were made.
   */
  async lookup(jid: string): Promise<SessionEntry | null> {
    if (!(this.client instanceof Redis)) {
      return parseEntry(await command(this.client, "get", sessionKey(jid)) as string | null);
    }
    if (this.#lookups.length === 0) setImmediate(() => this.#lookupAll(this.client as Redis));
    const text = await new Promise<string | null>((resolve, reject) => {
      this.#lookups.push({
        jid,
        done: (v, i) => v instanceof Error ? reject(v) : resolve(v[i] ?? null),
      });
    });
    return parseEntry(text);
  }

  #lookupAll(client: Redis): void {
    const batch = this.#lookups;
    this.#lookups = [];
    client.mget(batch.map((l) => sessionKey(l.jid))).then(
      (texts) => batch.forEach((l, i) => l.done(texts, i)),
      (err) =>
        batch.forEach((l, i) => l.done(err instanceof Error ? err : new Error(errMsg(err)), i)),
    );
  }

  /** With multi_login: every registered session of the bare `jid`, wherever it is. */
  async devices(jid: string): Promise<DeviceEntry[]> {
    const all = await this.client.hgetall(devicesKey(jid));
    const out: DeviceEntry[] = [];
    for (const [resource, text] of Object.entries(all)) {
      const e = parseEntry(text);
      if (e) out.push({ resource, node: e.node, sid: e.sid, since: e.since });
    }
    return out;
  }

  /** Deletes the entry of `jid` (full with multi_login) while its `field` is `value`. */
  #deleteOne(jid: string, field: "sid" | "node", value: string): Promise<unknown> {
    if (!this.multi) return this.#deleteIf(sessionKey(jid), field, value);
    const [bare, resource] = splitFull(jid);
    return this.#deleteFieldIf(devicesKey(bare), resource, field, value);
  }

  /** Sessions registered by `node` (its set's size). */
  async count(node: string): Promise<number> {
    return await this.client.scard(nodeSessionsKey(node));
  }

  /**
   * At start: deletes the entries this node registered in an earlier life
   * that still name it (the seed's "clean ghost session"); resolves to how many.
   */
  async clearGhosts(): Promise<number> {
    let cleared = 0;
    let cursor = "0";
    do {
      const [next, members] = await this.client.sscan(this.#setKey, cursor, "COUNT", 500);
      cursor = next;
      const done = await Promise.all(members.map((m) => {
        const jid = jidOf(m);
        return jid === null ? 0 : this.#deleteOne(jid, "node", this.nodeid);
      }));
      cleared += done.filter((n) => n === 1).length;
    } while (cursor !== "0");
    await this.client.del(this.#setKey);
    return cleared;
  }

  /**
   * After Redis came back: puts back the entries of this node's sessions that
   * Redis lost (never over a newer login elsewhere), and retries failed
   * unregistrations.
   */
  async restore(): Promise<void> {
    for (const [jid, sid] of [...this.#failed]) await this.unregister(jid, sid);
    const steps = [...this.#mine].map(([jid, e]) =>
      this.#serial(jid, async () => {
        if (this.#mine.get(jid) !== e) return;
        await this.client.sadd(this.#setKey, member(jid, e.sid));
        if (!this.multi) {
          await this.client.set(sessionKey(jid), JSON.stringify(e), "NX");
          return;
        }
        const [bare, resource] = splitFull(jid);
        await this.client.hsetnx(devicesKey(bare), resource, JSON.stringify(e));
      })
    );
    const results = await Promise.allSettled(steps);
    const failed = results.filter((r) => r.status === "rejected").length;
    if (failed > 0) this.log.warn(`cluster: ${failed} session entries not restored`);
  }

  /** Resolves once every registry step started so far has finished. */
  async settled(): Promise<void> {
    await this.#steps.settled();
  }

  #serial(jid: string, step: () => Promise<void>): Promise<void> {
    return this.#steps.run(jid, step);
  }
}

/** A full JID's bare JID and resource ("" when it has none). */
function splitFull(full: string): [string, string] {
  const slash = full.indexOf("/");
  return slash === -1 ? [full, ""] : [full.slice(0, slash), full.slice(slash + 1)];
}

function member(jid: string, sid: string): string {
  return JSON.stringify([jid, sid]);
}

function jidOf(m: string): string | null {
  try {
    const v = JSON.parse(m);
    return Array.isArray(v) && typeof v[0] === "string" ? v[0] : null;
  } catch {
    return null;
  }
}

/** A stored entry, or null for none or anything unreadable. */
export function parseEntry(text: string | null): SessionEntry | null {
  if (text === null) return null;
  try {
    const e = JSON.parse(text);
    if (typeof e?.node === "string" && typeof e.sid === "string") return e as SessionEntry;
  } catch {
    // not ours: treated as no entry
  }
  return null;
}
