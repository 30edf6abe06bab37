// One client connection's state machine (docs/protocol.md §3, §4, §8): login, then
// routing of the client's packets and delivery of packets to it. It never
// knows which transport it speaks through.

import type { Conn, ConnHandler } from "./conn.ts";
import type { Recipient, Router } from "../router.ts";
import type { InboxEntry, Store } from "../store/store.ts";
import type { InboxWriter } from "../store/inbox_writer.ts";
import type { Config } from "../config/config.ts";
import type { Metrics } from "../metrics/metrics.ts";
import { errMsg, Level, type Logger } from "../log.ts";
import type { LoginFailure, NoticeReason } from "../errors.ts";
import {
  bareJid,
  loginError,
  loginOk,
  notice,
  parsePacket,
  resourceOf,
  SERVER_ACK,
  serverAck,
  Type,
  typeOf,
} from "../protocol/packet.ts";
import { routeChat, type Routed, routeGroup, type Routing, wantsAck } from "./messages.ts";
import { Close, type CloseReason } from "./close_reason.ts";
import type { Authenticator } from "./auth.ts";
import { DeliveredIds } from "./delivered.ts";
import { RefusedSends } from "./refused.ts";
import { ANSWER_PACKETS, storedThatFit } from "./login_answer.ts";
import type { LoginThrottle } from "./login_throttle.ts";

/**
 * What a session works with: exactly these, so that a test can build one
 * from fakes. On a node they are the node's shared parts (server.ts).
 */
export interface SessionDeps extends Routing {
  readonly config: Pick<
    Config,
    | "nodeid"
    | "login_timeout"
    | "idle_timeout"
    | "rate_limit"
    | "offline_delivery"
    | "max_conns"
    | "max_packet"
  >;
  readonly log: Logger;
  /** Read once, at login. */
  readonly store: Pick<Store, "inbox" | "recentIds" | "blacklist">;
  readonly writer: Pick<InboxWriter, "settled" | "remove" | "sent">;
  readonly router:
    & Pick<Router, "attach" | "detach" | "deliver">
    & Partial<Pick<Router, "carbon" | "multi">>;
  readonly auth: Authenticator;
  /** Failed logins per user and address: throttled and logged in one place. */
  readonly logins: Pick<LoginThrottle, "delay" | "failed">;
  /** Every connection's session on this node, logged in or not (the sweep and stop() walk it). */
  readonly sessions: Set<Session>;
  readonly metrics: Pick<
    Metrics,
    | "connected"
    | "refused"
    | "loggedIn"
    | "loginFailed"
    | "received"
    | "sent"
    | "serverAck"
    | "clientAck"
    | "kick"
    | "closed"
  >;
}

/**
 * Life of a session, each state named after what the session waits for:
 * the login packet, the authenticator's answer, the registration and inbox
 * read, packets (open), or a group's member list. Changed only through
 * `#moveTo`, which refuses a change `STEPS` does not list.
 */
export type State =
  | "awaiting_login"
  | "awaiting_auth"
  | "awaiting_inbox"
  | "open"
  | "awaiting_members"
  | "closed";

/** From each state, the states a session may change to. */
export const STEPS: Readonly<Record<State, readonly State[]>> = {
  awaiting_login: ["awaiting_auth", "closed"],
  awaiting_auth: ["awaiting_inbox", "closed"],
  awaiting_inbox: ["open", "closed"],
  open: ["awaiting_members", "closed"],
  awaiting_members: ["open", "closed"],
  closed: [],
};

/** Refuses a change of state that `STEPS` does not list (a bug, never the client's doing). */
export function checkStep(from: State, to: State): void {
  if (!STEPS[from].includes(to)) throw new Error(`session state ${from} -> ${to} is impossible`);
}

// States in which the session is registered with the router (detached on close).
const ATTACHED: ReadonlySet<State> = new Set(["awaiting_inbox", "open", "awaiting_members"]);
// States before the login answer (the login deadline applies).
const LOGGING_IN: ReadonlySet<State> = new Set([
  "awaiting_login",
  "awaiting_auth",
  "awaiting_inbox",
]);

