// The router's view of the other nodes (Remote), and the cluster-wide
// answers of `emsg_session.counter`, `isonline` and `sessions` (Presence), built on the
// registry, node liveness and the nodes' pub/sub channels.

import { errMsg, type Logger } from "../log.ts";
import { withTimeout } from "../async.ts";
import type { InboxEntry } from "../store/store.ts";
import type { HandOff, NodeMessage } from "./channel.ts";
import type { Sender } from "./sender.ts";
import type { Liveness } from "./liveness.ts";
import type { DeviceEntry, Registry } from "./registry.ts";
import { type Wait, Waiting } from "./waiting.ts";

// How long a blacklist change waits for the owner's node to confirm it (a
// node that died unseen never does).
const APPLY_WAIT_MS = 2000;

// How long a hand-off waits for its answer before the packet is stored
// instead (the receiving node answers within its online grace and one
// commit; one that died unseen never does). Longer would stall a sender to
// a dead node; shorter risks storing a packet the other node also kept (the
// recipient may then get it twice, never lose it). Checked by one sweep,
// not a timer per packet.
const HANDOFF_WAIT_MS = 1000;
const HANDOFF_SWEEP_MS = 250;
// Refused lanes a node remembers (a lane lives as long as packets to one
// recipient are on their way; a minute is far beyond that), and lanes whose
// next packet it expects (one a sender forgot to number never reaches it).
const REFUSED_KEEP_MS = 60_000;
const REFUSED_MAX = 10_000;
const LANES_MAX = 100_000;

let refCounter = 0;

/**
 * Makes `key` the newest entry of `m` (a Map iterates oldest first), then
 * drops the oldest while `m` holds more than `max` or they were last seen
 * over REFUSED_KEEP_MS ago: what other nodes' messages add stays bounded.
 */
function remember<V>(
  m: Map<string, V>,
  key: string,
  v: V,
  seen: (v: V) => number,
  max: number,
  now: number,
): void {
  m.delete(key);
  m.set(key, v);
  for (const [k, old] of m) {
    if (m.size <= max && seen(old) > now - REFUSED_KEEP_MS) break;
    m.delete(k);
  }
}

/** What became of a hand-off: taken, refused (no session there), or lost (no answer in time). */
export type HandOffAnswer = "took" | "refused" | "lost";

/** A hand-off waiting for its answer: where it went, its lane and place there ("gap", "deaf"). */
interface HandOffWait extends Wait<HandOffAnswer> {
  node: string;
  lane: string;
  seq: number;
}

/** What the cluster needs of a session logged in on this node. */
export interface LocalSession {
  readonly sid: string;
  readonly resource: string;
  /** When it started, ms since the epoch. */
  readonly since: number;
  kick(): void;
  setBlocked(jid: string, blocked: boolean): void;
}

/**
 * Which sessions of the user a delivery is for, with multi_login: every one,
 * or that of `resource` (every one when it is gone); or, as a carbon, every
 * one but the sending session `carbon`.
 */
export type DeviceTarget =
  | { resource: string | null; carbon?: undefined }
  | { resource?: undefined; carbon: string };

/** What a node hands the cluster: where arrivals go, and its own sessions. */
export interface ClusterNodeDeps {
  /**
   * A message another node published for a session here (`stored`: in the
   * inbox already; `to`: with multi_login, which sessions of the user).
   */
  arrived(entry: InboxEntry, ack: boolean, stored: boolean, to?: DeviceTarget): Promise<void>;
  /**
   * A packet another node handed off: null when no session here takes it,
   * else settles once it is safe here (rejects: not kept); `stored`: in the
   * inbox already, settles once handed to the session.
   */
  accept(entry: InboxEntry, ack: boolean, stored: boolean): Promise<void> | null;
  /** This node's sessions of `jid` (one at most without multi_login). */
  local(jid: string): readonly LocalSession[];
  /** Sessions logged in on this node. */
  online(): number;
}

/**
 * The router's view of the other nodes (its Remote) and the cluster-wide
 * presence of the RPC, for one node of a cluster.
 */
export class ClusterRemote {
  // Blacklist changes waiting for their "applied" answer, by ref.
  readonly #applying = new Map<string, () => void>();
  // Hand-offs waiting for their "took" answer, by ref, oldest first.
  readonly #handing = new Waiting<HandOffAnswer, HandOffWait>();
  #sweep: ReturnType<typeof setInterval> | undefined;
  // The refs of the hand-offs in each batch still being published, by the batch's answer.
  readonly #inBatch = new WeakMap<Promise<boolean>, string[]>();
  // The answers (to one node) in each batch still being published, by the batch's answer.
  readonly #answersIn = new WeakMap<Promise<boolean>, NodeMessage[]>();
  // Lanes of other nodes ("node/lane") with a refused hand-off: the rest of
  // such a lane is refused too, so what this node took is always a prefix.
  readonly #refused = new Map<string, number>();
  // Numbered lanes of other nodes: the next `q` each may hand off, and when
  // it was last seen (oldest first). A packet out of turn follows a lost one:
  // it and the rest of its lane are dropped (answered with a "gap"), so that
  // the sender gives up on them and hands them over again after the lost one.
  readonly #expected = new Map<string, { next: number; at: number }>();
  // Nodes that handed off to this one, and when last (oldest first, at most
  // REFUSED_MAX): told when it stops listening.
  readonly #peers = new Map<string, number>();

