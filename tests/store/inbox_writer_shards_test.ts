// The group-commit writer over a store in several shards (as a Redis Cluster's
// masters are): a shard whose commit hangs or fails holds up only its own
// users, a user's entries still reach the inbox in send order, and settled()
// waits for a commit of that user that is still out.

import assert from "node:assert/strict";
import { StoreError } from "../../src/errors.ts";
import { InboxWriter } from "../../src/store/inbox_writer.ts";
import { SqliteStore } from "../../src/store/sqlite_store.ts";
import type { Batch, Depths, InboxEntry, Store } from "../../src/store/store.ts";

const RULES = { expire: 3600, max: 1000, policy: {}, dedupIds: 10, maxBytes: 1 << 20 };

/** A SQLite store whose shard is the JID's domain; commits of a held shard wait (or fail). */
class ShardedStore {
  readonly batches: Batch[] = [];
  readonly #held = new Map<string, { promise: Promise<void>; fail: boolean; go(): void }>();

  constructor(readonly inner: SqliteStore) {}

  shard(user: string): string {
    return user.split("@")[1]!;
  }

  /** Holds commits of `shard` until release(shard); with `fail` they then reject. */
  hold(shard: string, fail = false): void {
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#held.set(shard, { promise, fail, go: resolve });
  }

  release(shard: string): void {
    this.#held.get(shard)?.go();
    this.#held.delete(shard);
  }

  async commit(batch: Batch): Promise<Depths> {
    this.batches.push(batch);
    const shards = new Set([...batch.appends, ...batch.removes].map((e) => this.shard(e.user)));
    for (const s of shards) {
      const h = this.#held.get(s);
      if (!h) continue;
      await h.promise;
      if (h.fail) throw new StoreError(`shard ${s} is down`);
    }
    return await this.inner.commit(batch);
  }
}

async function withWriter(fn: (w: InboxWriter, s: ShardedStore) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "sara-shards-" });
  const inner = await SqliteStore.open(dir, RULES);
  const s = new ShardedStore(inner);
  // Only what the writer calls; the rest of the store is the SQLite one's.
  const store = Object.assign(Object.create(inner) as Store, {
    shard: (u: string) => s.shard(u),
    commit: (b: Batch) => s.commit(b),
  });
  const w = new InboxWriter(store, { delayMs: 1, onlineGraceMs: 50, maxBatch: 100 });
  try {
    await fn(w, s);
  } finally {
    s.release("a");
    s.release("b");
    await w.close();
    await inner.close();
    await Deno.remove(dir, { recursive: true });
  }
}

let seq = 0;
function entry(user: string): InboxEntry {
  const id = `e${++seq}`;
  return { user, id, from: "x@c", type: 1, ct: Date.now(), packet: `{"id":"${id}"}` };
}

/** Rejects when `p` has not settled within `ms`: a write that never happens is a failure. */
async function within<T>(p: Promise<T>, what: string, ms = 3000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not settled within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** True once `p` settled (checked after a macrotask, so that its reactions ran). */
async function settledYet(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(() => done = true, () => done = true);
  await new Promise((r) => setTimeout(r, 20));
  return done;
}

Deno.test("while one shard's commit hangs, entries for users of another shard are committed", async () => {
  await withWriter(async (w, s) => {
    s.hold("a");
    const stuck = w.append(entry("u@a"));
    const ok = w.append(entry("v@b"));
    assert.equal(await within(ok, "v@b's entry"), 1);
    // Later entries of the healthy shard go too, while the first commit is still out.
    assert.equal(await within(w.append(entry("v@b")), "v@b's second entry"), 2);
    assert.equal(await settledYet(stuck), false);
    s.release("a");
    assert.equal(await within(stuck, "u@a's entry"), 1);
  });
});

Deno.test("a shard's failed commit fails only its own entries", async () => {
  await withWriter(async (w, s) => {
    s.hold("a", true);
    const lost = w.append(entry("u@a"));
    const kept = w.append(entry("v@b"));
    assert.equal(await within(kept, "v@b's entry"), 1);
    s.release("a");
    await assert.rejects(within(lost, "u@a's entry"), StoreError);
    assert.equal((await s.inner.inbox("u@a")).length, 0);
  });
});

Deno.test("a failed commit fails its users' entries queued behind it, not other users' of the shard", async () => {
  await withWriter(async (w, s) => {
    s.hold("a", true);
    const failed = w.append(entry("u@a"));
    await new Promise((r) => setTimeout(r, 20)); // its batch has left
    // Queued behind it: written once it is back, they would be ahead of the
    // failed one, which its sender sends again only once told.
    const behind = [w.append(entry("u@a")), w.append(entry("u@a"))];
    const otherUser = w.append(entry("x@a"));
    s.release("a");
    await assert.rejects(within(failed, "the first entry"), StoreError);
    for (const p of behind) await assert.rejects(within(p, "an entry behind it"), StoreError);
    assert.equal(await within(otherUser, "x@a's entry"), 1);
    assert.equal((await s.inner.inbox("u@a")).length, 0);
    // Appended after the failure: written as usual.
    assert.equal(await within(w.append(entry("u@a")), "a later entry"), 1);
  });
});

Deno.test("a user's entries queued while its commit is out wait for it and reach the inbox in send order", async () => {
  await withWriter(async (w, s) => {
    s.hold("a");
    const first = entry("u@a");
    const p1 = w.append(first);
    await new Promise((r) => setTimeout(r, 20)); // its batch has left
    const later = [entry("u@a"), entry("u@a")];
    const ps = later.map((e) => w.append(e));
    await new Promise((r) => setTimeout(r, 20));
    // Nothing of u@a was handed to the store behind the first commit.
    assert.equal(s.batches.filter((b) => b.appends.some((e) => e.user === "u@a")).length, 1);
    s.release("a");
    await within(Promise.all([p1, ...ps]), "u@a's entries");
    const ids = (await s.inner.inbox("u@a")).map((e) => e.id);
    assert.deepEqual(ids, [first.id, later[0]!.id, later[1]!.id]);
  });
});

Deno.test("settled(user) waits for that user's commit in flight, not for another shard's", async () => {
  await withWriter(async (w, s) => {
    s.hold("a");
    const written = w.append(entry("u@a"));
    await new Promise((r) => setTimeout(r, 20)); // its batch has left
    const settledA = w.settled("u@a");
    w.append(entry("v@b"));
    await within(w.settled("v@b"), "settled(v@b)");
    assert.equal(await settledYet(settledA), false);
    s.release("a");
    await within(settledA, "settled(u@a)");
    await written;
  });
});

Deno.test("an ack of an entry whose commit is out is applied after that commit, so the entry does not come back", async () => {
  await withWriter(async (w, s) => {
    s.hold("a");
    const e = entry("u@a");
    const p = w.append(e);
    await new Promise((r) => setTimeout(r, 20)); // its batch has left
    w.remove("u@a", e.id);
    const settled = w.settled("u@a");
    s.release("a");
    await within(Promise.all([p, settled]), "commit and ack");
    assert.deepEqual(await s.inner.inbox("u@a"), []);
  });
});
