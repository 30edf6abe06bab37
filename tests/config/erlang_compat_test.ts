// conf/erlang-compat.json, the example config of docs/erlang-sdks.md: the real
// loader accepts it without a warning, and a node running on it behaves as the
// Erlang-era SDK tests expect (auth through the callback, at most offline_max
// stored messages, each delivered as its own packet after the login answer).

import assert from "node:assert/strict";
import type { Config } from "../../src/config/config.ts";
import { loadConfig } from "../../src/config/load.ts";
import { CallbackServer } from "../helpers/callback_server.ts";
import { TestClient } from "../helpers/client.ts";
import { startTestServer } from "../helpers/server.ts";

const PATH = new URL("../../conf/erlang-compat.json", import.meta.url).pathname;

Deno.test("conf/erlang-compat.json loads through the config loader without warnings", async () => {
  const { config, warnings } = await loadConfig(PATH, true);
  assert.deepEqual(warnings, []);
  assert.equal(config.offline_delivery, "packets");
  assert.equal(config.offline_max, 10);
  assert.deepEqual(config.offline_policy, { "100": "first", "101": "last" });
  assert.equal(config.multi_login, false);
  assert.equal(config.enable_auth, true);
  assert.notEqual(config.accesstoken, "", "apps call the blacklist RPC from outside loopback");
});

Deno.test("a node on conf/erlang-compat.json sends the newest offline_max stored messages as packets after the login", async () => {
  const { config } = await loadConfig(PATH, true);
  const keys = Object.keys(JSON.parse(await Deno.readTextFile(PATH))) as (keyof Config)[];
  const fromFile = Object.fromEntries(keys.map((k) => [k, config[k]])) as Partial<Config>;
  await using cb = CallbackServer.start();
  await using srv = await startTestServer({ ...fromFile, callback: cb.url });
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  const ids: string[] = [];
  for (let i = 0; i < 12; i++) ids.push(await a.chat("b@d", `m${i}`, { ack: 1 }));
  for (const _ of ids) assert.equal((await a.nextPacket()).json.envelope.type, 3);

  await using b = await TestClient.connect(srv.port);
  const answer = await b.login("b@d");
  assert.deepEqual(answer.json.entity, { result: "ok" });
  assert.deepEqual(answer.json.delay, { total: 0 });
  const got: string[] = [];
  for (let i = 0; i < 10; i++) got.push((await b.nextPacket()).json.envelope.id);
  assert.deepEqual(got, ids.slice(2));
  assert.deepEqual(cb.of("emsg_auth.auth").map((c) => c.request.params.uid), ["a", "b"]);
});
