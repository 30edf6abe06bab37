// One contract suite for every Store implementation (embedded and Redis):
// the same behaviour, proved the same way.

import assert from "node:assert/strict";
import type { InboxEntry, OfflineRules, Store } from "../../src/store/store.ts";

/** How to make a fresh, empty store for one test. */
export type StoreFactory = (rules: OfflineRules) => Promise<Store & AsyncDisposable>;

/** Options of the contract. */
export interface ContractOptions {
  /** The store persists sent ids for other nodes (Redis); the embedded one does not. */
  sharedDedup: boolean;
}

const RULES: OfflineRules = {
  expire: 3600,
  max: 5,
  maxBytes: 1 << 20,
  policy: { "100": "first", "101": "last" },
  dedupIds: 3,
};

let seq = 0;
function entry(user: string, from: string, type = 1, ct = Date.now()): InboxEntry {
  const id = `m${++seq}`;
  return {
    user,
    id,
    from,
    type,
    ct,
    packet: JSON.stringify({ envelope: { id, type, from, to: user } }),
  };
}

const batch = (appends: InboxEntry[], removes: { user: string; id: string }[] = []) => ({
  appends,
  removes,
  sent: [],
});

/** Registers the contract tests for `name`. */
export function storeContract(name: string, make: StoreFactory, opts: ContractOptions): void {
  const t = (what: string, fn: (s: Store) => Promise<void>, rules = RULES) =>
    Deno.test(`${name}: ${what}`, async () => {
      await using s = await make(rules);
      await fn(s);
    });

  t("commit appends in order and inbox() reads them oldest first", async (s) => {
    const es = [entry("u@d", "a@d"), entry("u@d", "b@d"), entry("u@d", "a@d")];
    const depths = await s.commit(batch(es));
    assert.equal(depths.get("u@d"), 3);
    assert.deepEqual((await s.inbox("u@d")).map((e) => e.id), es.map((e) => e.id));
    const got = (await s.inbox("u@d"))[0]!;
    assert.deepEqual(got, es[0]);
    assert.deepEqual(await s.inbox("nobody@d"), []);
  });

  t(
    "removes in a batch apply after its appends, and removing a missing id is harmless",
    async (s) => {
      const [a, b] = [entry("u@d", "a@d"), entry("u@d", "a@d")];
      await s.commit(batch([a!, b!], [{ user: "u@d", id: a!.id }, { user: "u@d", id: "nope" }]));
      assert.deepEqual((await s.inbox("u@d")).map((e) => e.id), [b!.id]);
    },
  );

  t("the cap keeps the newest entries and reports the depth", async (s) => {
    const es = Array.from({ length: 8 }, () => entry("u@d", "a@d"));
    const depths = await s.commit(batch(es.slice(0, 4)));
    assert.equal(depths.get("u@d"), 4);
    assert.equal((await s.commit(batch(es.slice(4)))).get("u@d"), 5);
    assert.deepEqual((await s.inbox("u@d")).map((e) => e.id), es.slice(3).map((e) => e.id));
    assert.equal(s.dropped.cap, 3);
  });

  t("policy first keeps the first entry of a type per sender; last keeps the last", async (s) => {
    const f1 = entry("u@d", "a@d", 100),
      f2 = entry("u@d", "a@d", 100),
      f3 = entry("u@d", "b@d", 100);
    const l1 = entry("u@d", "a@d", 101), l2 = entry("u@d", "a@d", 101);
    await s.commit(batch([f1, l1]));
    await s.commit(batch([f2, f3, l2]));
    assert.deepEqual((await s.inbox("u@d")).map((e) => e.id), [f1.id, f3.id, l2.id]);
  });

  t("expired entries are never read, and are counted once whoever deletes them", async (s) => {
    const old = entry("u@d", "a@d", 1, Date.now() - 3_700_000);
    const fresh = entry("u@d", "a@d");
    await s.commit(batch([old, fresh]));
    assert.deepEqual((await s.inbox("u@d")).map((e) => e.id), [fresh.id]);
    // A store may delete an expired entry where it meets it (Redis: on append
    // and read); the sweep then finds nothing left, but the count is the same.
    await s.sweepExpired();
    assert.equal(s.dropped.expired, 1);
    assert.deepEqual((await s.inbox("u@d")).map((e) => e.id), [fresh.id]);
  });

  t("sweepExpired() deletes entries that expired while stored", async (s) => {
    const e = entry("u@d", "a@d");
    await s.commit(batch([e]));
    await new Promise((r) => setTimeout(r, 1100));
    assert.equal(await s.sweepExpired(), 1);
    assert.equal(s.dropped.expired, 1);
    assert.deepEqual(await s.inbox("u@d"), []);
  }, { ...RULES, expire: 1 });

  t("a blocked sender's entries are not stored; unblock restores storing", async (s) => {
    await s.block("u@d", "bad@d", 1);
    assert.equal(await s.blocks("u@d", "bad@d"), true);
    assert.equal(await s.blocks("bad@d", "u@d"), false);
    await s.commit(batch([entry("u@d", "bad@d"), entry("bad@d", "u@d")]));
    assert.deepEqual(await s.inbox("u@d"), []);
    assert.equal((await s.inbox("bad@d")).length, 1);
    assert.equal(s.dropped.blocked, 1);
    await s.unblock("u@d", "bad@d");
    await s.unblock("u@d", "never@d");
    await s.commit(batch([entry("u@d", "bad@d")]));
    assert.equal((await s.inbox("u@d")).length, 1);
  });

  t("blacklist() lists oldest first with offset and limit", async (s) => {
    for (let i = 0; i < 5; i++) await s.block("o@d", `j${i}@d`, 1000 + i);
    await s.block("o@d", "j0@d", 9999); // already there: keeps its first time
    assert.deepEqual(await s.blacklist("o@d", 0, 2), [
      { jid: "j0@d", ct: "1000" },
      { jid: "j1@d", ct: "1001" },
    ]);
    assert.deepEqual((await s.blacklist("o@d", 3, 10)).map((b) => b.jid), ["j3@d", "j4@d"]);
    assert.deepEqual(await s.blacklist("empty@d", 0, 10), []);
  });

  t("group members are cached until dropped", async (s) => {
    assert.equal(await s.groupMembers("group_g1@d"), null);
    await s.setGroupMembers("group_g1@d", ["a", "b"], 3600);
    assert.deepEqual(await s.groupMembers("group_g1@d"), ["a", "b"]);
    await s.dropGroup("group_g1@d");
    assert.equal(await s.groupMembers("group_g1@d"), null);
  });

  t("group members expire after their ttl", async (s) => {
    await s.setGroupMembers("group_g2@d", ["a", "b"], 1);
    await new Promise((r) => setTimeout(r, 1100));
    assert.equal(await s.groupMembers("group_g2@d"), null);
  });

  t("ping() answers while the store is up", async (s) => {
    await s.ping();
  });

  if (opts.sharedDedup) {
    t("recentIds() returns the newest sent ids, at most dedup_ids, oldest first", async (s) => {
      const sent = ["a", "b", "c", "d"].map((id) => ({ from: "x@d", id }));
      await s.commit({ appends: [], removes: [], sent });
      assert.deepEqual(await s.recentIds("x@d"), ["b", "c", "d"]);
    });
  }
}