  constructor(
    readonly nodeid: string,
    readonly node: ClusterNodeDeps,
    readonly registry: Registry,
    readonly liveness: Liveness,
    readonly log: Logger,
    readonly sender: Sender,
  ) {}

  /** See Sender.publishConfirms. */
  get publishConfirms(): boolean {
    return this.sender.publishConfirms;
  }

  /** Publishes to other nodes, and those that surely did not arrive (metrics). */
  get published(): { readonly ok: number; readonly failed: number } {
    return this.sender.published;
  }
  /** Messages other nodes published to this one (metrics). */
  received = 0;

  register(jid: string, sid: string, transport: string, resource: string): Promise<void> {
    return this.registry.register(jid, sid, transport, resource);
  }

  unregister(jid: string, sid: string): void {
    // Failures are logged and retried by the registry itself.
    this.registry.unregister(jid, sid).catch(() => {});
  }

  async locate(jid: string): Promise<string | null | undefined> {
    if (this.registry.multi) {
      const found = await this.devices(jid);
      return found && (found[0]?.node ?? null);
    }
    try {
      const e = await this.registry.lookup(jid);
      // An entry naming this node without a local session is a login or
      // logout in progress: the inbox is the place for the message.
      if (e === null || e.node === this.nodeid) return null;
      return await this.liveness.isAlive(e.node) ? e.node : null;
    } catch (err) {
      // Redis away: not known (the router stores the message and tries again).
      this.log.warn(`cluster: cannot locate ${jid}: ${errMsg(err)}`);
      return undefined;
    }
  }

  publish(node: string, entry: InboxEntry, ack: boolean, stored: boolean): Promise<boolean> {
    return this.send(node, { t: "msg", e: entry, a: ack, s: stored });
  }

  handOff(
    node: string,
    entry: InboxEntry,
    lane: string,
    seq: number,
    ack: boolean,
    stored: boolean,
  ): Promise<HandOffAnswer> {
    // Only this node resolves its refs: a counter is unique enough.
    let r!: string;
    const answer = new Promise<HandOffAnswer>((resolve) => {
      r = this.#handing.add({ resolve, since: Date.now(), node, lane, seq });
    });
    this.#sweep ??= setInterval(() => this.#expire(), HANDOFF_SWEEP_MS);
    const h = { o: this.nodeid, r, l: lane, q: seq };
    const sent = this.send(node, { t: "msg", e: entry, a: ack, s: stored, h });
    // The hand-offs of one batch are lost together when it surely did not
    // arrive: one callback per batch, not per packet (they are garbage at load).
    let refs = this.#inBatch.get(sent);
    if (!refs) {
      this.#inBatch.set(sent, refs = []);
      const lost = refs;
      void sent.then((ok) => ok || lost.forEach((ref) => this.#handing.answer(ref, "lost")));
    }
    refs.push(r);
    return answer;
  }

  /** Gives up on hand-offs unanswered for too long; stops sweeping when none is left. */
  #expire(): void {
    this.#handing.expire("lost", Date.now() - HANDOFF_WAIT_MS, (r) => {
      this.log.warn(`cluster: hand-off ${r} unanswered for ${HANDOFF_WAIT_MS} ms`);
    });
    if (this.#handing.size === 0) {
      clearInterval(this.#sweep);
      this.#sweep = undefined;
    }
  }

  /**
   * This node's subscription dropped, or came back after a drop: what was
   * published to it meanwhile is gone. Every hand-off it still waits on is
   * given up at once (stored instead, and handed over again), and the nodes
   * that hand off to it are told to do the same ("deaf"), rather than each
   * waiting HANDOFF_WAIT_MS. One the other node did take may then reach its
   * recipient twice; the session drops the second copy (docs/delivery.md).
   */
  subscriptionGap(): void {
    const n = this.#handing.size;
    this.#handing.expire("lost");
    if (n > 0) this.log.info(`cluster: ${n} hand-offs given up: this node's subscription dropped`);
    const now = Date.now();
    for (const [peer, at] of this.#peers) {
      if (at < now - REFUSED_KEEP_MS) this.#peers.delete(peer);
      else this.#reply(peer, { t: "deaf", o: this.nodeid });
    }
  }

