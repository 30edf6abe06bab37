// The group-commit writer on its own: cancelled entries, full batches and
// the settled() barrier a login waits on.

import assert from "node:assert/strict";
import { InboxWriter, type WriterOptions } from "../../src/store/inbox_writer.ts";
import { SqliteStore } from "../../src/store/sqlite_store.ts";
import type { InboxEntry } from "../../src/store/store.ts";
import { FaultyStore } from "./_faulty_store.ts";

const RULES = { expire: 3600, max: 1000, maxBytes: 1 << 20, policy: {}, dedupIds: 10 };

async function withWriter(
  maxBatch: number,
  fn: (w: InboxWriter, s: FaultyStore) => Promise<void>,
  more: Partial<WriterOptions> = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "sara-writer-" });
  const store = new FaultyStore(await SqliteStore.open(dir, RULES));
  const w = new InboxWriter(store, { delayMs: 1, onlineGraceMs: 50, maxBatch, ...more });
  try {
    await fn(w, store);
  } finally {
    store.release();
    await w.close();
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function entry(id: string, user = "u@d"): InboxEntry {
  return { user, id, from: "a@d", type: 1, ct: Date.now(), packet: `{"id":"${id}"}` };
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

Deno.test("an entry acked before its batch leaves resolves with null and is never written", async () => {
  await withWriter(10, async (w, s) => {
    const p = w.append(entry("e1"));
    w.remove("u@d", "e1");
    assert.equal(await p, null);
    await w.drain();
    assert.deepEqual(s.appended("u@d"), []);
  });
});

Deno.test("entries behind a full batch of cancelled entries are still written", async () => {
  await withWriter(2, async (w) => {
    const cancelled = [w.append(entry("e1")), w.append(entry("e2"))];
    const kept = w.append(entry("e3"));
    w.remove("u@d", "e1");
    w.remove("u@d", "e2");
    assert.deepEqual(await Promise.all(cancelled), [null, null]);
    assert.equal(await within(kept, "e3"), 1);
  });
});

Deno.test("settled() resolves only once earlier appends and removes are in the store", async () => {
  await withWriter(2, async (w, s) => {
    await w.append(entry("old"));
    const release = s.gate();
    const written = [w.append(entry("e1")), w.append(entry("e2")), w.append(entry("e3"))];
    w.remove("u@d", "old");
    const settled = w.settled("u@d");
    release();
    await within(settled, "settled()");
    assert.deepEqual((await s.inbox("u@d")).map((e) => e.id), ["e1", "e2", "e3"]);
    await Promise.all(written);
  });
});

Deno.test("settled() resolves at once when nothing is queued", async () => {
  await withWriter(2, async (w) => {
    await within(w.settled("u@d"), "settled()", 100);
    await w.append(entry("e1"));
    await within(w.settled("u@d"), "settled()", 100);
  });
});

Deno.test("an entry delivered online waits for its ack longer than an offline one, then is written", async () => {
  await withWriter(100, async (w, s) => {
    const t0 = Date.now();
    const offline = w.append(entry("off", "x@d"));
    const online = w.append(entry("on", "y@d"), true);
    assert.equal(await offline, 1);
    assert.deepEqual(s.appended("y@d"), [], "the online entry is still waiting for its ack");
    assert.equal(await online, 1);
    assert.ok(Date.now() - t0 >= 45, "written only after onlineGraceMs");
    assert.deepEqual(s.appended("y@d"), ["on"]);
  });
});

Deno.test("an entry delivered to a session here waits localGraceMs, longer than a hand-off's grace", async () => {
  await withWriter(100, async (w, s) => {
    const t0 = Date.now();
    const handedOff = w.append(entry("ho", "x@d"), true);
    const local = w.append(entry("here", "y@d"), "local");
    assert.equal(await handedOff, 1);
    assert.ok(Date.now() - t0 >= 45, "the hand-off's entry waited onlineGraceMs");
    assert.equal(await local, 1);
    assert.ok(Date.now() - t0 >= 195, "the local one waited localGraceMs");
    assert.deepEqual(s.appended("y@d"), ["here"]);
  }, { localGraceMs: 200 });
});

Deno.test("an entry is written even when its timer fires before Date.now() reaches its due time", async () => {
  const realNow = Date.now;
  let behind = 0;
  // Timers and Date.now() run on different clocks: here the wall clock falls
  // 30 ms behind after the append, so the grace's timer fires "early".
  Date.now = () => realNow() - behind;
  try {
    await withWriter(100, async (w, s) => {
      const online = w.append(entry("on"), true);
      behind = 30;
      assert.equal(await within(online, "the online entry's write"), 1);
      assert.deepEqual(s.appended("u@d"), ["on"]);
    });
  } finally {
    Date.now = realNow;
  }
});

Deno.test("a writer over the embedded store collects no sent ids; one over a store that keeps them does", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sara-writer-" });
  const store = await SqliteStore.open(dir, RULES);
  const w = new InboxWriter(store, { delayMs: 1, onlineGraceMs: 50, maxBatch: 10 });
  try {
    assert.equal(w.keepsSent, false);
  } finally {
    await w.close();
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
  // FaultyStore does not say: a store that does not say keeps them.
  await withWriter(10, async (kept, s) => {
    assert.equal(kept.keepsSent, true);
    kept.sent("a@d", "m1");
    await kept.drain();
    assert.deepEqual(s.batches.flatMap((b) => b.sent.map((x) => x.id)), ["m1"]);
  });
});

Deno.test("an online entry acked within its grace is never written", async () => {
  await withWriter(100, async (w, s) => {
    const online = w.append(entry("on"), true);
    await new Promise((r) => setTimeout(r, 10));
    w.remove("u@d", "on");
    assert.equal(await online, null);
    await w.drain();
    assert.deepEqual(s.appended("u@d"), []);
  });
});

Deno.test("a user's entries leave together, in send order, when any of them is due", async () => {
  await withWriter(100, async (w, s) => {
    const first = w.append(entry("a1"), true);
    const second = w.append(entry("a2"));
    // Each resolves to the depth right after it went in (the offline callback's total).
    assert.equal(await second, 2);
    assert.equal(await first, 1);
    assert.deepEqual((await s.inbox("u@d")).map((e) => e.id), ["a1", "a2"]);
  });
});

Deno.test("settled(user) sends that user's waiting online entries at once", async () => {
  await withWriter(100, async (w, s) => {
    w.append(entry("on"), true);
    w.append(entry("other", "v@d"), true);
    await within(w.settled("u@d"), "settled()");
    // Still inside the other entry's grace: only this user's entry went out.
    assert.deepEqual(s.appended("u@d"), ["on"]);
    assert.deepEqual(s.appended("v@d"), []);
  });
});

Deno.test("more online entries than a batch holds still wait for their acks", async () => {
  await withWriter(2, async (w, s) => {
    const ids = ["o1", "o2", "o3", "o4", "o5"];
    const pending = ids.map((id) => w.append(entry(id, `${id}@d`), true));
    await new Promise((r) => setTimeout(r, 10));
    for (const id of ids) w.remove(`${id}@d`, id);
    assert.deepEqual(await Promise.all(pending), [null, null, null, null, null]);
    await w.drain();
    for (const id of ids) assert.deepEqual(s.appended(`${id}@d`), []);
  });
});
