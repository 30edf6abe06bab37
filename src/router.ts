// deliver(): hands an accepted message to its recipient's session on this
// node, to the node holding it, or to the offline store; and keeps the map of
// sessions logged in on this node (registered cluster-wide when there is one).
// With `multi_login` a user may have several sessions, one per resource: see
// docs/multi-login.md.

import type { InboxEntry } from "./store/store.ts";
import type { InboxWriter } from "./store/inbox_writer.ts";
import { Devices } from "./session/devices.ts";
import { StoreError } from "./errors.ts";
import { Prefix } from "./async.ts";

/** What the router needs of a logged-in session. */
export interface Recipient {
  readonly jid: string;
  /** The login's resource ("" without one); with multi_login, one session per resource. */
  readonly resource: string;
  /** Unique across nodes and restarts: a kick from another node names it. */
  readonly sid: string;
  /** When the session started, ms since the epoch. */
  readonly since: number;
  /** Writes (or buffers, during login) one packet. False when `from` is blocked. */
  push(entry: InboxEntry): boolean;
  /**
   * Whether this session showed `entry` already and its user acked it: a
   * copy stored after that (a hand-off whose answer was lost) gets no ack.
   */
  acked(entry: InboxEntry): boolean;
  /** Replaced by a newer login of the same user (or, with multi_login, resource). */
  kick(): void;
  /** The user blocked (or unblocked) `jid` (docs/protocol.md §10). */
  setBlocked(jid: string, blocked: boolean): void;
}

/** Several sessions per user (the `multi_login` and `max_sessions` keys). */
export interface MultiLogin {
  maxSessions: number;
}

/**
 * The sessions logged in on this node, by user. Its own object, so that the
 * router and the cluster (which hands arrivals and kicks to them) both read
 * it without holding each other. With multi_login (`multi`) a user may have
 * several, kept in `devices`; else one, in a plain map.
 */
export class LocalSessions {
  readonly #map = new Map<string, Recipient>();
  readonly devices: Devices<Recipient> | null;

  constructor(readonly multi: MultiLogin | null = null) {
    this.devices = multi ? new Devices() : null;
  }

  /** Sessions logged in here. */
  get size(): number {
    return this.devices ? this.devices.sessions : this.#map.size;
  }

  /** Users with a session here. */
  get users(): number {
    return this.devices ? this.devices.users : this.#map.size;
  }

  /** A session of `jid` (with multi_login: its oldest). */
  get(jid: string): Recipient | undefined {
    return this.devices ? this.devices.of(jid)?.[0] : this.#map.get(jid);
  }

  /** Every session of `jid` here. */
  all(jid: string): readonly Recipient[] {
    if (this.devices) return this.devices.of(jid) ?? [];
    const s = this.#map.get(jid);
    return s ? [s] : [];
  }

  /** Single login only: makes `s` its user's session. */
  set(s: Recipient): void {
    this.#map.set(s.jid, s);
  }

