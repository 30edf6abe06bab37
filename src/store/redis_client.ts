// Connections to Redis (one server or a Redis Cluster) as `dbaddr` names
// them: parsing the address forms, and fail-fast ioredis options (a command
// while Redis is away rejects at once instead of waiting in a queue).

import { Cluster, Redis, type RedisOptions } from "ioredis";
import { ConfigError, StoreError } from "../errors.ts";
import { errMsg } from "../log.ts";

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
 * real cause when Redis cannot be reached now. Once connected it reconnects
 * by itself forever (backoff up to 1 s); commands fail fast meanwhile.
 */
export async function connectRedis(t: RedisTarget, name: string): Promise<RedisClient> {
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
  try {
    await client.connect();
  } catch (err) {
    // A client that gave up is already "end"; disconnecting it again would
    // leave an ioredis timer behind.
    if (client.status !== "end") client.disconnect();
    const cause = lastError?.message ?? errMsg(err);
    throw new StoreError(`cannot connect to ${describe(t)}: ${cause}`);
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
  return (...args) => method.apply(client, args);
}
