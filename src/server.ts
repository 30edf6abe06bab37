// Composition root: picks the store, wires router, writer and session core,
// starts the listeners and sweeps deadlines. Every resource goes onto one
// stack of disposers as it is acquired; a startup failure and stop() both
// unwind that stack, so teardown runs in the reverse order of the pushes.

import type { Config } from "./config/config.ts";
import type { Logger } from "./log.ts";
import { errMsg } from "./log.ts";
import type { InboxEntry, OfflineRules, Store } from "./store/store.ts";
import { SqliteStore } from "./store/sqlite_store.ts";
import { parseDbaddr } from "./store/redis_client.ts";
import { RedisStore } from "./store/redis_store.ts";
import { InboxWriter } from "./store/inbox_writer.ts";
import { arrivals, handoffs, LocalSessions, Router } from "./router.ts";
import { DedupCache } from "./session/dedup.ts";
import { openSession, type Session, type SessionDeps } from "./session/session.ts";
import type { Admission } from "./session/conn.ts";
import { Close } from "./session/close_reason.ts";
import type { Listener } from "./listener.ts";
import { startTcp } from "./transports/tcp.ts";
import { AcceptGuard } from "./transports/accept_guard.ts";
import { openSurfaces } from "./config/warnings.ts";
import { openCallbacks } from "./callbacks.ts";
import { callbackAuth, loginAuth } from "./session/auth.ts";
import { Groups } from "./session/groups.ts";
import { offlineCallback } from "./session/offline_callback.ts";
import { startRpc } from "./rpc/http.ts";
import { localPresence } from "./rpc/presence.ts";
import { coreServices } from "./rpc/services.ts";
import { blacklistService } from "./rpc/blacklist.ts";
import { startThriftListener } from "./rpc/thrift_listener.ts";
import { startTls } from "./transports/tls.ts";
import { startWs } from "./transports/websocket.ts";
import { type ClusterNode, joinCluster } from "./cluster/node.ts";
import { Metrics } from "./metrics/metrics.ts";
import { metricsPage } from "./rpc/metrics_page.ts";
import { timedStore } from "./metrics/timed_store.ts";
import { healthPage, nodeReadiness } from "./rpc/health.ts";
import { consolePage } from "./rpc/console/console.ts";
import { LoginThrottle } from "./session/login_throttle.ts";

/** Group commit: how long an entry may wait for its batch, and the largest batch. */
// Entries delivered to an online recipient wait longer: its ack, usually a
// round trip away, cancels them before they cost a write and a delete. One
// delivered to a session here waits longest: under load its ack may come
// later than 50 ms, and the write and delete then cost more CPU on the event
// loop, which delays more acks (BENCHMARKS.md); a hand-off's answer, which
// the sending node waits for, keeps the shorter grace.
const WRITER = { delayMs: 3, onlineGraceMs: 50, localGraceMs: 200, maxBatch: 512 };
// Senders idle this long lose their dedup memory (bounded memory).
const DEDUP_IDLE_MS = 30 * 60_000;
const SWEEP_MS = 1000;
const EXPIRY_SWEEP_MS = 60_000;
// A store slower than this to answer a ping makes /readyz fail; under a
// second, so that /readyz turns 503 within one of the store failing.
const READY_PING_MS = 800;

/**
 * The node's shared parts, for tests and tools that look inside a running
 * node (a session is built from exactly these: they satisfy SessionDeps).
 * Nothing in the node is handed this whole set.
 */
export interface NodeParts extends SessionDeps {
  readonly config: Config;
  readonly store: Store;
  readonly writer: InboxWriter;
  readonly router: Router;
  readonly dedup: DedupCache;
  readonly metrics: Metrics;
}

/** A running node. */
export interface Server {
  readonly config: Config;
  readonly core: NodeParts;
  /** Started listeners by name ("tcp", "ws", ...), with their bound ports. */
  readonly listeners: Map<string, Listener>;
  /** Stops accepting, closes sessions, writes every pending entry, closes the store. */
  stop(): Promise<void>;
}

/** Opens the store `dbaddr` names; `signal` ends a wait for a Redis Cluster not ready yet. */
export async function openStore(config: Config, signal?: AbortSignal): Promise<Store> {
  const rules: OfflineRules = {
    expire: config.offline_expire,
    max: config.offline_max,
    maxBytes: config.offline_max_bytes,
    policy: config.offline_policy,
    dedupIds: config.dedup_ids,
  };
  if (config.dbaddr !== "") {
    const target = parseDbaddr(config.dbaddr, config.dbpassword, config.dbtls);
    return await RedisStore.open(target, rules, {
      pool: config.dbpool,
      connectionName: `sara-${config.nodeid}-store`,
      signal,
    });
  }
  return await SqliteStore.open(config.datadir, rules);
}