  /** Removes `s` unless a newer login already replaced it. */
  delete(s: Recipient): void {
    if (this.devices) this.devices.detach(s);
    else if (this.#map.get(s.jid) === s) this.#map.delete(s.jid);
  }
}

/** Other nodes of a cluster, reached through the shared store (Redis). */
export interface Remote {
  /**
   * True when a successful `publish` proves that the node's listener got it
   * (one Redis counts subscribers; a Redis Cluster counts only those of the
   * server that took the PUBLISH).
   */
  readonly publishConfirms: boolean;
  /**
   * Registers this node's session of `jid` (with multi_login: `jid/resource`);
   * an older one on another node is kicked (with multi_login: the one of the
   * same resource, and the oldest beyond max_sessions, wherever they are).
   * Rejects when the registry cannot be reached.
   */
  register(jid: string, sid: string, transport: string, resource: string): Promise<void>;
  /** Removes the registration if it still names `sid`; never rejects. */
  unregister(jid: string, sid: string): void;
  /**
   * With multi_login: `jid`'s sessions on other live nodes; undefined when
   * that cannot be known now (Redis away). Never rejects.
   */
  devices(jid: string): Promise<RemoteDevice[] | undefined>;
  /**
   * With multi_login: sends the stored entry to `node`, for the session of
   * `to.resource` there (null: every session of the user there); a `carbon`
   * target names the sending session instead: a copy for the sender's other
   * sessions, never stored. False when it surely did not arrive.
   */
  publishTo(node: string, entry: InboxEntry, ack: boolean, to: Target): Promise<boolean>;
  /**
   * Node holding `jid`'s session if it is another, live node; null otherwise;
   * undefined when that cannot be known now (Redis away). Never rejects.
   */
  locate(jid: string): Promise<string | null | undefined>;
  /**
   * Sends the entry to `jid`'s session on `node`; `stored`: it is in the inbox
   * already. False when it surely did not arrive (never rejects).
   */
  publish(node: string, entry: InboxEntry, ack: boolean, stored: boolean): Promise<boolean>;
  /**
   * Hands a packet to `jid`'s session on `node` and waits for the answer:
   * "took" once that node holds it safely (unstored: acked by its recipient,
   * or in the inbox; `stored`, already in the inbox: handed to the session);
   * "refused" when no session there took it (or `lane` had a packet refused
   * there before); "lost" when it surely did not arrive or no answer came in
   * time. `seq` numbers the packets of `lane` from 1: the receiving node
   * takes only a gap-free prefix of a lane, so a lost packet is never
   * overtaken by a later one. Never rejects.
   */
  handOff(
    node: string,
    entry: InboxEntry,
    lane: string,
    seq: number,
    ack: boolean,
    stored: boolean,
  ): Promise<HandOffResult>;
  /**
   * Tells `node` that `owner` blocked or unblocked `jid`; resolves once it is
   * in force there, or when that cannot be known (never rejects).
   */
  publishBlocked(node: string, owner: string, jid: string, blocked: boolean): Promise<boolean>;
}

/** What became of a hand-off (Remote.handOff). */
export type HandOffResult = "took" | "refused" | "lost";

/** A session of a user on another node, as the cluster registry lists it. */
export interface RemoteDevice {
  resource: string;
  node: string;
  sid: string;
  since: number;
}

/** Which sessions of a node a cross-node delivery is for (multi_login). */
export type Target =
  /** Every session of the user, or the one of `resource` (falling back to every one). */
  | { resource: string | null; carbon?: undefined }
  /** A carbon: every session of the user but `carbon` (the sending session's sid). */
  | { resource?: undefined; carbon: string };

/** A user's session anywhere, as `emsg_session.sessions` lists it. */
export interface SessionInfo {
  resource: string;
  node: string;
  since: number;
}

/** Called when a message was stored for a recipient who is not online. */
export type OfflineHook = (entry: InboxEntry, total: number) => void;

/** What a router works with. */
export interface RouterDeps {
  readonly local: LocalSessions;
  readonly writer: InboxWriter;
  /** The other nodes; null on a standalone node. */
  readonly remote: Remote | null;
  readonly onOffline: OfflineHook;
}

/**
 * What happens to a message another node published for a session here
 * (`stored`: it is in the inbox already): handed to the session, or, with
 * the session gone, stored if it was not. The cluster calls it; it needs no
 * router, so the cluster is built before the router.
 */
export function arrivals(
  local: LocalSessions,
  writer: InboxWriter,
  onOffline: OfflineHook,
): (entry: InboxEntry, ack: boolean, stored: boolean, to?: Target) => Promise<void> {
  return async (entry, ack, stored, to) => {
    if (local.devices && to) return arrivedDevices(local.devices, writer, entry, ack, stored, to);
    const s = local.get(entry.user);
    if (!s) {
      if (!stored) storedOffline(onOffline, entry, await writer.append(entry));
      return;
    }
    if (stored) pushStored(s, writer, entry, ack);
    else s.push(entry);
  };
}

/** Hands a stored entry to a session here. */
function pushStored(s: Recipient, writer: InboxWriter, entry: InboxEntry, ack: boolean): void {
  // Shown and acked before it was stored (its live hand-off's answer was
  // lost, so the sending node stored it too), done once written (no ack will
  // come), or blocked: out of the inbox, or it would come again at the next
  // login (docs/delivery.md, "Duplicate suppression").
  if (s.acked(entry) || !s.push(entry) || !ack) writer.remove(entry.user, entry.id);
}

/** multi_login: a delivery (always stored) or a carbon (never) for sessions here. */
function arrivedDevices(
  d: Devices<Recipient>,
  writer: InboxWriter,
  entry: InboxEntry,
  ack: boolean,
  stored: boolean,
  to: Target,
): void {
  const all = d.of(entry.user) ?? [];
  if (to.carbon !== undefined) {
    pushAll(all.filter((s) => s.sid !== to.carbon), entry);
    return;
  }
  const one = to.resource === null ? undefined : d.find(entry.user, to.resource);
  const delivered = pushAll(one ? [one] : all, entry);
  // Gone meanwhile: it stays stored for the next login.
  if (all.length > 0 && stored && (!delivered || !ack)) writer.remove(entry.user, entry.id);
}

/** Hands `entry` to each of `targets`; false when every one refused it (blocked). */
function pushAll(targets: readonly Recipient[], entry: InboxEntry): boolean {
  let delivered = false;
  for (const s of targets) if (s.push(entry)) delivered = true;
  return delivered;
}

function storedOffline(onOffline: OfflineHook, entry: InboxEntry, depth: number | null): void {
  if (depth) onOffline(entry, depth);
}

/**
 * What happens to a packet another node handed off (Remote.handOff): null
 * when no session here takes it; otherwise it is delivered at once. Unstored,
 * the promise settles once it is safe here (acked by the recipient, or
 * written after the online grace), or rejects when it could not be written;
 * `stored` (in the inbox already), at once, as for a published arrival.
 */
export function handoffs(
  local: LocalSessions,
  writer: InboxWriter,
): (entry: InboxEntry, ack: boolean, stored: boolean) => Promise<void> | null {
  return (entry, ack, stored) => {
    const s = local.get(entry.user);
    if (!s) return null;
    if (stored) {
      pushStored(s, writer, entry, ack);
      return Promise.resolve();
    }
    // Acked already (a retry): safe. Blocked: neither delivered nor stored,
    // and the sender is not told.
    if (s.acked(entry) || !s.push(entry)) return Promise.resolve();
    return writer.append(entry, true).then(noop);
  };
}

const noop = () => {};
const DONE: Promise<void> = Promise.resolve();

/** Deliveries to one user through other nodes that have not been handed over yet. */
interface Lane {
  /** Unique on this node: the receiving node refuses the rest of a lane after one refusal. */
  id: string;
  /** Started and not yet published (or found offline). */
  busy: number;
  /** Settles once the unstored packet on its way was published or stored. */
  direct: Promise<void> | null;
  /** Hand-offs (Remote.handOff) started and not settled; they all go to `node`. */
  handing: number;
  node: string | null;
  /**
   * The unstored hand-offs in the order they started; one settles once it
   * was taken, or stored instead (its write on its way), or pushed to a
   * session here.
   */
  handed: Prefix;
  /** A hand-off was refused: the lane's later packets take the stored path. */
  refused: boolean;
  /** Every packet in the order it entered the lane (`last`: how many did); settled once done. */
  entered: Prefix;
  /** Places of the packets on their way: neither done nor queued. */
  open: Set<number>;
  /** Last `seq` of the unstored hand-offs on `id`. */
  seq: number;
  /** Receiving lane of the stored packets' hand-overs, and its last `seq`. */
  storedId: string;
  storedSeq: number;
  /** Stored hand-overs unanswered on `storedId`, and on the receiving lanes it replaced. */
  storedOut: number;
  replacedOut: number;
  /** Settles once the latest stored packet was sent or queued (they leave in lane order). */
  decided: Promise<void>;
  /** Settles once the latest unstored hand-off was sent (or found it cannot be). */
  handTurn: Promise<void>;
  /** Unstored hand-offs waiting for `handTurn` (their own lookup, or an earlier one's). */
  turns: number;
  /**
   * Settles once the latest packet for a session here (one waiting for the
   * lane's earlier packets) was pushed, or stored instead: the lane's later
   * stored packets go behind it.
   */
  here: Promise<void> | null;
  /**
   * Per sender, the first of its packets here that could not be stored, and
   * the last packet that had entered the lane by then: the sender's packets
   * in between fail too (Router#append).
   */
  failed: Map<string, { after: number; upTo: number }> | null;
  /**
   * Stored packets whose hand-over failed, in lane order: retried until
   * delivered or their recipient is offline. While any waits, the lane's
   * later packets are stored and queued behind it instead of sent.
   */
  queued: Queued[];
  /** A retry is scheduled or running. */
  retrying: boolean;
}

/** A stored packet waiting in its lane for another hand-over. */
interface Queued {
  entry: InboxEntry;
  ack: boolean;
  depth: number | null;
  /** Its place in the lane (Lane.entered). */
  order: number;
  /** Lets the lane go on past it: delivered, or its recipient found offline. */
  settle: () => void;
}

/**
 * What one retry left (Router#retryLater): nothing, work it got on with, or
 * work it got nothing of through.
 */
type Attempt = "done" | "again" | "stuck";

/**
 * multi_login in a cluster: a stored delivery whose publish to another node
 * failed, or whose recipient's sessions could not be listed (Redis away),
 * waiting in its user's queue to be published again (Router#fanOut).
 */
interface FanOut {
  entry: InboxEntry;
  ack: boolean;
  depth: number | null;
  /** The session it was sent to (every one when that is not online). */
  resource: string | undefined;
  /** The nodes it still has to reach; null: every node holding a session of the user. */
  nodes: Set<string> | null;
  /** A session here or elsewhere got it: not left to the offline hook. */
  reached: boolean;
}

/** A packet's hold on its lane: `keep()` hands the release to a queued retry. */
interface Slot {
  readonly order: number;
  /** Takes over the release of the packet's place in the lane. */
  keep(): () => void;
}

// Retries of a lane's queued packets: the first soon after the failure, then
// backing off, but never more than RETRY_MAX_MS apart, so that a packet is
// delivered well within 2 s of Redis answering again (docs/delivery.md).
const RETRY_FIRST_MS = 50;
const RETRY_MAX_MS = 500;
// Packets of one lane sent per retry (the rest follow once they are taken).
const RETRY_BATCH = 256;

// Lane ids stay unique across restarts of this node: a receiving node may
// still remember a refused lane of this node's earlier life.
const LANE_EPOCH = Date.now().toString(36);

// A lane that ended with every hand-off taken leaves its node behind as the
// next lane's start, for this long after the last one taken: without it each
// lane (one per window of a sender, at load) began with a registry lookup.
// A stale one costs no order or safety: the node refuses, and the packet takes
// the stored path, which looks up (docs/architecture.md, "Across nodes").
const HINT_MS = 1000;
const HINTS_MAX = 100_000;
let laneSeq = 0;

function newLaneId(): string {
  return `${LANE_EPOCH}.${(++laneSeq).toString(36)}`;
}

/**
 * Whether a packet joining `lane` is handed off unstored: it asks for acks,
 * nothing of the lane was refused, and everything else on its way is a
 * hand-off too (the receiving node keeps their order).
 */
function handsOff(lane: Lane, ack: boolean): boolean {
  return ack && !lane.refused && lane.busy === lane.handing + 1;
}

/** Whether `lane` hands off without a lookup: it knows its node and none earlier is looking up. */
function knowsNode(lane: Lane): lane is Lane & { node: string } {
  return lane.node !== null && lane.turns === 0;
}

/** Routes messages; one per node. */
export class Router {
  readonly #local: LocalSessions;
  // Per recipient, so that the two remote paths never overtake each other.
  readonly #lanes = new Map<string, Lane>();
  readonly writer: InboxWriter;
  readonly remote: Remote | null;
  readonly #onOffline: OfflineHook;
  // With multi_login on a cluster, per user: the last delivery still waiting
  // for its turn to hand over (see #deliverCluster).
  readonly #turns = new Map<string, Promise<void>>();
  // With multi_login on a cluster, per user: the deliveries whose fan-out to
  // other nodes waits for a retry, in order (#fanOutLater).
  readonly #fanOuts = new Map<string, FanOut[]>();
  // Per recipient: the node its last lane handed off to, and until when that is reused.
  readonly #hints = new Map<string, { node: string; until: number }>();
  // Scheduled retries; cleared by stop().
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  #stopped = false;
  /** Packets sent again after a failed hand-over or fan-out (metrics). */
  retried = 0;