  /** Gives up on every hand-off still waiting (they are stored instead): the node stops. */
  stop(): void {
    this.#handing.expire("lost");
    clearInterval(this.#sweep);
    this.#sweep = undefined;
  }

  /** Takes (or refuses) a hand-off from another node and answers it once that is settled. */
  #accept(e: InboxEntry, ack: boolean, stored: boolean, h: HandOff): void {
    const lane = `${h.o}/${h.l}`;
    const now = Date.now();
    remember(this.#peers, h.o, now, (at) => at, REFUSED_MAX, now);
    if (h.q !== undefined) {
      const due = this.#turn(lane, h.q);
      // Said at once, so that the sender gives up on the lost one and this
      // one now instead of after HANDOFF_WAIT_MS (a subscription on a killed
      // Redis master loses publishes unseen: BENCHMARKS.md, "Failover").
      if (due !== 0) return this.#reply(h.o, { t: "gap", l: h.l, q: due });
    }
    // Refusing the rest of a lane keeps what was taken unstored a prefix;
    // stored packets need not: a login reads the inbox, and takes later ones live.
    const taken = !stored && this.#refused.has(lane) ? null : this.node.accept(e, ack, stored);
    if (taken === null) {
      if (!stored) this.#refuse(lane);
      return this.#reply(h.o, { t: "took", r: h.r, ok: false });
    }
    taken.then(
      () => this.#reply(h.o, { t: "took", r: h.r, ok: true }),
      (err) => {
        this.log.warn(`cluster: cannot keep a message for ${e.user}: ${errMsg(err)}`);
        this.#reply(h.o, { t: "took", r: h.r, ok: false });
      },
    );
  }

  /**
   * Sends an answer to a hand-off (or a "deaf" notice) to `node`. A publish
   * that failed goes once more: the Publisher has moved on to another Redis
   * node by then (one that died with answers on their way would leave the
   * sender waiting HANDOFF_WAIT_MS for each). An answer that arrives twice
   * finds nothing waiting the second time.
   */
  #reply(node: string, m: NodeMessage): void {
    const sent = this.send(node, m);
    // One callback per batch, as for the hand-offs (#inBatch).
    let answers = this.#answersIn.get(sent);
    if (!answers) {
      this.#answersIn.set(sent, answers = []);
      const again = answers;
      void sent.then((ok) => ok || again.forEach((a) => void this.send(node, a)));
    }
    answers.push(m);
  }

  /**
   * 0 when `q` is the packet of `lane` due next (then the one after it is);
   * otherwise the one due, and `q` is dropped.
   */
  #turn(lane: string, q: number): number {
    const now = Date.now();
    const next = this.#expected.get(lane)?.next ?? 1;
    if (q !== next) {
      this.log.warn(
        `cluster: hand-off ${q} of lane ${lane} out of turn (expected ${next}); dropped`,
      );
      return next;
    }
    remember(this.#expected, lane, { next: q + 1, at: now }, (v) => v.at, LANES_MAX, now);
    return 0;
  }

  #refuse(lane: string): void {
    const now = Date.now();
    remember(this.#refused, lane, now, (at) => at, REFUSED_MAX, now);
  }

  /** With multi_login: the sessions of `jid` on other live nodes; undefined when Redis is away. */
  async devices(jid: string): Promise<DeviceEntry[] | undefined> {
    try {
      // Entries naming this node are its own sessions, or a login or logout in progress.
      const all = (await this.registry.devices(jid)).filter((d) => d.node !== this.nodeid);
      const alive = await Promise.all(all.map((d) => this.liveness.isAlive(d.node)));
      return all.filter((_, i) => alive[i]);
    } catch (err) {
      // Not known (the router stored the entry before asking, and tries again).
      this.log.warn(`cluster: cannot list the sessions of ${jid}: ${errMsg(err)}`);
      return undefined;
    }
  }

  /** With multi_login: a stored delivery, or a carbon, for sessions of `entry.user` on `node`. */
  publishTo(node: string, entry: InboxEntry, ack: boolean, to: DeviceTarget): Promise<boolean> {
    if (to.carbon !== undefined) {
      return this.send(node, { t: "msg", e: entry, a: false, s: false, x: to.carbon });
    }
    const m: NodeMessage = { t: "msg", e: entry, a: ack, s: true };
    if (to.resource !== null) m.r = to.resource;
    return this.send(node, m);
  }

