// Composition root: picks the store, wires router, writer and session core,
// starts the listeners, sweeps deadlines, and shuts everything down in order.

import type { Config } from "./config/config.ts";
import type { Logger } from "./log.ts";
import { errMsg } from "./log.ts";
import { ConfigError } from "./errors.ts";
import type { OfflineRules, Store } from "./store/store.ts";
import { SqliteStore } from "./store/sqlite_store.ts";
import { InboxWriter } from "./store/inbox_writer.ts";
import { Router } from "./router.ts";
import { DedupCache } from "./session/dedup.ts";
import type { Core } from "./session/core.ts";
import type { Session } from "./session/session.ts";
import type { Listener } from "./transports/listener.ts";
import { startTcp } from "./transports/tcp.ts";

/** Group commit: how long an entry may wait for its batch, and the largest batch. */
const WRITER = { delayMs: 3, maxBatch: 512 };
// Senders idle this long lose their dedup memory (bounded memory).
const DEDUP_IDLE_MS = 30 * 60_000;
const SWEEP_MS = 1000;
const EXPIRY_SWEEP_MS = 60_000;

/** A running node. */
export interface Server {
  readonly config: Config;
  readonly core: Core;
  /** Started listeners by name ("tcp", "ws", ...), with their bound ports. */
  readonly listeners: Map<string, Listener>;
  /** Stops accepting, closes sessions, writes every pending entry, closes the store. */
  stop(): Promise<void>;
}

/** Opens the store `dbaddr` names. */
export async function openStore(config: Config): Promise<Store> {
  const rules: OfflineRules = {
    expire: config.offline_expire,
    max: config.offline_max,
    policy: config.offline_policy,
    dedupIds: config.dedup_ids,
  };
  if (config.dbaddr !== "") {
    throw new ConfigError(
      `dbaddr "${config.dbaddr}": the Redis store is not available in this build; ` +
        `leave dbaddr empty for the embedded store`,
    );
  }
  return await SqliteStore.open(config.datadir, rules);
}

/** Starts a node; on any startup failure, whatever started is stopped again. */
export async function startServer(config: Config, log: Logger): Promise<Server> {
  const store = await openStore(config);
  if (config.dbaddr === "") {
    log.info(`embedded store ${store.name}: running standalone (one node, no cluster)`);
  }
  const writer = new InboxWriter(store, {
    ...WRITER,
    onError: (err, n) => log.error(`store commit failed (${n} messages): ${errMsg(err)}`),
  });
  const router = new Router(writer);
  const sessions = new Set<Session>();
  const core: Core = {
    config,
    log,
    store,
    writer,
    router,
    dedup: new DedupCache(config.dedup_ids),
    auth: () => Promise.resolve(true),
    groups: () => Promise.resolve(null),
    sessions,
  };
  const bind = (port: number) => ({ hostname: config.bind, port });
  // One line per listener; startup stops at the first failure and closes
  // whatever already started, so nothing is left half-running.
  const starters: [boolean, () => Listener | Promise<Listener>][] = [
    [config.enable_tcp, () => startTcp(core, bind(config.port))],
  ];
  const listeners = new Map<string, Listener>();
  try {
    for (const [enabled, start] of starters) {
      if (!enabled) continue;
      const l = await start();
      listeners.set(l.name, l);
      log.info(`${l.name} start on [${config.bind}:${l.port}]`);
    }
  } catch (err) {
    for (const l of listeners.values()) await l.close();
    await store.close();
    throw err;
  }

  const sweep = setInterval(() => {
    const now = Date.now();
    for (const s of sessions) s.sweep(now);
    core.dedup.evictIdle(now - DEDUP_IDLE_MS);
  }, SWEEP_MS);
  const expiry = setInterval(() => {
    store.sweepExpired().then(
      (n) => n > 0 && log.info(`expired ${n} offline messages`),
      (err) => log.warn(`expiry sweep failed: ${errMsg(err)}`),
    );
  }, EXPIRY_SWEEP_MS);

  let stopping: Promise<void> | null = null;
  const stop = () =>
    stopping ??= (async () => {
      clearInterval(sweep);
      clearInterval(expiry);
      for (const l of listeners.values()) await l.close();
      for (const s of [...sessions]) s.close();
      // Every entry handed to the writer reaches the store before it closes.
      await writer.close();
      await store.close();
      log.info("stopped");
    })();
  return { config, core, listeners, stop };
}
