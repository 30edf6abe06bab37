// The group member resolver on its own (docs/protocol.md §5): cache key and TTL, one
// callback per burst of misses, reload racing a callback, and cleaning of the
// backend's member list. A recording store stands in for the real one.

import assert from "node:assert/strict";
import { Callbacks } from "../../src/callbacks.ts";
import { GROUP_TTL_SECONDS, Groups } from "../../src/session/groups.ts";
import type { Store } from "../../src/store/store.ts";
import { answer, CallbackServer } from "../helpers/callback_server.ts";
import { CapturedLog } from "../helpers/log_capture.ts";

/** The group cache part of a store, recording every write. */
class CacheOnly {
  readonly cache = new Map<string, string[]>();
  readonly sets: [string, string[], number][] = [];

  groupMembers(key: string): Promise<string[] | null> {
    return Promise.resolve(this.cache.get(key) ?? null);
  }
  setGroupMembers(key: string, members: string[], ttl: number): Promise<void> {
    this.sets.push([key, members, ttl]);
    this.cache.set(key, members);
    return Promise.resolve();
  }
  dropGroup(key: string): Promise<void> {
    this.cache.delete(key);
    return Promise.resolve();
  }
}

async function withGroups(
  body: (g: Groups, store: CacheOnly, backend: CallbackServer, log: CapturedLog) => Promise<void>,
) {
  using log = new CapturedLog();
  await using backend = CallbackServer.start();
  const callbacks = new Callbacks({ url: backend.url, timeoutMs: 2000, log: log.log });
  const store = new CacheOnly();
  try {
    await body(new Groups(store as unknown as Store, callbacks, log.log), store, backend, log);
  } finally {
    callbacks.close();
  }
}

Deno.test("a miss asks the backend with gid and caches under group_<gid>@<domain> for an hour", async () => {
  await withGroups(async (groups, store, backend) => {
    backend.groups.set("g7", ["a", "b"]);
    assert.deepEqual(await groups.resolve("g7", "x.com"), ["a", "b"]);
    assert.equal(GROUP_TTL_SECONDS, 3600);
    assert.deepEqual(store.sets, [["group_g7@x.com", ["a", "b"], 3600]]);
    assert.deepEqual(backend.calls.map((c) => c.request.params), [{ gid: "g7" }]);
    assert.deepEqual(await groups.resolve("g7", "x.com"), ["a", "b"]);
    assert.equal(backend.calls.length, 1);
  });
});

Deno.test("a burst of misses for one group makes a single callback", async () => {
  await withGroups(async (groups, _store, backend) => {
    backend.groups.set("g", ["a", "b"]);
    const all = await Promise.all([1, 2, 3, 4, 5].map(() => groups.resolve("g", "d")));
    assert.ok(all.every((m) => m?.join() === "a,b"));
    assert.equal(backend.calls.length, 1);
  });
});

Deno.test("a reload while the callback runs serves its answer but does not cache it", async () => {
  await withGroups(async (groups, store, backend) => {
    let release!: () => void;
    const gate = new Promise<void>((r) => release = r);
    backend.responder = async (req) => {
      await gate;
      return answer(req, true, { users: ["old", "list"] });
    };
    const pending = groups.resolve("g", "d");
    await backend.waitFor("emsg_group.get_user_list", 1);
    await groups.reload("g", "d");
    release();
    assert.deepEqual(await pending, ["old", "list"]);
    assert.deepEqual(store.sets, []);
  });
});

Deno.test("duplicate and impossible member names are dropped with a warning", async () => {
  await withGroups(async (groups, _store, backend, log) => {
    backend.groups.set("g", ["a", "b", "a", "c d", "e@f", "", "g/h", null, { n: 1 }, 7]);
    assert.deepEqual(await groups.resolve("g", "d"), ["a", "b", "7"]);
    assert.match(log.text(), /6 member names ignored/);
  });
});

Deno.test("an empty member list is an unknown group and is not cached", async () => {
  await withGroups(async (groups, store, backend) => {
    backend.groups.set("g", []);
    assert.equal(await groups.resolve("g", "d"), null);
    assert.deepEqual(store.sets, []);
  });
});

Deno.test("without a callback URL every uncached group is unknown", async () => {
  using log = new CapturedLog();
  const store = new CacheOnly();
  store.cache.set("group_g@d", ["a", "b"]);
  const groups = new Groups(store as unknown as Store, null, log.log);
  assert.deepEqual(await groups.resolve("g", "d"), ["a", "b"]);
  assert.equal(await groups.resolve("other", "d"), null);
});
