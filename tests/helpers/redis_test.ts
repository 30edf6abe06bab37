// Proves the Redis test helpers: real redis-server processes on free ports, AOF-backed
// restarts, a 3-master cluster, and a clear failure when Redis is not installed.
import { redisCommand, runRedisCli, startRedis, startRedisCluster } from "./redis.ts";

function assertEquals(actual: unknown, expected: unknown, what: string): void {
  if (actual !== expected) {
    throw new Error(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

async function assertRefused(port: number): Promise<void> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.close();
  } catch (err) {
    if (err instanceof Deno.errors.ConnectionRefused) return;
    throw err;
  }
  throw new Error(`port ${port} still accepts connections`);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

Deno.test("startRedis() answers PING on a loopback port and stop() ends it and removes its dir", async () => {
  const redis = await startRedis();
  assertEquals(redis.addr, `127.0.0.1:${redis.port}`, "addr");
  assertEquals(await redisCommand(redis.port, "PING"), "PONG", "PING reply");
  await redis.stop();
  await assertRefused(redis.port);
  assertEquals(await exists(redis.dir), false, "temp dir exists after stop");
  await redis.stop(); // idempotent
});

Deno.test("startRedis() runs with AOF on, the chosen appendfsync and no RDB snapshots", async () => {
  await using redis = await startRedis({ appendfsync: "always" });
  const get = (key: string) => runRedisCli(["-p", String(redis.port), "CONFIG", "GET", key]);
  assertEquals(await get("appendonly"), "appendonly\nyes\n", "appendonly");
  assertEquals(await get("appendfsync"), "appendfsync\nalways\n", "appendfsync");
  assertEquals(await get("save"), "save\n\n", "save");
});

Deno.test("restart() after a graceful shutdown keeps the data on the same port", async () => {
  await using redis = await startRedis();
  const port = redis.port;
  assertEquals(await redisCommand(port, "SET", "k", "välue"), "OK", "SET");
  await redis.restart();
  assertEquals(redis.port, port, "port after restart");
  assertEquals(await redisCommand(port, "GET", "k"), "välue", "GET after restart");
});

Deno.test("kill() stops the server at once and restart() recovers writes acked under appendfsync always", async () => {
  await using redis = await startRedis({ appendfsync: "always" });
  assertEquals(await redisCommand(redis.port, "INCR", "n"), 1, "INCR");
  await redis.kill();
  await assertRefused(redis.port);
  await redis.restart();
  assertEquals(await redisCommand(redis.port, "GET", "n"), "1", "GET after crash and restart");
});

Deno.test("startRedis() with a given dir leaves the dir in place after stop()", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sara-redis-test-" });
  try {
    const redis = await startRedis({ dir });
    assertEquals(redis.dir, dir, "dir");
    await redis.stop();
    assertEquals(await exists(`${dir}/appendonlydir`), true, "AOF dir kept");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("two servers started at once get different ports", async () => {
  await using a = await startRedis();
  await using b = await startRedis();
  if (a.port === b.port) throw new Error(`both servers on port ${a.port}`);
  await redisCommand(a.port, "SET", "where", "a");
  assertEquals(await redisCommand(b.port, "GET", "where"), null, "key leaked across servers");
});

Deno.test("startRedisCluster() joins 3 masters covering all slots, cluster_state:ok on each", async () => {
  await using cluster = await startRedisCluster();
  assertEquals(cluster.ports.length, 3, "node count");
  assertEquals(cluster.addr, cluster.ports.map((p) => `127.0.0.1:${p}`).join(","), "addr");
  for (const port of cluster.ports) {
    const info = String(await redisCommand(port, "CLUSTER", "INFO"));
    for (const line of ["cluster_state:ok", "cluster_slots_assigned:16384", "cluster_size:3"]) {
      if (!info.includes(line)) throw new Error(`node ${port} lacks ${line}:\n${info}`);
    }
  }
  // -c follows MOVED redirections, so the key lands on whichever node owns its slot
  const first = String(cluster.ports[0]);
  await runRedisCli(["-c", "-p", first, "SET", "{user@dom}:seq", "7"]);
  assertEquals(await runRedisCli(["-c", "-p", first, "GET", "{user@dom}:seq"]), "7\n", "GET");
});

Deno.test("startRedis() fails with a hint to run scripts/install_deps.sh when redis-server is missing", async () => {
  const helper = new URL("./redis.ts", import.meta.url).href;
  const code = `import { startRedis } from ${JSON.stringify(helper)};
try { await startRedis(); console.log("started"); } catch (err) { console.log(err.message); }`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-config", code],
    env: { PATH: "/nonexistent" },
    stdin: "null",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  if (!stdout.includes("redis-server is not installed: run scripts/install_deps.sh")) {
    throw new Error(`unexpected output: ${stdout}${new TextDecoder().decode(out.stderr)}`);
  }
});

Deno.test("startRedis() rejects with redis-server's own log when the server cannot start", async () => {
  try {
    await startRedis({ dir: "/nonexistent/sara-redis-dir" });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (!message.includes("did not start") || !message.includes("/nonexistent/sara-redis-dir")) {
      throw new Error(`unexpected error: ${message}`);
    }
    return;
  }
  throw new Error("startRedis() resolved with an unusable dir");
});
