// Connections to Redis (one server or a Redis Cluster) as `dbaddr` names
// them: parsing the address forms, fail-fast ioredis options (a command
// while Redis is away rejects at once instead of waiting in a queue), and on
// a cluster the rule that follows a failover or a resharding (docs/cluster.md).

import { Cluster, Command, Redis, type RedisOptions } from "ioredis";
import { ConfigError, StoreError } from "../errors.ts";
import { errMsg } from "../log.ts";
import { sleep } from "../async.ts";

/** A command connection: one server or a cluster; both speak the same commands. */
export type RedisClient = Redis | Cluster;

/** Where Redis is, from `dbaddr`, `dbpassword`, `dbtls`. */
export interface RedisTarget {
  nodes: { host: string; port: number }[];
  /** Several addresses: a Redis Cluster. */
  cluster: boolean;
  password: string;
  tls: boolean;
}

const HOST_PORT = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

/** Parses `host:port` or `h1:p1,h2:p2,...`; throws ConfigError naming the bad part. */
export function parseDbaddr(dbaddr: string, password = "", tls = false): RedisTarget {
  const parts = dbaddr.split(",").map((s) => s.trim());
  const nodes = parts.map((part) => {
    const m = HOST_PORT.exec(part);
    const port = Number(m?.[2]);
    if (!m || port < 1 || port > 65535) {
      throw new ConfigError(
        `dbaddr "${dbaddr}": "${part}" is not host:port (use "" for the embedded store, ` +
          `"host:port" for one Redis, "h1:p1,h2:p2,..." for a Redis Cluster)`,
      );
    }
    return { host: m[1]!.replace(/^\[|\]$/g, ""), port };
  });
  return { nodes, cluster: nodes.length > 1, password, tls };
}

/** Human form for logs and errors. */
export function describe(t: RedisTarget): string {
  const addrs = t.nodes.map((n) => `${n.host}:${n.port}`).join(",");
  return t.cluster ? `redis-cluster:${addrs}` : `redis:${addrs}`;
}

/**
 * Opens a client and waits until it is ready; rejects with StoreError and the
 * real cause when Redis cannot be reached now. A Redis Cluster that answers
 * but is not ready (cluster_state not ok: slots without a master, or a fresh
 * cluster whose nodes do not agree yet) is asked again every
 * NOT_READY_PAUSE_MS until `signal` aborts (the startup deadline or a stop
 * signal, docs/operations.md); without a signal it rejects at once. Once
 * connected it reconnects by itself forever (backoff up to 1 s); commands
 * fail fast meanwhile.
 */
export async function connectRedis(
  t: RedisTarget,
  name: string,
  signal?: AbortSignal,
): Promise<RedisClient> {
  if (!t.cluster) return await connectOnce(t, name, signal);
  for (;;) {
    const cause = await connectOnce(t, name, signal).then(
      (client) => client,
      (err: unknown) => err instanceof NotReady ? err : Promise.reject(err),
    );
    if (!(cause instanceof NotReady)) return cause;
    if (!signal) throw new StoreError(`${describe(t)} is not ready: ${cause.message}`);
    await sleep(NOT_READY_PAUSE_MS, signal);
    if (signal.aborted) {
      throw new StoreError(
        `${describe(t)} is not ready: ${cause.message} (gave up: ${errMsg(signal.reason)})`,
      );
    }
  }
}

// Pause between two connects to a cluster that answered but was not ready.
const NOT_READY_PAUSE_MS = 250;

/** A cluster that answered CLUSTER SLOTS but failed ioredis' ready check (CLUSTER INFO). */
class NotReady extends Error {}

