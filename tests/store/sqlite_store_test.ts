// The store contract against the embedded SQLite store, plus its persistence.

import assert from "node:assert/strict";
import { SqliteStore } from "../../src/store/sqlite_store.ts";
import type { OfflineRules } from "../../src/store/store.ts";
import { storeContract } from "./store_contract.ts";

async function open(rules: OfflineRules, dir?: string) {
  const d = dir ?? await Deno.makeTempDir({ prefix: "sara-store-" });
  const s = await SqliteStore.open(d, rules);
  return Object.assign(s, {
    async [Symbol.asyncDispose]() {
      await s.close();
      if (!dir) await Deno.remove(d, { recursive: true });
    },
  });
}

storeContract("SqliteStore", (rules) => open(rules), { sharedDedup: false });

Deno.test("SqliteStore: entries and blacklists survive closing and reopening the file", async () => {
  const dir = await Deno.makeTempDir();
  const rules = { expire: 3600, max: 100, maxBytes: 1 << 20, policy: {}, dedupIds: 10 };
  try {
    {
      await using s = await open(rules, dir);
      const e = { user: "u@d", id: "1", from: "a@d", type: 1, ct: Date.now(), packet: "{}" };
      await s.commit({ appends: [e], removes: [], sent: [] });
      await s.block("u@d", "bad@d", 5);
    }
    await using s2 = await open(rules, dir);
    assert.equal((await s2.inbox("u@d")).length, 1);
    assert.equal(await s2.blocks("u@d", "bad@d"), true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SqliteStore: open fails with a clear message when datadir cannot be created", async () => {
  const f = await Deno.makeTempFile();
  try {
    await assert.rejects(
      SqliteStore.open(`${f}/sub`, { expire: 1, max: 1, maxBytes: 1, policy: {}, dedupIds: 0 }),
      /cannot create datadir/,
    );
  } finally {
    await Deno.remove(f);
  }
});