  constructor(deps: RouterDeps) {
    this.#local = deps.local;
    this.writer = deps.writer;
    this.remote = deps.remote;
    this.#onOffline = deps.onOffline;
  }

  /** Sessions logged in on this node. */
  get online(): number {
    return this.#local.size;
  }

  /** Users with a session on this node. */
  get users(): number {
    return this.#local.users;
  }

  /** multi_login is on: several sessions per user. */
  get multi(): boolean {
    return this.#local.devices !== null;
  }

  /** A local session of `jid` (with multi_login: its oldest), if any. */
  local(jid: string): Recipient | undefined {
    return this.#local.get(jid);
  }

  /** Every session of `jid` on this node. */
  sessionsHere(jid: string): readonly Recipient[] {
    return this.#local.all(jid);
  }

  /**
   * Makes `s` the session of its user: here at once (kicking an older local
   * one, before anything is awaited), then in the cluster registry. The login
   * reads the inbox only after this resolves: a message written before the
   * registration is in that read, one sent after it is published to `s`.
   * Rejects when the registry cannot be reached.
   */
  async attach(s: Recipient, transport: string): Promise<void> {
    const d = this.#local.devices;
    if (d) return await this.#attachDevice(d, s, transport);
    const old = this.#local.get(s.jid);
    this.#local.set(s);
    if (old && old !== s) old.kick();
    if (!this.remote) return;
    await this.remote.register(s.jid, s.sid, transport, s.resource);
    // Closed or replaced while registering: its entry must not outlive it.
    if (this.#local.get(s.jid) !== s) this.remote.unregister(s.jid, s.sid);
  }

  /**
   * multi_login: replaces only the session of the same resource; on one node
   * the oldest beyond max_sessions goes here, in a cluster the registry picks
   * the oldest across nodes.
   */
  async #attachDevice(d: Devices<Recipient>, s: Recipient, transport: string): Promise<void> {
    const max = this.remote ? null : this.#local.multi!.maxSessions;
    for (const old of d.attach(s, max)) old.kick();
    if (!this.remote) return;
    await this.remote.register(deviceJid(s), s.sid, transport, s.resource);
    if (!d.has(s)) this.remote.unregister(deviceJid(s), s.sid);
  }

