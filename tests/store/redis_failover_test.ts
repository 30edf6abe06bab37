// The Redis store on a Redis Cluster with one replica per master while the
// topology changes under it: a master killed and its replica promoted (with
// cluster-require-full-coverage on and off), a slot resharded to another
// master. The store must follow on its own, without a restart.

import assert from "node:assert/strict";
import { parseDbaddr } from "../../src/store/redis_client.ts";
import { userKeys } from "../../src/store/redis_keys.ts";
import { InboxWriter } from "../../src/store/inbox_writer.ts";
import { RedisStore } from "../../src/store/redis_store.ts";
import type { InboxEntry, OfflineRules } from "../../src/store/store.ts";
import { type RedisCluster, redisCommand, startRedisCluster } from "../helpers/redis.ts";

const RULES: OfflineRules = { expire: 3600, max: 100, maxBytes: 1 << 20, policy: {}, dedupIds: 10 };
const USERS = Array.from({ length: 60 }, (_, i) => `f${i}@d`);

let seq = 0;
function entry(user: string): InboxEntry {
  const id = `m${++seq}`;
  return { user, id, from: "a@d", type: 1, ct: Date.now(), packet: JSON.stringify({ id }) };
}

/** One commit with a new entry for each of `users` (a batch over many slots). */
function commitAll(s: RedisStore, users: string[]): Promise<InboxEntry[]> {
  const es = users.map(entry);
  return s.commit({ appends: es, removes: [], sent: [] }).then(() => es);
}

async function open(c: RedisCluster) {
  const s = await RedisStore.open(parseDbaddr(c.addr), RULES, {
    pool: 16,
    connectionName: "sara-test",
  });
  return Object.assign(s, { [Symbol.asyncDispose]: () => s.close() });
}

for (const fullCoverage of [true, false]) {
  const setting = fullCoverage ? "yes" : "no";
  Deno.test(`RedisStore: after a master is killed and its replica promoted, the first commit over every slot succeeds without a restart (cluster-require-full-coverage ${setting})`, async () => {
    await using c = await startRedisCluster({ replicas: 1, fullCoverage });
    await using s = await open(c);
    await commitAll(s, USERS);
    const victim = await c.masterOf(userKeys(USERS[0]!).inbox);
    const replica = await c.replicaOf(victim);
    await victim.kill();
    await c.waitPromoted(replica);
    // ioredis alone answers this batch with MOVED for every slot the
    // replica took over, and every later one too, until a restart.
    const es = await commitAll(s, USERS);
    for (const e of [es[0]!, es.at(-1)!]) {
      assert.ok((await s.inbox(e.user)).some((x) => x.id === e.id), `${e.id} of ${e.user}`);
    }
    await s.ping();
  });
}

Deno.test("InboxWriter on RedisStore: while a master and its replica are down, entries for users on the other masters are committed and only the others fail (cluster-require-full-coverage no)", async () => {
  await using c = await startRedisCluster({ replicas: 1, fullCoverage: false });
  await using s = await open(c);
  await commitAll(s, USERS);
  const victim = await c.masterOf(userKeys(USERS[0]!).inbox);
  const owners = await Promise.all(USERS.map((u) => c.masterOf(userKeys(u).inbox)));
  const [down, up] = [
    USERS.filter((_, i) => owners[i] === victim),
    USERS.filter((_, i) => owners[i] !== victim),
  ];
  const replica = await c.replicaOf(victim);
  await Promise.all([victim.kill(), replica.kill()]);
  const w = new InboxWriter(s, { delayMs: 3, onlineGraceMs: 50, maxBatch: 512 });
  // All queued in one tick, as one group commit would have taken them.
  const appended = USERS.map((u) => ({ user: u, e: entry(u) }));
  const results = await Promise.allSettled(appended.map(({ e }) => w.append(e)));
  const failed = appended.filter((_, i) => results[i]!.status === "rejected").map((a) => a.user);
  assert.deepEqual(failed.sort(), [...down].sort());
  const e = appended.find((a) => a.user === up[0])!.e;
  assert.ok((await s.inbox(e.user)).some((x) => x.id === e.id));
  await w.close();
});

/** Starts moving `user`'s slot to another master: its keys go over, the slot stays with the old one. */
async function startMigration(c: RedisCluster, user: string) {
  const keys = userKeys(user);
  const from = await c.masterOf(keys.inbox);
  const to = c.nodes.find((n) => n !== from)!;
  const slot = String(await redisCommand(from.port, "CLUSTER", "KEYSLOT", keys.inbox));
  const id = async (port: number) => String(await redisCommand(port, "CLUSTER", "MYID"));
  const [fromId, toId] = [await id(from.port), await id(to.port)];
  await redisCommand(to.port, "CLUSTER", "SETSLOT", slot, "IMPORTING", fromId);
  await redisCommand(from.port, "CLUSTER", "SETSLOT", slot, "MIGRATING", toId);
  // Every key of the user's slot (the policy hash too): a key left behind
  // makes SETSLOT NODE refuse the hand-over ("still hold keys"); MIGRATE
  // answers NOKEY for one that does not exist.
  for (const key of Object.values(keys)) {
    await redisCommand(from.port, "MIGRATE", "127.0.0.1", String(to.port), key, "0", "5000");
  }
  return {
    /** Hands the slot to the new master on every node. */
    finish: async () => {
      for (const n of c.nodes) await redisCommand(n.port, "CLUSTER", "SETSLOT", slot, "NODE", toId);
    },
  };
}

Deno.test("RedisStore: a commit follows a slot resharded to another master (MOVED), and one sent while its slot migrates succeeds once the migration ends (ASK, TRYAGAIN)", async () => {
  await using c = await startRedisCluster();
  await using s = await open(c);
  await commitAll(s, USERS);
  const [moved, migrating] = [USERS[0]!, USERS[1]!];
  await (await startMigration(c, moved)).finish();
  const migration = await startMigration(c, migrating);
  // Both users in one batch with users of every other slot.
  const commit = commitAll(s, USERS);
  await new Promise((r) => setTimeout(r, 300));
  await migration.finish();
  const es = await commit;
  // The migrating slot's commit was refused (ASK or TRYAGAIN) and sent again.
  assert.ok(s.retries.ok > 0, "no command was sent again");
  assert.equal(s.retries.failed, 0);
  for (const e of es.slice(0, 2)) {
    assert.ok((await s.inbox(e.user)).some((x) => x.id === e.id), `${e.id} of ${e.user}`);
  }
});
