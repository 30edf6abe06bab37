// docs/configuration.md documents every key: each key of the config (the
// defaults name them all) has a row in its table, and the table names no key
// the config does not have.

import assert from "node:assert/strict";
import { DEFAULTS } from "../../src/config/config.ts";

const DOC = new URL("../../docs/configuration.md", import.meta.url);

/** Key names in the first cell of each table row (`a` / `b` rows name several). */
function documentedKeys(doc: string): Set<string> {
  const keys = new Set<string>();
  for (const line of doc.split("\n")) {
    const first = /^\|([^|]*)\|/.exec(line)?.[1];
    if (first === undefined) continue;
    for (const m of first.matchAll(/`([a-z_]+)`/g)) keys.add(m[1]!);
  }
  return keys;
}

Deno.test("docs/configuration.md has a row for every config key and none for a key that does not exist", () => {
  const documented = documentedKeys(Deno.readTextFileSync(DOC));
  const keys = Object.keys(DEFAULTS);
  assert.deepEqual(keys.filter((k) => !documented.has(k)), [], "keys without a row");
  assert.deepEqual([...documented].filter((k) => !keys.includes(k)), [], "rows of unknown keys");
});
