// Joins (and leaves) the cluster of nodes sharing the Redis `dbaddr` names:
// claims the nodeid, clears the sessions an earlier life of this node left
// registered, and listens on this node's channel.

import type { Config } from "../config/config.ts";
import { errMsg, type Logger } from "../log.ts";
import { SingleFlight } from "../async.ts";
import { connectRedis, describe, parseDbaddr, type RedisClient } from "../store/redis_client.ts";
import { batchHandler } from "./channel.ts";
import { channelOf } from "./keys.ts";
import { LIVENESS, Liveness, type LivenessTiming } from "./liveness.ts";
import { Registry } from "./registry.ts";
import { type ClusterNodeDeps, ClusterRemote, kickHere } from "./remote.ts";
import { Sender } from "./sender.ts";
import { clusterNodes, Subscriber } from "./subscriber.ts";

/** This node's membership in a cluster. */
export interface ClusterNode {
  /** Router.remote and the RPC presence of this node. */
  readonly remote: ClusterRemote;
  /** Waits for pending registry steps, releases the nodeid, closes both connections. */
  stop(): Promise<void>;
}

/**
 * Joins the cluster with one command and one subscriber connection. Rejects
 * when Redis cannot be reached, when `signal` aborts a wait for a Redis
 * Cluster not ready yet, or (ConfigError) when a live node already runs this
 * nodeid; nothing is left open then.
 */
export async function joinCluster(
  config: Config,
  node: ClusterNodeDeps,
  log: Logger,
  signal?: AbortSignal,
  timing: LivenessTiming = LIVENESS,
): Promise<ClusterNode> {
  const nodeid = config.nodeid;
  const target = parseDbaddr(config.dbaddr, config.dbpassword, config.dbtls);
  const client = await connectRedis(target, `sara-${nodeid}`, signal);
  let sub: Subscriber | null = null;
  let liveness: Liveness | null = null;
  try {
    // With multi_login the oldest session beyond max_sessions may be one of ours.
    const sender = new Sender(client, nodeid, log, !target.cluster);
    const kick = async (peer: string, jid: string, sid: string) => {
      if (peer === nodeid) kickHere(node, jid, sid);
      else await sender.send(peer, { t: "kick", jid, sid });
    };
    const multi = config.multi_login ? { maxSessions: config.max_sessions } : null;
    const registry = new Registry(client, nodeid, log, kick, multi);
    const restore = restorer(registry, log);
    liveness = await Liveness.claim(client, nodeid, log, timing, restore);
    log.info(`register node : ${nodeid} (${describe(target)})`);
    const remote = new ClusterRemote(nodeid, node, registry, liveness, log, sender);
    log.info(`clean ghost session: ${await registry.clearGhosts()} cleared`);
    const channel = channelOf(nodeid);
    const onMessage = batchHandler(channel, log, (m) => remote.receive(m));
    sub = new Subscriber(
      target,
      `sara-${nodeid}-sub`,
      channel,
      onMessage,
      log,
      clusterNodes(client),
      () => remote.subscriptionGap(),
    );
    await sub.start();
    // Redis came back (restart, failover): what it lost of our registrations goes back.
    client.on("ready", restore);
    const [live, subscriber] = [liveness, sub];
    return {
      remote,
      async stop() {
        remote.stop();
        await registry.settled();
        await live.stop();
        await subscriber.close();
        await close(client);
      },
    };
  } catch (err) {
    await liveness?.stop();
    await sub?.close();
    await close(client);
    throw err;
  }
}

/** Runs `registry.restore()` once at a time, logging instead of throwing. */
function restorer(registry: Registry, log: Logger): () => void {
  const flight = new SingleFlight<"restore", void>();
  return () =>
    void flight.run("restore", () =>
      registry.restore()
        .catch((err) => log.warn(`cluster: cannot restore session entries: ${errMsg(err)}`)));
}

async function close(c: RedisClient): Promise<void> {
  try {
    await c.quit();
  } catch {
    c.disconnect(); // Redis away: just stop reconnecting
  }
}