/** A login from its packet until its stored packets were acked (null before and after). */
interface Login {
  /** The login packet's id: the login answer names it, and so does the ack of its stored packets. */
  readonly id: string;
  /** Live messages that arrived while the inbox was read (awaiting_inbox only). */
  held: InboxEntry[] | null;
  /** Ids of the stored packets sent in the login answer, removed by the ack of `id`. */
  delayed: readonly string[];
}

// Packets queued behind an async step (login, group lookup): a client that
// keeps sending while its login is checked is bounded, not buffered forever.
const MAX_QUEUED = 1000;

// A client that stays over rate_limit this long (a drop at least every
// second) is closed: its flood would otherwise cost the node forever.
const FLOOD_CLOSE_MS = 10_000;
// At most one rate_limited notice per connection per this: a notice per
// dropped packet let a flood make more output than input.
const NOTICE_EVERY_MS = 1000;

// Loaded at login so that delivery checks stay synchronous; a list this long
// is far beyond any real use (fetch pages are 1000).
const BLACKLIST_LOAD_MAX = 1_000_000;
const NONE_BLOCKED: Set<string> = new Set();

// Session ids are this start's time and a counter: unique across restarts,
// and built only when asked (a string per idle session costs memory).
const STARTED = Date.now().toString(36);
let sidCounter = 0;
const NO_IDS: readonly string[] = [];

// Session times are ms since this module loaded: small integers need no heap
// object per field, as Date.now() values would.
const T0 = Date.now();
function clock(): number {
  return Date.now() - T0;
}

/** A client session on this node. */
export class Session implements ConnHandler, Recipient {
  /** When the connection came, in ms since T0. */
  readonly connectedAt: number;
  /** Last time anything arrived, in ms since T0: the idle sweep reads it. */
  lastSeen: number;
  /** Bare JID once the login packet was read. */
  jid = "";
  /** The login JID's resource ("" without one). */
  resource = "";
  #state: State = "awaiting_login";
  #login: Login | null = null;
  // Packets that arrived while the session waits (awaiting_auth, _inbox,
  // _members): run in order once it is open again, so that one sender's
  // messages keep their order. Null in the other states.
  #queue: string[] | null = null;
  // Senders this user blocks; shared empty set until the first entry.
  #blocked: Set<string> = NONE_BLOCKED;
  // What this session delivered, built at its first delivery (see delivered.ts).
  #delivered: DeliveredIds | null = null;
  // The ids its client acked, the same way: see acked().
  #acks: DeliveredIds | null = null;
  // Its 1:1 messages refused with store_error, built at the first (see refused.ts),
  // and how many it routed or refused so far (their send order).
  #refused: RefusedSends | null = null;
  #sends = 0;
  // rate_limit: the current one-second window and its count (packets and heartbeats).
  #windowStart = 0;
  #windowCount = 0;
  // When this run of drops began (-1: none), the last drop, the last notice.
  #floodSince = -1;
  #lastDrop = 0;
  #noticedAt = -NOTICE_EVERY_MS;
  readonly #n = sidCounter++;

  constructor(readonly conn: Conn, readonly deps: SessionDeps) {
    this.connectedAt = this.lastSeen = clock();
    deps.sessions.add(this);
    deps.metrics.connected(conn.transport);
  }

  /** Unique across nodes and restarts. */
  get sid(): string {
    return `${this.deps.config.nodeid}-${STARTED}-${this.#n.toString(36)}`;
  }

  /** When the connection came, ms since the epoch. */
  get since(): number {
    return T0 + this.connectedAt;
  }

  get state(): State {
    return this.#state;
  }

