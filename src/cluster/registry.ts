// Session registry in Redis: bare JID -> {node, sid, transport, since}, and
// per node the set of sessions it registered, so that a restarted node can
// clear the entries its previous life left behind.

import { errMsg, type Logger } from "../log.ts";
import { KeyedQueue } from "../async.ts";
import { nodeSessionsKey, sessionKey } from "./keys.ts";
import { defineScript, type RedisClient, type Script } from "../store/redis_client.ts";

/** One registered session. */
export interface SessionEntry {
  node: string;
  sid: string;
  transport: string;
  /** Login time, ms since the epoch. */
  since: number;
}

/** Called when a registration replaced a session of the same user on another node. */
export type KickFn = (node: string, jid: string, sid: string) => Promise<void>;

// Deletes the entry only while it still names this session (or this node).
const DELETE_IF = `
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local ok, e = pcall(cjson.decode, v)
if ok and type(e) == 'table' and e[ARGV[1]] == ARGV[2] then return redis.call('DEL', KEYS[1]) end
return 0`;

/** The registry as one node sees it. */
export class Registry {
  readonly #deleteIf: Script;
  readonly #setKey: string;
  // Per user, the registry steps of this node run one after another, so a
  // quick re-login never has its entry removed by the older session's logout.
  readonly #steps = new KeyedQueue();
  // What this node registered, to put back after Redis lost it.
  readonly #mine = new Map<string, SessionEntry>();
  // Unregistrations that failed (Redis away): retried by `restore`.
  readonly #failed = new Map<string, string>();

  constructor(
    readonly client: RedisClient,
    readonly nodeid: string,
    readonly log: Logger,
    readonly kick: KickFn,
  ) {
    this.#deleteIf = defineScript(client, "saraSessionDeleteIf", 1, DELETE_IF);
    this.#setKey = nodeSessionsKey(nodeid);
  }

  /**
   * Makes (jid, sid) the user's session, on this node; a session it replaces
   * on another node is kicked. Rejects when Redis cannot be reached: then the
   * login must fail.
   */
  register(jid: string, sid: string, transport: string): Promise<void> {
    return this.#serial(jid, async () => {
      const entry: SessionEntry = { node: this.nodeid, sid, transport, since: Date.now() };
      // Listed first: a crash between the two leaves a listed entry that the
      // next start clears, never an unlisted one naming this node.
      await this.client.sadd(this.#setKey, member(jid, sid));
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

  /** Removes (jid, sid) unless a newer session replaced it; retried later if Redis is away. */
  unregister(jid: string, sid: string): Promise<void> {
    return this.#serial(jid, async () => {
      if (this.#mine.get(jid)?.sid === sid) this.#mine.delete(jid);
      try {
        await this.#deleteIf(sessionKey(jid), "sid", sid);
        await this.client.srem(this.#setKey, member(jid, sid));
        if (this.#failed.get(jid) === sid) this.#failed.delete(jid);
      } catch (err) {
        this.#failed.set(jid, sid);
        this.log.warn(`cluster: cannot unregister ${jid}: ${errMsg(err)}`);
      }
    });
  }

  /** The user's registered session, wherever it is. */
  async lookup(jid: string): Promise<SessionEntry | null> {
    return parseEntry(await this.client.get(sessionKey(jid)));
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
        return jid === null ? 0 : this.#deleteIf(sessionKey(jid), "node", this.nodeid);
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
        await this.client.set(sessionKey(jid), JSON.stringify(e), "NX");
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