/** What a caller may supply instead of the defaults (tests inject failing stores). */
export interface StartOptions {
  /** Used instead of the store `dbaddr` names; the server closes it on stop. */
  store?: Store;
  /**
   * Aborts the startup (its deadline, a stop signal): a wait for Redis ends, the next stage
   * does not begin, and startServer rejects after undoing what started.
   */
  signal?: AbortSignal;
}

/** Starts a node; on any startup failure, whatever started is stopped again. */
export async function startServer(
  config: Config,
  log: Logger,
  opts: StartOptions = {},
): Promise<Server> {
  const stack = new AsyncDisposableStack();
  try {
    const node = await assemble(config, log, opts, stack);
    const owned = stack.move();
    let stopping: Promise<void> | null = null;
    // A disposer that fails does not stop the others; stop() then rejects with its error.
    const stop = () => stopping ??= owned.disposeAsync().then(() => log.info("stopped"));
    return { ...node, stop };
  } catch (err) {
    await stack.disposeAsync().catch((e) => log.error(`undoing a failed start: ${errMsg(e)}`));
    throw err;
  }
}

/**
 * Builds the node's parts in dependency order, each with exactly what it
 * uses, and starts them, pushing each one's teardown onto `stack` as soon as
 * it exists. Unwinding runs the pushes backwards: stop listening, close the
 * listeners, close the sessions, leave the cluster, write the writer's
 * backlog, abort callbacks in flight, close the store.
 */