  // A method, not a field test: TypeScript would keep a narrowed #state
  // across awaits, after which another event may have closed the session.
  #isClosed(): boolean {
    return this.#state === "closed";
  }

  #moveTo(next: State): void {
    checkStep(this.#state, next);
    const log = this.deps.log;
    if (log.enabled(3)) {
      log.debug(`session ${this.#state} -> ${next}`, {
        sid: this.sid,
        jid: this.jid || undefined,
        transport: this.conn.transport,
        remote: this.conn.remote,
      });
    }
    this.#state = next;
  }

  // ---- ConnHandler: what the transport reports ----

  packet(text: string): void {
    this.lastSeen = clock();
    if (this.#queue) {
      if (this.#queue.length >= MAX_QUEUED) return this.#rateLimited(text);
      this.#queue.push(text);
      return;
    }
    this.#run(text);
  }

  heartbeat(): void {
    this.lastSeen = clock();
    // Heartbeats count against rate_limit; a dropped one gets no answer (and no notice).
    if (this.#isOpen() && this.#withinRate()) this.conn.sendHeartbeat();
  }

  oversize(): void {
    if (this.#isOpen()) this.conn.send(notice(undefined, "packet_too_large"));
    this.close(Close.packetTooLarge);
  }

  closed(): void {
    this.#end(Close.connectionClosed);
  }

  // ---- Recipient: what the router asks ----

  push(entry: InboxEntry): boolean {
    if (this.#isClosed()) return true;
    if (this.#blocked.has(entry.from)) return false;
    // Shown already (a retry, or a second copy after a failover): its first
    // copy's ack removes the stored entry, so this one counts as delivered.
    if (this.#seen(entry)) return true;
    this.deps.metrics.sent(entry.type);
    const held = this.#login?.held;
    if (held) held.push(entry);
    else this.conn.send(entry.packet);
    return true;
  }

  acked(entry: InboxEntry): boolean {
    return this.#acks !== null && this.#acks.has("", entry.id) &&
      this.#delivered !== null && this.#delivered.has(entry.from, entry.id);
  }

  #seen(entry: InboxEntry): boolean {
    return (this.#delivered ??= new DeliveredIds()).seen(entry.from, entry.id);
  }

  /** Remembers a client ack (by id alone, as the inbox removes it). */
  #ackSeen(id: string): void {
    (this.#acks ??= new DeliveredIds()).seen("", id);
  }

  /** The user's blacklist changed (RPC, on any node): applies at once. */
  setBlocked(jid: string, blocked: boolean): void {
    if (blocked) {
      if (this.#blocked === NONE_BLOCKED) this.#blocked = new Set();
      this.#blocked.add(jid);
    } else {
      this.#blocked.delete(jid);
    }
  }

  kick(): void {
    if (this.#isClosed()) return;
    this.deps.metrics.kick();
    this.conn.sendKill();
    this.close(Close.replaced);
  }

  /**
   * Closes the connection (after flushing what is queued); `why` is logged
   * and counted once, by the first close. Without a reason: the node stops.
   */
  close(why: CloseReason = Close.shutdown, detail?: string): void {
    this.#end(why, detail);
    this.conn.close();
  }

  /** Called by the sweep once a second (`now`: Date.now()); closes sessions past their deadline. */
  sweep(now: number): void {
    const c = this.deps.config;
    const t = now - T0;
    if (LOGGING_IN.has(this.#state)) {
      if (t - this.connectedAt > c.login_timeout * 1000) {
        this.deps.metrics.loginFailed("timeout");
        this.conn.send(loginError(this.#login?.id, "timeout"));
        this.close(Close.loginTimeout);
      }
    } else if (this.#isOpen() && t - this.lastSeen > c.idle_timeout * 1000) {
      this.close(Close.idleTimeout);
    }
  }

  /** The one way into "closed": logs and counts why, and lets go of the router and the node. */
  #end(why: CloseReason, detail?: string): void {
    if (this.#isClosed()) return;
    const was = this.#state;
    this.#moveTo("closed");
    this.deps.sessions.delete(this);
    this.#queue = null;
    this.#login = null;
    if (ATTACHED.has(was)) this.deps.router.detach(this);
    this.deps.metrics.closed(why);
    const log = this.deps.log;
    if (!log.enabled(why.level)) return;
    log.at(why.level, `session closed: ${why.reason}${detail ? ` (${detail})` : ""}`, {
      code: why.code,
      sid: this.sid,
      jid: this.jid || undefined,
      transport: this.conn.transport,
      remote: this.conn.remote,
    });
  }

  /** Logged in: answers heartbeats and may be written to. */
  #isOpen(): boolean {
    return this.#state === "open" || this.#state === "awaiting_members";
  }

  // ---- packet processing ----

  #run(text: string): void {
    let pending: Promise<void> | void;
    try {
      pending = this.#isOpen() ? this.#routed(text) : this.#readLogin(text);
    } catch (err) {
      this.#fault(err);
      return;
    }
    if (pending) {
      this.#queue ??= [];
      pending.catch((err) => this.#fault(err)).finally(() => this.#drain());
    }
  }

  #drain(): void {
    const q = this.#queue;
    this.#queue = null;
    if (this.#state === "awaiting_members") this.#moveTo("open");
    while (q && q.length > 0 && !this.#isClosed()) {
      this.#run(q.shift()!);
      const started = this.#pendingQueue();
      if (started) {
        // Another async step started: the rest waits behind it, in order.
        started.push(...q);
        return;
      }
    }
  }

  #pendingQueue(): string[] | null {
    return this.#queue;
  }

  #fault(err: unknown): void {
    this.close(Close.internalError, errMsg(err));
  }

  // ---- login (docs/protocol.md §3) ----

  #readLogin(text: string): Promise<void> | void {
    if (this.#state !== "awaiting_login") return; // a second login packet while one is checked
    const p = parsePacket(text);
    if (!p) return this.#failLogin(undefined, "fail_packet");
    const env = p.envelope;
    const id = typeof env.id === "string" ? env.id : undefined;
    const type = typeOf(env.type);
    // A number that is no type (negative, fractional, past 2^31) is a wrong type.
    if (type === null) {
      return this.#failLogin(id, typeof env.type === "number" ? "fail_type" : "fail_param");
    }
    if (type !== Type.open) return this.#failLogin(id, "fail_type");
    if (id === undefined || typeof env.jid !== "string") return this.#failLogin(id, "fail_param");
    if (env.pwd !== undefined && typeof env.pwd !== "string") {
      return this.#failLogin(id, "fail_param");
    }
    const jid = bareJid(env.jid);
    if (!jid) return this.#failLogin(id, "fail_packet");
    this.jid = jid;
    this.resource = resourceOf(env.jid);
    this.#login = { id, held: null, delayed: NO_IDS };
    this.#moveTo("awaiting_auth");
    return this.#authenticate(jid, env.pwd as string | undefined);
  }

  async #authenticate(jid: string, pwd: string | undefined): Promise<void> {
    const remote = this.conn.remote;
    const wait = this.deps.logins.delay(jid, remote);
    let ok = false;
    if (wait > 0) {
      // Throttled: refused unchecked, so guessing gains nothing but time.
      await new Promise((r) => setTimeout(r, wait));
    } else {
      try {
        ok = await this.deps.auth(jid, pwd);
      } catch (err) {
        this.deps.log.warn(`auth failed: ${errMsg(err)}`, { jid });
      }
    }
    const login = this.#login;
    if (this.#isClosed() || !login) return;
    if (!ok) {
      this.deps.logins.failed(jid, remote);
      return this.#failLogin(login.id, "fail_token");
    }
    this.#moveTo("awaiting_inbox");
    login.held = [];
    let stored: InboxEntry[];
    try {
      // Registered (cluster-wide) before the inbox is read: see Router.attach.
      await this.deps.router.attach(this, this.conn.transport);
      // A message to this user still on its way into the inbox would be
      // missing from the read, then overtaken by newer live ones.
      await this.deps.writer.settled(jid);
      const [entries, recent, blocked] = await Promise.all([
        this.deps.store.inbox(jid),
        this.deps.store.recentIds(jid),
        this.deps.store.blacklist(jid, 0, BLACKLIST_LOAD_MAX),
      ]);
      stored = entries;
      this.deps.dedup.load(jid, recent, Date.now());
      for (const b of blocked) this.setBlocked(b.jid, true);
    } catch (err) {
      this.deps.log.error(`cannot open session: ${errMsg(err)}`, { jid });
      // Closing detaches it: the registration made above does not outlive it.
      // The store failed, not the credentials: docs/protocol.md §3.
      return this.#failLogin(login.id, "store_error");
    }
    if (this.#isClosed()) return;
    this.#open(login, stored);
  }

  #open(login: Login, all: InboxEntry[]): void {
    const stored = this.#unblocked(all);
    const sent = new Set<string>();
    for (const e of stored) {
      sent.add(e.id);
      this.#seen(e);
    }
    const held = login.held ?? [];
    login.held = null;
    // Open before writing: a send may close the session at once (slow
    // consumer), and that close must stick.
    this.#moveTo("open");
    this.deps.metrics.loggedIn(stored.length);
    if (this.deps.log.enabled(Level.info)) {
      this.deps.log.info("login", {
        sid: this.sid,
        jid: this.jid,
        transport: this.conn.transport,
        stored: stored.length,
      });
    }
    let after = stored;
    if (this.deps.config.offline_delivery === "packets") {
      this.conn.send(loginOk(login.id, []));
    } else if (stored.length > 0) {
      const packets = stored.map((e) => e.packet);
      const n = storedThatFit(login.id, packets, this.deps.config.max_packet * ANSWER_PACKETS);
      this.conn.send(loginOk(login.id, n === packets.length ? packets : packets.slice(0, n)));
      if (n > 0) login.delayed = stored.slice(0, n).map((e) => e.id);
      // What does not fit follows the answer as packets, each with its own ack.
      after = stored.slice(n);
    } else {
      this.conn.send(loginOk(login.id, []));
    }
    for (const e of after) {
      if (this.#isClosed()) return;
      this.conn.send(e.packet);
      // Packets without ack: 1 get no client ack: they are done once written.
      if (!storedWantsAck(e.packet)) this.deps.writer.remove(this.jid, e.id);
    }
    // Kept only while the stored packets of the login answer wait for their ack.
    this.#login = login.delayed.length > 0 ? login : null;
    for (const e of this.#unblocked(held)) {
      if (this.#isClosed()) return;
      if (!sent.has(e.id)) this.conn.send(e.packet);
    }
  }

  /** Drops (and deletes) entries from senders blocked since they were stored or held. */
  #unblocked(entries: InboxEntry[]): InboxEntry[] {
    if (this.#blocked.size === 0) return entries;
    return entries.filter((e) => {
      if (!this.#blocked.has(e.from)) return true;
      this.deps.writer.remove(this.jid, e.id);
      return false;
    });
  }

  #failLogin(id: string | undefined, reason: LoginFailure): void {
    this.deps.metrics.loginFailed(reason);
    this.conn.send(loginError(id, reason));
    this.close(Close.loginFailed, reason);
  }

  // ---- after login (docs/protocol.md §2, §4) ----

  /** Counts a packet or heartbeat against rate_limit: false when it is to be dropped. */
  #withinRate(): boolean {
    const now = this.lastSeen;
    if (now - this.#windowStart >= 1000) {
      this.#windowStart = now;
      this.#windowCount = 0;
    }
    if (++this.#windowCount <= this.deps.config.rate_limit) return true;
    if (this.#floodSince < 0 || now - this.#lastDrop > 1000) this.#floodSince = now;
    this.#lastDrop = now;
    if (now - this.#floodSince >= FLOOD_CLOSE_MS) this.close(Close.flooding);
    return false;
  }

  /** A dropped packet: the first one in a second gets the notice, naming its id. */
  #rateLimited(text: string): void {
    const now = this.lastSeen;
    if (now - this.#noticedAt < NOTICE_EVERY_MS || !this.#isOpen()) return;
    this.#noticedAt = now;
    this.#notice(strId(parsePacket(text)?.envelope.id), "rate_limited");
  }

  #routed(text: string): Promise<void> | void {
    if (!this.#withinRate()) return this.#rateLimited(text);
    const p = parsePacket(text);
    if (!p) {
      this.conn.send(notice(undefined, "bad_packet"));
      return this.close(Close.badPacket);
    }
    const env = p.envelope;
    const type = typeOf(env.type);
    if (typeof env.id !== "string" || type === null) {
      return this.#notice(strId(env.id), "bad_packet");
    }
    this.deps.metrics.received(type);
    const id = env.id;
    if (type === Type.state && env.to === SERVER_ACK) return this.#clientAck(id, env.from);
    if (!this.#isMe(env.from)) return this.#notice(id, "bad_from");
    if (type === Type.open) return this.#notice(id, "bad_packet");
    // Only the server speaks in notices: a client's would look like one to its recipient.
    if ((p.entity as { result?: unknown } | undefined)?.result === "sys_notify") {
      return this.#notice(id, "bad_packet");
    }
    const sid = this.deps.router.multi ? this.sid : undefined;
    if (type !== Type.group) {
      // Behind a refused message to the same recipient: refused too, so
      // that the resend of the older one is stored first (refused.ts).
      const n = ++this.#sends;
      const to = this.#refused ? bareJid(env.to) : null;
      if (to && !this.#refused!.pass(to, id, n)) return this.#notice(id, "store_error");
      return this.#settle(id, routeChat(this.deps, this.jid, text, p, id, type, sid), env.to, n);
    }
    // The queue waits for the member lookup, so later packets keep their order.
    this.#moveTo("awaiting_members");
    return routeGroup(this.deps, this.jid, text, p, id, sid).then(
      (r) => this.#settle(id, r),
      (err) => this.#storeFailed(id, err),
    );
  }

  /**
   * `to`: the recipient of a 1:1 message, the session's `n`th, whose later
   * messages wait if this one fails.
   */
  #settle(id: string, r: Routed | NoticeReason, to?: unknown, n = 0): void {
    if (typeof r === "string") return this.#notice(id, r);
    // Not awaited: later packets of this client go on while this one is written.
    r.safe.then(
      () => {
        if (this.#refused && to !== undefined) {
          const bare = bareJid(to);
          if (bare) this.#refused.stored(bare, id);
        }
        if (!r.ack) return;
        this.deps.metrics.serverAck();
        this.#answer(serverAck(id, r.ct));
      },
      (err) => {
        const bare = to === undefined ? null : bareJid(to);
        if (bare) (this.#refused ??= new RefusedSends()).refused(bare, id, n);
        this.#storeFailed(id, err);
      },
    );
  }

  #clientAck(id: string, from: unknown): void {
    // Acks may omit `from` (it can only be the session's own inbox), but a
    // wrong one is refused like any other spoofed packet.
    if (from !== undefined && !this.#isMe(from)) return this.#notice(id, "bad_from");
    this.deps.metrics.clientAck();
    const login = this.#login;
    if (login && id === login.id) {
      for (const d of login.delayed) {
        this.#ackSeen(d);
        this.deps.writer.remove(this.jid, d);
      }
      this.#login = null;
      return;
    }
    this.#ackSeen(id);
    this.deps.writer.remove(this.jid, id);
  }

  /** Whether `from` names this session's user (with or without a resource). */
  #isMe(from: unknown): boolean {
    // Clients mostly send the bare JID the login checked: no need to check it again.
    return from === this.jid || bareJid(from) === this.jid;
  }

  #storeFailed(id: string, err: unknown): void {
    this.deps.log.error(`cannot route message: ${errMsg(err)}`, { jid: this.jid, id });
    this.#answer(notice(id, "store_error"));
  }

  #answer(packet: string): void {
    if (this.#isOpen()) this.conn.send(packet);
  }

  #notice(id: string | undefined, reason: NoticeReason): void {
    if (this.deps.log.enabled(3)) this.deps.log.debug(`notice ${reason}`, { jid: this.jid, id });
    this.#answer(notice(id, reason));
  }
}

/**
 * Admits a new connection: its session, or null when the node is full (the
 * client was told `server_full` and the connection is closing).
 */
export function openSession(conn: Conn, deps: SessionDeps): Session | null {
  if (deps.sessions.size >= deps.config.max_conns) {
    deps.log.warn("max_conns reached, refusing a connection", { remote: conn.remote });
    deps.metrics.refused();
    conn.send(notice(undefined, "server_full"));
    conn.close();
    return null;
  }
  return new Session(conn, deps);
}

function strId(id: unknown): string | undefined {
  return typeof id === "string" ? id : undefined;
}

/** Whether a stored packet asks for a client ack (read only at login, packets mode). */
function storedWantsAck(packet: string): boolean {
  return wantsAck(parsePacket(packet)?.envelope.ack);
}