  /** Forgets `s` unless a newer login already replaced it. */
  detach(s: Recipient): void {
    this.#local.delete(s);
    this.remote?.unregister(this.#local.devices ? deviceJid(s) : s.jid, s.sid);
  }

  /**
   * Delivers one message. Resolves once it is safe (written to the inbox, or
   * acked by its recipient); a packet without `ack` is done once handed to an
   * online session. Rejects with StoreError when it cannot be kept.
   * `resource` (multi_login only): for that session of the recipient, or for
   * every one when that session is not online.
   */
  deliver(entry: InboxEntry, ack: boolean, resource?: string): Promise<unknown> {
    const d = this.#local.devices;
    if (d) return this.#deliverDevices(d, entry, ack, resource);
    const s = this.#local.get(entry.user);
    // With packets to this user still on their way through other nodes
    // (the user just moved here), this one goes behind them.
    if (s && !this.#lanes.has(entry.user)) return this.#deliverHere(s, entry, ack);
    if (this.remote) return this.#deliverRemote(this.remote, entry, ack);
    return this.writer.append(entry).then((depth) => this.#stored(entry, depth));
  }

  // Not async: the usual delivery costs the writer's promise and no other.
  #deliverHere(s: Recipient, entry: InboxEntry, ack: boolean): Promise<unknown> {
    // Acked already (a retry): safe, and a write would wait for an ack that
    // never comes. Blocked: neither delivered nor stored, and the sender is not told.
    if (s.acked(entry) || !s.push(entry) || !ack) return DONE;
    return this.writer.append(entry, "local");
  }

  #deliverRemote(remote: Remote, entry: InboxEntry, ack: boolean): Promise<void> {
    const lane = this.#join(entry.user);
    const order = lane.entered.take();
    lane.open.add(order);
    // The usual case at load, as #inLane and #handOff would take it (the
    // recipient elsewhere, every packet of the lane handed off there, to a
    // node known without a lookup): handed off at once, with one callback
    // for the answer instead of their async functions and promises, which
    // lived until it came.
    if (
      lane.direct === null && !this.#local.get(entry.user) && handsOff(lane, ack) &&
      knowsNode(lane)
    ) {
      lane.handing++;
      const place = lane.handed.take();
      const answer = remote.handOff(lane.node, entry, lane.id, ++lane.seq, true, false);
      return answer.then((r) => {
        if (r !== "took") return this.#refusedNow(remote, entry, lane, order, place);
        lane.handed.settle(place);
        lane.handing--;
        this.#leave(entry.user, lane);
        lane.open.delete(order);
        lane.entered.settle(order);
      });
    }
    return this.#laned(remote, entry, ack, lane, order);
  }

  /** A hand-off of #deliverRemote's usual case that was not taken: it takes the stored path. */
  async #refusedNow(
    remote: Remote,
    entry: InboxEntry,
    lane: Lane,
    order: number,
    place: number,
  ): Promise<void> {
    const slot = this.#slot(lane, order);
    try {
      try {
        await this.#notTaken(remote, entry, lane, place, slot);
      } finally {
        lane.handed.settle(place);
        lane.handing--;
      }
    } finally {
      slot.release();
    }
  }

  async #laned(remote: Remote, entry: InboxEntry, ack: boolean, lane: Lane, order: number) {
    const slot = this.#slot(lane, order);
    try {
      return await this.#inLane(remote, entry, ack, lane, slot);
    } finally {
      slot.release();
    }
  }

