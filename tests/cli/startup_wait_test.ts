// A node whose Redis Cluster answers but is not ready (cluster_state:fail: slots without a
// master, or a fresh cluster whose nodes do not agree yet) waits for it during startup, as
// docs/operations.md says: it starts once the cluster is ready, stops at once on SIGTERM, and
// exits 1 naming the cluster once startup_timeout has passed. It used to wait forever, deaf
// to SIGTERM (ioredis' connect never settled).

import assert from "node:assert/strict";
import { connectRedis, parseDbaddr } from "../../src/store/redis_client.ts";
import { processConfig, SaraProcess } from "../helpers/process.ts";
import { redisCommand, type RedisServer, startRedis } from "../helpers/redis.ts";

/** A lone cluster node owning slots 0-100 only: it answers CLUSTER SLOTS, state fail. */
async function notReadyCluster(): Promise<RedisServer> {
  const redis = await startRedis({ clusterNode: true });
  await redisCommand(redis.port, "CLUSTER", "ADDSLOTSRANGE", "0", "100");
  return redis;
}

/** Starts `sara` on that node (named twice: a list of addresses is a Redis Cluster). */
async function startNode(dir: string, redis: RedisServer, extra: Record<string, unknown> = {}) {
  const conf = `${dir}/conf.json`;
  const config = processConfig(dir, {
    dbaddr: `${redis.addr},${redis.addr}`,
    nodeid: `wait${Date.now().toString(36)}`,
    datadir: `${dir}/data`,
    ...extra,
  });
  await Deno.writeTextFile(conf, JSON.stringify(config));
  return SaraProcess.start(["-c", conf]);
}

/** Connections Redis accepted so far, less the one that asks. */
async function connectionsReceived(redis: RedisServer): Promise<number> {
  const info = String(await redisCommand(redis.port, "INFO", "stats"));
  return Number(/total_connections_received:(\d+)/.exec(info)![1]) - 1;
}

/** Resolves once the node connected `n` more times: it is asking again, not stuck. */
async function untilRetried(redis: RedisServer, sara: SaraProcess, n: number): Promise<void> {
  const start = await connectionsReceived(redis);
  const deadline = Date.now() + 20_000;
  let exited = false;
  sara.status.then(() => exited = true);
  // Each poll is one more connection of this test's own.
  for (let polls = 1; await connectionsReceived(redis) - polls < start + n; polls++) {
    if (exited) throw new Error(`sara exited while waiting:\n${sara.output}`);
    if (Date.now() > deadline) throw new Error(`sara did not connect again:\n${sara.output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The exit status, or a failure naming the output if the process hangs (the old bug). */
async function exited(sara: SaraProcess, ms = 20_000): Promise<Deno.CommandStatus> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`still running after ${ms} ms:\n${sara.output}`)),
      ms,
    );
  });
  try {
    return await Promise.race([sara.status, hung]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `f` with a node started on a not-ready cluster; removes everything afterwards. */
async function withWaitingNode(
  extra: Record<string, unknown>,
  f: (sara: SaraProcess, redis: RedisServer) => Promise<void>,
): Promise<void> {
  await using redis = await notReadyCluster();
  const dir = await Deno.makeTempDir();
  try {
    await using sara = await startNode(dir, redis, extra);
    await f(sara, redis);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a node whose Redis Cluster is not ready waits, and starts listening once it is ready", () =>
  withWaitingNode({}, async (sara, redis) => {
    await untilRetried(redis, sara, 3);
    assert.ok(!sara.output.includes("tcp start on"), sara.output);
    await redisCommand(redis.port, "CLUSTER", "ADDSLOTSRANGE", "101", "16383");
    assert.ok(await sara.port("tcp") > 0);
    sara.kill("SIGTERM");
    assert.equal((await exited(sara)).code, 0, sara.output);
  }));

Deno.test("SIGTERM while a node waits for a Redis Cluster that is not ready ends it with exit 0, never listening", () =>
  withWaitingNode({}, async (sara, redis) => {
    await untilRetried(redis, sara, 3);
    sara.kill("SIGTERM");
    assert.equal((await exited(sara)).code, 0, sara.output);
    assert.match(sara.output, /SIGTERM received during startup, stopped before listening/);
    assert.ok(!sara.output.includes("tcp start on"), sara.output);
  }));

Deno.test("a node whose Redis Cluster stays not ready exits 1 after startup_timeout, naming the cluster and why", () =>
  withWaitingNode({ startup_timeout: 1 }, async (sara, redis) => {
    assert.equal((await exited(sara)).code, 1, sara.output);
    const line = sara.output.split("\n").find((l) => l.includes("startup failed")) ?? "";
    assert.ok(line.includes(`redis-cluster:${redis.addr}`), sara.output);
    assert.match(line, /is not ready: cluster_state is not ok or no slot owner answers/);
    assert.match(line, /not listening within startup_timeout \(1 s\)/);
  }));

Deno.test("a connect to a Redis Cluster that is not ready rejects at once without a startup signal", async () => {
  await using redis = await notReadyCluster();
  const target = parseDbaddr(`${redis.addr},${redis.addr}`);
  await assert.rejects(connectRedis(target, "sara-test"), /is not ready: cluster_state is not ok/);
});