async function assemble(
  config: Config,
  log: Logger,
  opts: StartOptions,
  stack: AsyncDisposableStack,
): Promise<Omit<Server, "stop">> {
  const metrics = new Metrics();
  // Before the store: a bad callback URL stops startup with nothing to undo.
  const callbacks = openCallbacks(config, log, (call, outcome, s) => {
    metrics.callback(call, outcome, s);
  });
  const store = timedStore(opts.store ?? await openStore(config, opts.signal), metrics);
  stack.defer(() => store.close());
  // Holds nothing until its first call; its calls in flight end before the store closes.
  if (callbacks) stack.defer(() => callbacks.close());
  if (config.dbaddr === "") {
    log.info(`embedded store ${store.name}: running standalone (one node, no cluster)`);
  } else {
    log.info(`store ${store.name}: at most ${config.dbpool} operations in flight (dbpool)`);
  }
  const writer = new InboxWriter(store, {
    ...WRITER,
    onError: (err, n) => log.error(`store commit failed (${n} messages): ${errMsg(err)}`),
  });
  // Every entry handed to the writer reaches the store before it closes.
  stack.defer(() => writer.close());

  // Delivery: the sessions logged in here, the cluster (which hands them
  // what other nodes publish), then the router over both.
  const notifyOffline = callbacks && config.enable_offline_callback
    ? offlineCallback(callbacks)
    : null;
  const onOffline = (entry: InboxEntry, total: number) => {
    metrics.offlineStored(total);
    notifyOffline?.(entry, total);
  };
  const local = new LocalSessions(
    config.multi_login ? { maxSessions: config.max_sessions } : null,
  );
  // Before any listener: the nodeid is claimed and the ghosts of an earlier
  // life are cleared before the first login registers.
  let cluster: ClusterNode | null = null;
  if (config.dbaddr !== "") {
    const joined = cluster = await joinCluster(
      config,
      {
        arrived: arrivals(local, writer, onOffline),
        accept: handoffs(local, writer),
        local: (jid) => local.all(jid),
        online: () => local.size,
      },
      log,
      opts.signal,
    );
    // Pushed before the sessions: their entries are unregistered before the nodeid is released.
    stack.defer(() => joined.stop());
  }
  opts.signal?.throwIfAborted();
  const router = new Router({ local, writer, remote: cluster?.remote ?? null, onOffline });
  // Before the cluster is left: what the retries hold is in the inbox.
  stack.defer(() => router.stop());

  // Sessions: what each one is built from, and how a transport admits one.
  const groups = new Groups(store, callbacks, log);
  const sessions = new Set<Session>();
  stack.defer(() => {
    for (const s of [...sessions]) s.close(Close.shutdown);
  });
  const loginCallback = callbacks && config.enable_auth ? callbackAuth(callbacks, log) : null;
  const core: NodeParts = {
    config,
    log,
    store,
    writer,
    router,
    dedup: new DedupCache(config.dedup_ids),
    auth: loginAuth(config.auth_secret, loginCallback),
    logins: new LoginThrottle(log),
    groups: (gid, domain) => groups.resolve(gid, domain),
    sessions,
    metrics,
  };
  const admission: Admission = {
    admit: (conn) => openSession(conn, core),
    limits: {
      maxPacket: config.max_packet,
      outQueueBytes: config.out_queue_bytes,
      handshakeMs: config.login_timeout * 1000,
    },
    log,
  };
  const remote = cluster?.remote;
  metrics.watch({
    nodeid: config.nodeid,
    sessions,
    online: () => router.online,
    users: () => router.users,
    backlog: () => writer.backlog,
    store,
    cluster: remote
      ? {
        published: remote.published,
        get received() {
          return remote.received;
        },
        get retried() {
          return router.retried;
        },
      }
      : null,
  });

  // RPC: services, then pages.
  const presence = cluster?.remote ?? localPresence(config.nodeid, router);
  const services = {
    ...coreServices({ push: core, groups, presence }),
    emsg_black_list: blacklistService({
      store,
      auth: core.auth,
      openLogin: config.auth_secret === "" && loginCallback === null,
      logins: core.logins,
      // Applied to the owner's session on whichever node holds it.
      notify: (owner, jid, blocked) => router.notifyBlocked(owner, jid, blocked),
    }),
  };
  let listening = false;
  const guard = new AcceptGuard(log, () => metrics.acceptFailed());
  const listeners = new Map<string, Listener>();
  const pages = [
    healthPage(nodeReadiness({
      listening: () => listening,
      accepting: () => !guard.failing,
      store,
      timeoutMs: READY_PING_MS,
      log,
    })),
    metricsPage(metrics),
    consolePage({
      nodeid: config.nodeid,
      accesstoken: config.accesstoken,
      // Read per request: the WebSocket listeners start after the RPC one.
      wsPorts: () => ({
        ws: listeners.get("ws")?.port ?? null,
        wss: listeners.get("wss")?.port ?? null,
      }),
      locate: async (jid) =>
        router.local(jid) ? config.nodeid : await cluster?.remote.locate(jid) ?? null,
    }),
  ];
  const rpc = {
    services,
    accesstoken: config.accesstoken,
    protectedMode: config.protected_mode,
    maxBody: config.rpc_max_body,
    log,
    pages,
  };
  // Both HTTP RPC and Thrift push connections close after idle_timeout.
  const idleMs = config.idle_timeout * 1000;
  const thrift = {
    hostname: config.bind,
    nodeaddr: config.nodeaddr,
    accesstoken: config.accesstoken,
    idleMs,
  };

  // Listeners, one line each; startup stops at the first failure, and the
  // stack closes whatever already started.
  const bind = (port: number) => ({ hostname: config.bind, port });
  const starters: [boolean, () => Listener | Promise<Listener>][] = [
    [config.enable_tcp, () => startTcp(admission, bind(config.port), guard)],
    [true, () => startRpc(rpc, bind(config.rpcport), guard, idleMs)],
    [true, () => startThriftListener(core, thrift, guard)],
    [config.enable_ws, () => startWs(admission, bind(config.wsport), guard)],
    [config.enable_tls, () => startTls(admission, bind(config.tlsport), config, guard)],
    [config.enable_wss, () => startWs(admission, bind(config.wssport), guard, config)],
  ];
  for (const [enabled, start] of starters) {
    if (!enabled) continue;
    opts.signal?.throwIfAborted();
    const l = await start();
    stack.defer(() => l.close());
    listeners.set(l.name, l);
    log.info(`${l.name} start on [${config.bind}:${l.port}]`);
  }

  // Background work: event-loop sampling, deadlines, expiry.
  stack.defer(metrics.sampleEventLoop());
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const s of sessions) s.sweep(now);
    core.dedup.evictIdle(now - DEDUP_IDLE_MS);
  }, SWEEP_MS);
  stack.defer(() => clearInterval(sweep));
  const expiry = setInterval(() => {
    store.sweepExpired().then(
      (n) => n > 0 && log.info(`expired ${n} offline messages`),
      (err) => log.warn(`expiry sweep failed: ${errMsg(err)}`),
    );
  }, EXPIRY_SWEEP_MS);
  stack.defer(() => clearInterval(expiry));
  listening = true;
  for (const line of openSurfaces(config)) log.warn(line);
  // Pushed last, so the first thing stop() does: /readyz fails from here on.
  stack.defer(() => {
    listening = false;
  });
  return { config, core, listeners };
}