/** One connect attempt of connectRedis(); a cluster not ready rejects with NotReady. */
async function connectOnce(
  t: RedisTarget,
  name: string,
  signal: AbortSignal | undefined,
): Promise<RedisClient> {
  signal?.throwIfAborted();
  let started = false;
  let lastError: Error | undefined;
  const retry = (times: number) => (started ? Math.min(times * 100, 1000) : null);
  const base: RedisOptions = {
    connectionName: name,
    protocol: 2,
    maxRetriesPerRequest: 0,
    commandTimeout: 5000,
    connectTimeout: 3000,
    ...(t.password ? { password: t.password } : {}),
    ...(t.tls ? { tls: {} } : {}),
  };
  let client: RedisClient;
  if (t.cluster) {
    const c = new Cluster(t.nodes, {
      lazyConnect: true,
      enableAutoPipelining: true,
      enableOfflineQueue: false,
      clusterRetryStrategy: retry,
      // A promotion or a resharding shows up here within this time even when
      // no command hit the moved slots (readiness looks at the slot map).
      slotsRefreshInterval: SLOTS_REFRESH_MS,
      // ioredis' own retries of one command (a redirection, or 100 ms pauses
      // while CLUSTERDOWN or a lost node lasts): a few, since retryOnCluster
      // below paces the longer wait and bounds it.
      maxRedirections: 5,
      redisOptions: base,
    });
    c.on("error", () => {}); // cluster-level errors repeat "Failed to refresh slots cache"
    c.on("node error", (err: Error, node: string) => {
      lastError = new Error(`${node}: ${err.message}`);
    });
    client = c;
  } else {
    const n = t.nodes[0]!;
    const r = new Redis({
      ...base,
      host: n.host,
      port: n.port,
      lazyConnect: true,
      enableAutoPipelining: true,
      enableOfflineQueue: false,
      retryStrategy: retry,
    });
    r.on("error", (err: Error) => {
      lastError = err;
    });
    client = r;
  }
  // A cluster whose ready check fails (cluster_state:fail) disconnects and,
  // with no retries before the start, ends; ioredis' connect() then never
  // settles (it stops listening for the close once the slot map arrived), so
  // the end decides, and a node waited for it forever (BENCHMARKS.md).
  let answered = false;
  client.once("refresh", () => answered = true);
  const ended = new Promise<"ended">((resolve) => client.once("end", () => resolve("ended")));
  const onAbort = () => client.disconnect();
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const outcome = await Promise.race([client.connect().then(() => "ready" as const), ended]);
    if (outcome === "ended") {
      if (answered) {
        throw new NotReady(
          lastError?.message ?? "cluster_state is not ok or no slot owner answers",
        );
      }
      throw new Error(lastError?.message ?? "the connection ended");
    }
    signal?.throwIfAborted();
  } catch (err) {
    // A client that gave up is already "end"; disconnecting it again would
    // leave an ioredis timer behind.
    if (client.status !== "end") client.disconnect();
    if (err instanceof NotReady) throw err;
    const cause = signal?.aborted
      ? `gave up: ${errMsg(signal.reason)}`
      : lastError?.message ?? errMsg(err);
    throw new StoreError(`cannot connect to ${describe(t)}: ${cause}`);
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
  started = true;
  return client;
}

/** A Lua script on the server: its keys first, then its arguments. */
export type Script = (...keysThenArgs: (string | number)[]) => Promise<unknown>;

/** Defines `lua` on `client` as `name`; ioredis sends EVALSHA and falls back to EVAL. */
export function defineScript(client: RedisClient, name: string, keys: number, lua: string): Script {
  client.defineCommand(name, { numberOfKeys: keys, lua });
  // defineCommand adds an untyped method of that name.
  const method = (client as unknown as Record<string, Script>)[name]!;
  const first: Script = (...args) => method.apply(client, args);
  if (!(client instanceof Cluster)) return first;
  return (...args) =>
    retryOnCluster(
      client,
      () => first(...args),
      () => direct(client, "eval", [lua, keys, ...args]),
    );
}

/**
 * Sends one command (`name` and its arguments, replies as strings). On a
 * cluster it goes the way defineScript's scripts go: batched, then retried.
 */
export function command(client: RedisClient, name: string, ...args: (string | number)[]) {
  const first = () => client.call(name, ...args);
  if (!(client instanceof Cluster)) return first();
  return retryOnCluster(client, first, () => direct(client, name, args));
}

// Periodic slot map refresh of a cluster client (CLUSTER SLOTS on one node).
const SLOTS_REFRESH_MS = 1000;
/** How long a command keeps being retried across a failover before it fails. */
export const RETRY_WINDOW_MS = 2000;
// Pause before the second and later retries, doubling up to the last.
const RETRY_PAUSES_MS = [25, 50, 100, 200];

// Replies and client errors after which the same command may succeed on the
// slot's owner of a fresher slot map: redirections, a cluster without a
// master for some slot, a node that is starting or demoted, a lost node.
const RETRIABLE =
  /^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|LOADING|READONLY)\b|^Connection is closed|^Too many Cluster redirections|^Cluster isn't ready|^Failed to refresh slots cache|ECONNREFUSED|ECONNRESET|EPIPE/;