  /**
   * Resolves once `node` applied the change (true), or surely did not get it
   * or did not answer in time (false). Waiting matters: the change reaches
   * that node over pub/sub, and a message sent to it (or on it) right after
   * the RPC answered could otherwise overtake it.
   */
  async publishBlocked(node: string, owner: string, jid: string, b: boolean): Promise<boolean> {
    const ref = `${this.nodeid}-${Date.now().toString(36)}-${(refCounter++).toString(36)}`;
    // Listening before the send: the answer may come back before it resolves.
    const applied = new Promise<boolean>((resolve) => this.#applying.set(ref, () => resolve(true)));
    try {
      const from = this.nodeid;
      if (!await this.send(node, { t: "block", owner, jid, b, from, ref })) return false;
      return await withTimeout(APPLY_WAIT_MS, () => applied, () => false);
    } finally {
      this.#applying.delete(ref);
    }
  }

  /** Publishes `m` on `node`'s channel; false when it surely did not arrive (Sender.send). */
  send(node: string, m: NodeMessage): Promise<boolean> {
    return this.sender.send(node, m);
  }

  /** Handles a message another node published for this one; never throws. */
  receive(m: NodeMessage): void {
    switch (m.t) {
      case "msg":
        this.received++;
        if (m.h) return this.#accept(m.e, m.a, m.s, m.h);
        this.node.arrived(m.e, m.a, m.s, this.registry.multi ? targetOf(m) : undefined).catch((
          err,
        ) => this.log.error(`cluster: cannot store a message for ${m.e.user}: ${errMsg(err)}`));
        return;
      case "kick":
        kickHere(this.node, m.jid, m.sid);
        return;
      case "block":
        for (const s of this.node.local(m.owner)) s.setBlocked(m.jid, m.b);
        if (m.from !== undefined && m.ref !== undefined) {
          void this.send(m.from, { t: "applied", ref: m.ref });
        }
        return;
      case "applied":
        this.#applying.get(m.ref)?.();
        return;
      case "took":
        this.#handing.answer(m.r, m.ok ? "took" : "refused");
        return;
      case "gap":
        this.#handing.expireIf("lost", (w) => w.lane === m.l && w.seq >= m.q);
        return;
      case "deaf":
        this.#handing.expireIf("lost", (w) => w.node === m.o);
        return;
    }
  }

  /** One row per live node: this node counts its sessions, the others' come from Redis. */
  async counters(): Promise<{ node: string; count: number }[]> {
    const nodes = await this.liveness.liveNodes();
    return await Promise.all(nodes.map(async (node) => ({
      node,
      count: node === this.nodeid ? this.node.online() : await this.registry.count(node),
    })));
  }

  async isOnline(jid: string): Promise<boolean> {
    if (this.node.local(jid).length > 0) return true;
    if (this.registry.multi) return ((await this.devices(jid))?.length ?? 0) > 0;
    const e = await this.registry.lookup(jid);
    if (e === null || e.node === this.nodeid) return false;
    return await this.liveness.isAlive(e.node);
  }

  /** Kicks the sessions of `jid` (of `resource` only, when not null) on every live node. */
  async kick(jid: string, resource: string | null): Promise<number> {
    const here = this.node.local(jid).filter((s) => resource === null || s.resource === resource);
    for (const s of here) s.kick();
    let there: { node: string; sid: string; resource: string }[];
    if (this.registry.multi) there = await this.devices(jid) ?? [];
    else {
      const e = here.length > 0 ? null : await this.registry.lookup(jid);
      const alive = e !== null && e.node !== this.nodeid && await this.liveness.isAlive(e.node);
      there = alive ? [{ node: e.node, sid: e.sid, resource: e.resource ?? "" }] : [];
    }
    const picked = there.filter((d) => resource === null || d.resource === resource);
    const sent = await Promise.all(
      picked.map((d) => this.send(d.node, { t: "kick", jid, sid: d.sid })),
    );
    return here.length + sent.filter(Boolean).length;
  }

  /** The sessions of `jid` on every live node (`emsg_session.sessions`). */
  async sessions(jid: string): Promise<{ resource: string; node: string; since: number }[]> {
    const here = this.node.local(jid).map((s) => info(s.resource, this.nodeid, s.since));
    if (this.registry.multi) {
      const there = (await this.devices(jid) ?? []).map((d) => info(d.resource, d.node, d.since));
      return [...here, ...there];
    }
    if (here.length > 0) return here;
    const e = await this.registry.lookup(jid);
    if (e === null || e.node === this.nodeid || !(await this.liveness.isAlive(e.node))) return [];
    return [info(e.resource ?? "", e.node, e.since)];
  }
}

/** Kicks this node's session `sid` of `jid` (a login elsewhere, or beyond max_sessions). */
export function kickHere(node: Pick<ClusterNodeDeps, "local">, jid: string, sid: string): void {
  node.local(jid).find((s) => s.sid === sid)?.kick();
}

function info(resource: string, node: string, since: number) {
  return { resource, node, since };
}

/** Which sessions a delivery from another node is for (multi_login). */
function targetOf(m: { r?: string; x?: string }): DeviceTarget {
  return m.x !== undefined ? { carbon: m.x } : { resource: m.r ?? null };
}