  /** A packet's hold on its place in `lane`, released once done unless a retry kept it. */
  #slot(lane: Lane, order: number): Slot & { release(): void } {
    let kept = false;
    const done = () => lane.entered.settle(order);
    return {
      order,
      keep: () => {
        kept = true;
        lane.open.delete(order);
        return done;
      },
      release: () => {
        lane.open.delete(order);
        if (!kept) done();
      },
    };
  }

  async #inLane(
    remote: Remote,
    entry: InboxEntry,
    ack: boolean,
    lane: Lane,
    slot: Slot,
  ) {
    // Taken now: a packet for a session here that entered the lane later
    // waits for this one, so this one must not wait for it.
    const hereBefore = lane.here;
    // The recipient moved here while packets to it were on their way
    // through other nodes: delivered here once they all settled.
    if (this.#local.get(entry.user)) {
      return await this.#hereInLane(remote, entry, ack, lane, slot);
    }
    // Behind an unstored packet still finding its way: it goes first.
    if (lane.direct) await lane.direct;
    // Handed off unstored while everything else on its way is too: the
    // receiving node keeps the lane's order, and its online grace spares
    // the store write of a packet acked in time, as on one node.
    if (handsOff(lane, ack)) {
      lane.handing++;
      const place = lane.handed.take();
      const placed = () => lane.handed.settle(place);
      const done = this.#handOff(remote, entry, lane, place, slot);
      done.then(placed, placed);
      let took = false;
      try {
        took = await done;
      } finally {
        // Together: a packet joining in between must see the lane as it is.
        lane.handing--;
        if (took) this.#leave(entry.user, lane);
      }
      return;
    }
    // Unstored only when nothing else to this user is on its way: the
    // stored path takes its place in the inbox at once, the direct one only
    // after a lookup, so mixing them would reorder one sender's packets.
    if (!ack && remote.publishConfirms && lane.busy === 1) {
      const done = this.#direct(remote, entry, lane, slot);
      lane.direct = done.then(noop, noop).then(() => {
        lane.direct = null;
      });
      return await done;
    }
    // Stored before the recipient is looked up: a login that registers
    // after the lookup reads the inbox after the write, so nothing slips
    // between; and the recipient's ack can never overtake the write. A
    // packet without ack is stored too when a publish cannot be confirmed
    // (a node may die unseen): the receiving node deletes it once written.
    // Hand-offs before it settle first, so that a refused one is stored before it.
    const handed = lane.handed.until(lane.handed.last);
    if (handed) await handed;
    if (hereBefore) await hereBefore;
    const depth = await this.#append(entry, lane, slot.order);
    // Acked only once handed over (or queued for a retry, see #handOver):
    // if this node dies between the write and the hand-over, the sender
    // resends, the retry is routed again and reaches an online recipient
    // before newer messages, instead of waiting in the inbox until its next
    // login (out of order).
    await this.#handOver(remote, entry, ack, depth, lane, slot);
  }

  /**
   * A packet for a session here, behind the lane's earlier packets (still
   * on their way through other nodes). The session is looked up again once
   * they settled: the one seen on entry may have closed while it waited (a
   * packet pushed to a closed session would wait in the inbox for the next
   * login, behind the lane's later packets); gone, the packet takes the
   * stored path in its place.
   */
  async #hereInLane(
    remote: Remote,
    entry: InboxEntry,
    ack: boolean,
    lane: Lane,
    slot: Slot,
  ): Promise<void> {
    let placed!: () => void;
    const mine = new Promise<void>((resolve) => placed = resolve);
    lane.here = mine;
    const done = () => {
      placed();
      if (lane.here === mine) lane.here = null;
    };
    await lane.entered.until(slot.order - 1);
    await this.#hereOrStored(remote, entry, ack, lane, slot, done);
  }

  /**
   * Pushes `entry` to its session here if there is one (and no earlier packet
   * of its sender in the lane failed), else writes it and hands it over.
   * `placed` is called once it is pushed or its write is on its way: the
   * lane's later packets go on then (the writer keeps a user's entries in
   * order, and #handOver decides in call order), not once it is handed over,
   * since one round trip per packet would pile up in a lane refused during a
   * failover.
   */
  async #hereOrStored(
    remote: Remote,
    entry: InboxEntry,
    ack: boolean,
    lane: Lane,
    slot: Slot,
    placed: () => void,
  ): Promise<void> {
    const here = this.#local.get(entry.user);
    if (here && !this.#mustFail(entry, lane, slot.order)) {
      this.#leave(entry.user, lane);
      const safe = this.#deliverHere(here, entry, ack); // pushed at once
      placed();
      await safe;
      return;
    }
    const appended = this.#append(entry, lane, slot.order);
    placed();
    await this.#handOver(remote, entry, ack, await appended, lane, slot);
  }

  /** A packet without ack, published without a store write when its recipient is online. */
  async #direct(remote: Remote, entry: InboxEntry, lane: Lane, slot: Slot): Promise<void> {
    const node = await remote.locate(entry.user);
    if (node && await remote.publish(node, entry, false, false)) {
      return this.#leave(entry.user, lane);
    }
    const depth = await this.#append(entry, lane, slot.order);
    if (node === null) {
      this.#notElsewhere(entry, false, depth);
      return this.#leave(entry.user, lane);
    }
    // Redis away, or the publish failed: its recipient is still online somewhere.
    this.#enqueue(remote, lane, slot, { entry, ack: false, depth });
  }

  /**
   * A hand-off to the node holding the recipient; refused (or found
   * offline, or elsewhere than the lane's earlier hand-offs), it takes the
   * stored path behind `before`, the hand-offs started earlier.
   */
  async #handOff(
    remote: Remote,
    entry: InboxEntry,
    lane: Lane,
    place: number,
    slot: Slot,
  ): Promise<boolean> {
    // Where the lane's packets already go, no lookup: a recipient gone from
    // there refuses, and the packet takes the stored path, which looks up.
    // Sent in lane order: one that needs no lookup waits for the earlier
    // ones still looking up.
    let answer: Promise<HandOffResult> | null;
    if (knowsNode(lane)) {
      // Nothing earlier is still looking up: out at once (the usual case at load).
      answer = remote.handOff(lane.node, entry, lane.id, ++lane.seq, true, false);
    } else {
      lane.turns++;
      const prev = lane.handTurn;
      let sent!: () => void;
      lane.handTurn = new Promise<void>((resolve) => sent = resolve);
      const node = lane.node ?? await remote.locate(entry.user) ?? null;
      await prev;
      lane.node ??= node;
      // Not when an earlier packet of the lane, whose turn came first, was
      // not handed off (its lookup failed or found no node, Redis away during
      // a failover): it takes the stored path, and this one, handed off now
      // (a later lookup may find the node again), would reach the recipient
      // first (BENCHMARKS.md, "Failover").
      if (node !== null && node === lane.node && !lane.refused) {
        answer = remote.handOff(node, entry, lane.id, ++lane.seq, true, false);
      } else {
        lane.refused = true; // for the turns behind this one, before they run
        answer = null;
      }
      lane.turns--;
      sent();
    }
    if (answer && await answer === "took") return true; // the caller leaves the lane
    await this.#notTaken(remote, entry, lane, place, slot);
    return false;
  }

  /**
   * The unstored hand-off at `place` of the lane was refused or lost: the
   * lane's later packets take the stored path, and this one does, behind
   * the hand-offs started before it.
   */
  async #notTaken(remote: Remote, entry: InboxEntry, lane: Lane, place: number, slot: Slot) {
    lane.refused = true;
    const before = lane.handed.until(place - 1);
    if (before) await before;
    await this.#hereOrStored(remote, entry, true, lane, slot, () => lane.handed.settle(place));
  }

  /**
   * Writes a lane's packet to the inbox; a failure leaves the lane. Fails
   * without writing when an earlier packet of the same sender in this lane
   * could not be written while this one was already on its way: written
   * now, it would be ahead of that one, which its sender sends again only
   * once told (docs/protocol.md §12, "After a store_error"; the sender's
   * session refuses what comes after the notice).
   */
  async #append(entry: InboxEntry, lane: Lane, order: number): Promise<number | null> {
    try {
      if (this.#mustFail(entry, lane, order)) {
        throw new StoreError("an earlier message to this recipient could not be stored");
      }
      try {
        return await this.writer.append(entry);
      } catch (err) {
        const f = (lane.failed ??= new Map()).get(entry.from);
        if (!f || order > f.upTo) {
          lane.failed.set(entry.from, { after: order, upTo: lane.entered.last });
        }
        throw err;
      }
    } catch (err) {
      this.#leave(entry.user, lane);
      throw err;
    }
  }

  /** Whether `entry` (at `order` in `lane`) follows a packet of its sender that failed (#append). */
  #mustFail(entry: InboxEntry, lane: Lane, order: number): boolean {
    const f = lane.failed?.get(entry.from);
    return f !== undefined && order > f.after && order <= f.upTo;
  }

  #join(user: string): Lane {
    let lane = this.#lanes.get(user);
    if (!lane) {
      lane = {
        id: newLaneId(),
        busy: 0,
        direct: null,
        handing: 0,
        node: this.#hint(user),
        handed: new Prefix(),
        refused: false,
        entered: new Prefix(),
        open: new Set(),
        seq: 0,
        storedId: newLaneId(),
        storedSeq: 0,
        storedOut: 0,
        replacedOut: 0,
        decided: DONE,
        handTurn: DONE,
        turns: 0,
        here: null,
        failed: null,
        queued: [],
        retrying: false,
      };
      this.#lanes.set(user, lane);
    }
    lane.busy++;
    return lane;
  }

  #leave(user: string, lane: Lane): void {
    if (--lane.busy !== 0 || this.#lanes.get(user) !== lane) return;
    this.#lanes.delete(user);
    // Every hand-off of the lane was taken there (none refused or lost).
    if (lane.node === null || lane.refused || lane.seq === 0) return;
    this.#hints.delete(user);
    this.#hints.set(user, { node: lane.node, until: Date.now() + HINT_MS });
    if (this.#hints.size > HINTS_MAX) this.#hints.delete(this.#hints.keys().next().value!);
  }

  /** The node `user`'s last lane handed off to, while it may be reused. */
  #hint(user: string): string | null {
    const h = this.#hints.get(user);
    if (h === undefined) return null;
    this.#hints.delete(user);
    return h.until > Date.now() ? h.node : null;
  }

  /**
   * Hands a stored packet to its recipient's node, in lane order; done when
   * taken there, or when the recipient is offline. Otherwise (Redis away,
   * the node did not answer, it died, the liveness view was wrong) the
   * packet is queued in its lane for a retry, and resolves: it is safe in
   * the inbox, and the packets after it wait behind it.
   */
  async #handOver(
    remote: Remote,
    entry: InboxEntry,
    ack: boolean,
    depth: number | null,
    lane: Lane,
    slot: Slot,
  ): Promise<void> {
    const queue = () => this.#enqueue(remote, lane, slot, { entry, ack, depth });
    if (this.#behind(lane)) return queue();
    const prev = lane.decided;
    let decided!: () => void;
    lane.decided = new Promise<void>((resolve) => decided = resolve);
    const node = await remote.locate(entry.user);
    await prev;
    if (this.#behind(lane) || node === undefined) {
      decided();
      return queue();
    }
    if (node === null) {
      decided();
      this.#notElsewhere(entry, ack, depth);
      return this.#leave(entry.user, lane);
    }
    const id = lane.storedId;
    const answer = remote.handOff(node, entry, id, ++lane.storedSeq, ack, true);
    lane.storedOut++;
    decided();
    const r = await answer;
    if (lane.storedId === id) lane.storedOut--;
    else lane.replacedOut--;
    if (r === "lost") {
      // The receiving node drops the rest of that lane (a gap): go on on a
      // fresh one once the hand-overs still unanswered on it are settled.
      if (lane.storedId === id) {
        [lane.storedId, lane.storedSeq] = [newLaneId(), 0];
        lane.replacedOut += lane.storedOut;
        lane.storedOut = 0;
      }
      return queue();
    }
    if (r === "refused") this.#notElsewhere(entry, ack, depth);
    this.#leave(entry.user, lane);
  }

  /**
   * Whether a stored packet must queue behind the lane's earlier ones: some
   * wait for a retry, or were handed over on a receiving lane that lost one
   * of them and are not answered yet. The receiving node drops those (they
   * follow a gap), so they will be retried; handed over on a fresh lane
   * meanwhile, this packet would be taken before them (BENCHMARKS.md,
   * "Failover").
   */
  #behind(lane: Lane): boolean {
    return lane.queued.length > 0 || lane.replacedOut > 0;
  }

  /**
   * A stored packet that no other node holds a session for: pushed to its
   * recipient's session if one logged in here meanwhile, else left to the
   * next login. Pushed even though that login read the inbox: the read may
   * have come before this packet's write (then nothing else would deliver
   * it, and the lane's later packets would overtake it), and a session drops
   * a packet it already showed (docs/delivery.md, "Duplicate suppression").
   */
  #notElsewhere(entry: InboxEntry, ack: boolean, depth: number | null): void {
    const here = this.#local.get(entry.user);
    if (here) pushStored(here, this.writer, entry, ack);
    else this.#stored(entry, depth);
  }

  /** Queues a stored packet in its lane's retry, in lane order. */
  #enqueue(remote: Remote, lane: Lane, slot: Slot, p: Omit<Queued, "order" | "settle">): void {
    const release = slot.keep();
    const q: Queued = {
      ...p,
      order: slot.order,
      settle: () => {
        release();
        this.#leave(p.entry.user, lane);
      },
    };
    let i = lane.queued.length;
    while (i > 0 && lane.queued[i - 1]!.order > q.order) i--;
    lane.queued.splice(i, 0, q);
    if (!lane.retrying) {
      lane.retrying = true;
      this.#retryLater(() => this.#retry(remote, p.entry.user, lane));
    }
  }

  /**
   * Runs `attempt` RETRY_FIRST_MS from now, and again while it leaves work:
   * soon after one that got on, doubling the wait up to RETRY_MAX_MS after
   * one that got nothing through (Redis still away).
   */
  #retryLater(attempt: () => Promise<Attempt>, wait = RETRY_FIRST_MS): void {
    this.#later(wait, async () => {
      const a = await attempt();
      if (a === "done") return;
      this.#retryLater(attempt, a === "stuck" ? Math.min(wait * 2, RETRY_MAX_MS) : RETRY_FIRST_MS);
    });
  }

  #later(ms: number, f: () => void): void {
    if (this.#stopped) return;
    const t = setTimeout(() => {
      this.#timers.delete(t);
      f();
    }, ms);
    this.#timers.add(t);
  }

  /**
   * One retry of a lane's queued packets: to the session if it moved here,
   * else located again and handed over, in order. What is left (no answer,
   * Redis still away) is tried again (#retryLater).
   */
  async #retry(remote: Remote, user: string, lane: Lane): Promise<Attempt> {
    // Only once no earlier packet of the lane is on its way (being stored,
    // looked up, handed over): it may yet be queued in front of these.
    let stuck = false;
    const batch = lane.queued.slice(0, RETRY_BATCH);
    const last = batch.at(-1)!.order;
    if (![...lane.open].some((o) => o < last)) {
      this.retried += batch.length;
      const taken = await this.#redeliver(remote, user, batch);
      const done = new Set(batch.slice(0, taken));
      lane.queued = lane.queued.filter((q) => !done.has(q));
      for (const q of done) q.settle();
      stuck = taken === 0;
    }
    if (lane.queued.length === 0) {
      lane.retrying = false;
      return "done";
    }
    return stuck ? "stuck" : "again";
  }

  /** Hands `batch` (stored, in order) over again; resolves to how many of its head are done. */
  async #redeliver(remote: Remote, user: string, batch: Queued[]): Promise<number> {
    const here = this.#local.get(user);
    if (here) {
      for (const q of batch) pushStored(here, this.writer, q.entry, q.ack);
      return batch.length;
    }
    const node = await remote.locate(user);
    if (node === undefined) return 0;
    if (node === null) {
      for (const q of batch) this.#notElsewhere(q.entry, q.ack, q.depth);
      return batch.length;
    }
    const id = newLaneId();
    const answers = await Promise.all(
      batch.map((q, i) => remote.handOff(node, q.entry, id, i + 1, q.ack, true)),
    );
    let n = 0;
    while (n < answers.length && answers[n] === "took") n++;
    if (answers[n] !== "refused") return n;
    // No session there: the recipient went offline (its next login reads the inbox).
    batch.forEach((q, i) => {
      if (i >= n && answers[i] !== "took") this.#notElsewhere(q.entry, q.ack, q.depth);
    });
    return batch.length;
  }

  /** Stops the retries (the node stops: what they hold is in the inbox). */
  stop(): void {
    this.#stopped = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }

  async #deliverDevices(
    d: Devices<Recipient>,
    entry: InboxEntry,
    ack: boolean,
    resource: string | undefined,
  ): Promise<void> {
    const one = resource ? d.find(entry.user, resource) : undefined;
    if (one) return await this.#pushed([one], entry, ack);
    if (this.remote) return await this.#deliverCluster(this.remote, d, entry, ack, resource);
    const all = d.of(entry.user);
    if (all) return await this.#pushed(all, entry, ack);
    this.#stored(entry, await this.writer.append(entry));
  }

  /** Local delivery to `targets`: safe once acked by one of them (or written). */
  async #pushed(targets: readonly Recipient[], entry: InboxEntry, ack: boolean): Promise<void> {
    // Blocked: the blacklist is the user's, so every session refuses alike.
    if (!pushAll(targets, entry) || !ack) return;
    await this.writer.append(entry, "local");
  }

  /**
   * multi_login in a cluster: the user may have sessions here and on other
   * nodes at once. Written first, as on the single-login stored path, so a
   * login registering after the lookup finds it in its inbox read; the
   * receiving nodes delete it once delivered without ack, and any session's
   * ack deletes it. A fan-out that fails waits in the user's queue, and so
   * does every later one to the user (docs/multi-login.md, "Faults in a
   * cluster"); the sender is acked once it is stored.
   */
  async #deliverCluster(
    remote: Remote,
    d: Devices<Recipient>,
    entry: InboxEntry,
    ack: boolean,
    resource: string | undefined,
  ): Promise<void> {
    const handedOver = await this.#inTurn(entry.user, async () => {
      const depth = await this.writer.append(entry);
      const found = await remote.devices(entry.user);
      return () => {
        const there = resource ? found?.find((f) => f.resource === resource) : undefined;
        const local = there ? [] : d.of(entry.user) ?? [];
        if (local.length > 0 && !pushAll(local, entry)) {
          this.writer.remove(entry.user, entry.id); // blocked
          return Promise.resolve();
        }
        if (local.length > 0 && !ack) this.writer.remove(entry.user, entry.id);
        const f = { entry, ack, depth, resource, nodes: null, reached: local.length > 0 };
        if (found === undefined || this.#fanOuts.has(entry.user)) {
          return this.#fanOutLater(remote, f);
        }
        return this.#fanOut(remote, f, found).then((left) => {
          if (left) this.#fanOutLater(remote, f);
        });
      };
    });
    await handedOver;
  }

  /**
   * Publishes `f` to the nodes of `found` it has still to reach; resolves
   * to true when some publish failed (`f.nodes` then names those nodes).
   * When none is left to reach and no session got it, it waits in the inbox
   * for a login.
   */
  async #fanOut(remote: Remote, f: FanOut, found: readonly RemoteDevice[]): Promise<boolean> {
    const there = f.resource ? found.find((x) => x.resource === f.resource) : undefined;
    const nodes = (there ? [there.node] : nodesOf(found)).filter((n) => f.nodes?.has(n) ?? true);
    if (nodes.length === 0) {
      if (!f.reached && this.#local.all(f.entry.user).length === 0) this.#stored(f.entry, f.depth);
      return false;
    }
    const to = { resource: there ? there.resource : null };
    const sent = await Promise.all(nodes.map((n) => remote.publishTo(n, f.entry, f.ack, to)));
    if (sent.includes(true)) f.reached = true;
    f.nodes = new Set(nodes.filter((_, i) => !sent[i]));
    return f.nodes.size > 0;
  }

  /** Queues `f` behind its user's earlier failed fan-outs, retried in order (#retryLater). */
  #fanOutLater(remote: Remote, f: FanOut): void {
    const user = f.entry.user;
    const queue = this.#fanOuts.get(user);
    if (queue) return void queue.push(f);
    this.#fanOuts.set(user, [f]);
    this.#retryLater(() => this.#fanOutAgain(remote, user));
  }

  /**
   * One retry of a user's queued fan-outs: its sessions listed again, each
   * published to the nodes it did not reach (a node that no longer holds a
   * session of the user is left out: a login there reads the inbox). The
   * publishes of one retry to one node leave in order, in one PUBLISH while
   * they fit in one; one that reached every node is done, whatever became
   * of those before it.
   */
  async #fanOutAgain(remote: Remote, user: string): Promise<Attempt> {
    const queue = this.#fanOuts.get(user)!;
    const batch = queue.slice(0, RETRY_BATCH);
    const found = await remote.devices(user);
    if (found === undefined) return "stuck";
    this.retried += batch.length;
    const left = await Promise.all(batch.map((f) => this.#fanOut(remote, f, found)));
    const done = new Set(batch.filter((_, i) => !left[i]));
    // Those queued meanwhile were pushed onto `queue`: they stay, behind.
    const rest = queue.filter((f) => !done.has(f));
    if (rest.length > 0) {
      this.#fanOuts.set(user, rest);
      return done.size === 0 ? "stuck" : "again";
    }
    this.#fanOuts.delete(user);
    return "done";
  }

  /**
   * Runs `prepare` (the write and the lookup) at once, then the step it
   * returns only after the previous delivery to `user` took its step: the
   * lookups take different times (node liveness may be cached), and the
   * sessions must still see one sender's packets in order.
   */
  async #inTurn<T>(user: string, prepare: () => Promise<() => T>): Promise<T> {
    const prev = this.#turns.get(user);
    let release = noop;
    const mine = new Promise<void>((r) => release = r);
    this.#turns.set(user, mine);
    try {
      const step = await prepare();
      if (prev) await prev;
      return step();
    } finally {
      release();
      if (this.#turns.get(user) === mine) this.#turns.delete(user);
    }
  }

  /**
   * multi_login: a packet `sender` sent from its session `origin` goes, as
   * the carbon `make` builds (only when needed), to the sender's other
   * sessions, here and on other nodes. Never stored, never waited for.
   */
  carbon(sender: string, origin: string, make: () => InboxEntry | null): void {
    const d = this.#local.devices;
    if (!d) return;
    const mine = d.of(sender);
    const remote = this.remote;
    // The usual case costs one lookup: the sender's only session is this one.
    if (!remote && (!mine || mine.length < 2)) return;
    const entry = make();
    if (entry === null) return;
    if (mine) pushAll(mine.filter((s) => s.sid !== origin), entry);
    if (!remote) return;
    void this.#inTurn(entry.user, async () => {
      const nodes = nodesOf(await remote.devices(entry.user) ?? []);
      return () => nodes.forEach((n) => void remote.publishTo(n, entry, false, { carbon: origin }));
    }).catch(noop);
  }

  /** `owner` blocked or unblocked `jid` (RPC): applied to its session, on whichever node. */
  async notifyBlocked(owner: string, jid: string, blocked: boolean): Promise<void> {
    if (this.#local.devices) {
      for (const s of this.#local.all(owner)) s.setBlocked(jid, blocked);
      const remote = this.remote;
      if (!remote) return;
      const nodes = nodesOf(await remote.devices(owner) ?? []);
      await Promise.all(nodes.map((n) => remote.publishBlocked(n, owner, jid, blocked)));
      return;
    }
    const s = this.#local.get(owner);
    if (s) return s.setBlocked(jid, blocked);
    if (!this.remote) return;
    const node = await this.remote.locate(owner);
    if (node) await this.remote.publishBlocked(node, owner, jid, blocked);
  }

  #stored(entry: InboxEntry, depth: number | null): void {
    storedOffline(this.#onOffline, entry, depth);
  }
}

/** The registry name of a multi_login session: its full JID. */
function deviceJid(s: Recipient): string {
  return `${s.jid}/${s.resource}`;
}

function nodesOf(found: readonly RemoteDevice[]): string[] {
  return [...new Set(found.map((f) => f.node))];
}
