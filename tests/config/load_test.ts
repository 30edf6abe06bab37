// Config loading: defaults, type checks naming the key, unknown keys, missing files.

import assert from "node:assert/strict";
import { DEFAULTS } from "../../src/config/config.ts";
import { loadConfig, parseConfig } from "../../src/config/load.ts";
import { ConfigError } from "../../src/errors.ts";

Deno.test("parseConfig() applies keys over the defaults", () => {
  const { config, warnings } = parseConfig({ port: 5000, nodeid: "n9", enable_tls: true }, "t");
  assert.equal(config.port, 5000);
  assert.equal(config.nodeid, "n9");
  assert.equal(config.enable_tls, true);
  assert.equal(config.wsport, DEFAULTS.wsport);
  assert.deepEqual(warnings, []);
});

Deno.test("parseConfig() warns about unknown keys and ignores them", () => {
  const { warnings } = parseConfig({ nosuchkey: 1 }, "f.json");
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /nosuchkey/);
});

Deno.test("parseConfig() refuses a key of the wrong type, naming the file and the key", () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ port: "4222" }, /f\.json.*"port".*integer/],
    [{ enable_ws: "yes" }, /"enable_ws".*true or false/],
    [{ nodeid: 3 }, /"nodeid".*string/],
    [{ port: 70000 }, /"port"/],
    [{ loglevel: 1.5 }, /"loglevel"/],
    [{ offline_delivery: "mail" }, /"offline_delivery".*delay, packets/],
    [{ offline_policy: { "100": "newest" } }, /"offline_policy"/],
    [{ offline_policy: [] }, /"offline_policy"/],
  ];
  for (const [json, re] of cases) {
    assert.throws(() => parseConfig(json, "f.json"), (e: Error) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, re);
      return true;
    });
  }
});

Deno.test("loadConfig() runs on defaults with a warning when the default file is missing", async () => {
  const { config, warnings } = await loadConfig("/nonexistent/sara/conf.json", false);
  assert.deepEqual(config, DEFAULTS);
  assert.equal(warnings.length, 1);
});

Deno.test("loadConfig() fails on a missing required file and on a file that is not JSON", async () => {
  await assert.rejects(loadConfig("/nonexistent/conf.json", true), /\/nonexistent\/conf\.json/);
  const f = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(f, "{ nope");
    await assert.rejects(loadConfig(f, true), new RegExp(`${f} is not JSON`));
  } finally {
    await Deno.remove(f);
  }
});