/** True for an error that a retry on a fresher slot map may cure. */
export function retriable(err: unknown): boolean {
  return err instanceof Error && RETRIABLE.test(err.message);
}

/**
 * ioredis batches concurrent commands per node (auto-pipelining), but it
 * does not follow a redirection of a batch whose commands span several slots:
 * each command fails with `MOVED <slot> <node>` and the slot map is never
 * refreshed, so after a promotion every later batch fails the same way
 * (docs/cluster.md). So a command that fails that way is sent again on its
 * own, after a slot map refresh: alone, ioredis follows MOVED and ASK itself
 * and waits out CLUSTERDOWN and lost connections. That repeats, pausing
 * longer each time, until it succeeds, fails otherwise, or RETRY_WINDOW_MS
 * passed. Every store command is safe to repeat: a commit skips ids already
 * stored (redis_scripts.ts), the rest set or delete.
 */
async function retryOnCluster<T>(
  client: Cluster,
  first: () => Promise<T>,
  again: () => Promise<T>,
): Promise<T> {
  try {
    return await first();
  } catch (err) {
    if (!retriable(err)) throw err;
  }
  const counts = retriesOf(client);
  const deadline = Date.now() + RETRY_WINDOW_MS;
  for (let attempt = 0;; attempt++) {
    await refreshSlots(client);
    try {
      const value = await again();
      counts.ok++;
      return value;
    } catch (err) {
      const pause = RETRY_PAUSES_MS[Math.min(attempt, RETRY_PAUSES_MS.length - 1)]!;
      if (!retriable(err) || Date.now() + pause >= deadline) {
        counts.failed++;
        throw err;
      }
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }
}

const retryCounts = new WeakMap<RedisClient, { ok: number; failed: number }>();

/** Commands of `client` sent again by the retry rule, by how they ended (for metrics). */
export function retriesOf(client: RedisClient): { ok: number; failed: number } {
  let counts = retryCounts.get(client);
  if (!counts) retryCounts.set(client, counts = { ok: 0, failed: 0 });
  return counts;
}

/** Sends one command outside any batch, so that ioredis handles its redirections. */
function direct<T>(client: Cluster, name: string, args: (string | number)[]): Promise<T> {
  return client.sendCommand(new Command(name, args, { replyEncoding: "utf8" })) as Promise<T>;
}

/** The master that owns `key`'s slot in `client`'s slot map ("" before it is known). */
export function masterOf(client: Cluster, key: string): string {
  // Command computes the slot as ioredis routes it (hash tags included).
  const slot = new Command("exists", [key]).getSlot();
  return (slot === null ? undefined : client.slots[slot]?.[0]) ?? "";
}

/** Refreshes `client`'s slot map; concurrent calls share one CLUSTER SLOTS; never rejects. */
export function refreshSlots(client: Cluster): Promise<void> {
  return new Promise((resolve) => client.refreshSlotsCache(() => resolve()));
}

/**
 * Resolves when the store can take writes now. One Redis: it answers a ping.
 * A cluster: every master that the slot map names answers CLUSTER INFO and
 * sees the cluster as ok. A master that is gone, or a cluster that refuses
 * writes (CLUSTERDOWN: a slot without a master, with
 * cluster-require-full-coverage yes), rejects naming the node; the slot map
 * is then refreshed at once, so a promotion is seen by the next call.
 */
export async function checkWritable(client: RedisClient): Promise<void> {
  if (!(client instanceof Cluster)) {
    await client.ping();
    return;
  }
  const owners = new Set<string>();
  for (const nodes of client.slots) if (nodes?.[0]) owners.add(nodes[0]);
  if (owners.size === 0) {
    // A client that has not learnt the slot map yet: any node will do.
    await client.ping();
    return;
  }
  const byKey = new Map(client.nodes("all").map((n) => [`${n.options.host}:${n.options.port}`, n]));
  try {
    await Promise.all([...owners].map(async (key) => {
      const node = byKey.get(key);
      if (!node) throw new Error(`master ${key} of the slot map is not connected`);
      const info = String(await node.cluster("INFO"));
      if (!info.includes("cluster_state:ok")) throw new Error(`${key}: cluster_state is not ok`);
    }));
  } catch (err) {
    refreshSlots(client);
    throw err;
  }
}
