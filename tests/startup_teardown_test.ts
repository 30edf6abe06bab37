// One teardown: a failure at each startup stage (cluster join, then each
// listener in turn) releases everything acquired before it: the store is
// closed once, the ports of the listeners that started are free again, the
// nodeid is released in Redis, and no timer or socket outlives the attempt
// (Deno's test sanitizers fail the test otherwise).

import assert from "node:assert/strict";
import type { Config } from "../src/config/config.ts";
import { silentLogger } from "../src/log.ts";
import { openStore, startServer } from "../src/server.ts";
import type { Store } from "../src/store/store.ts";
import { allListenersConfig, makeCerts } from "./helpers/certs.ts";
import { reservePort } from "./helpers/ports.ts";
import { startRedis } from "./helpers/redis.ts";
import { testConfig } from "./helpers/server.ts";
import { uniqueNode } from "./cluster/_redis.ts";

/** The embedded store of `config`, counting its close() calls. */
async function countingStore(config: Config): Promise<{ store: Store; closes: () => number }> {
  const inner = await openStore({ ...config, dbaddr: "" });
  let closes = 0;
  const store = new Proxy(inner, {
    get(target, key) {
      if (key === "close") {
        return () => {
          closes++;
          return target.close();
        };
      }
      const v = Reflect.get(target, key, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  return { store, closes: () => closes };
}

function assertFree(port: number, what: string): void {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
  } catch (err) {
    assert.fail(`${what} port ${port} still bound after the failed start: ${err}`);
  }
}

// In start order; each entry names the port that startup fails on.
const STAGES: [string, (c: Config) => number][] = [
  ["tcp", (c) => c.port],
  ["rpc", (c) => c.rpcport],
  ["thrift push", (c) => Number(c.nodeaddr.split(":")[1])],
  ["ws", (c) => c.wsport],
  ["tls", (c) => c.tlsport],
  ["wss", (c) => c.wssport],
];

Deno.test("a cluster join that fails closes the store it was given and leaves nothing running", async () => {
  const dead = reservePort();
  const config = await testConfig({ dbaddr: `127.0.0.1:${dead}`, nodeid: uniqueNode() });
  const { store, closes } = await countingStore(config);
  try {
    await assert.rejects(startServer(config, silentLogger(), { store }));
    assert.equal(closes(), 1, "store closed once");
  } finally {
    await Deno.remove(config.datadir, { recursive: true });
  }
});

for (const [i, [name, portOf]] of STAGES.entries()) {
  Deno.test(`a ${name} listener that cannot start releases everything acquired before it`, async () => {
    await using certs = await makeCerts();
    await using redis = await startRedis();
    const config = await allListenersConfig(certs);
    config.dbaddr = redis.addr;
    config.nodeid = uniqueNode();
    const busyPort = portOf(config);
    const busy = Deno.listen({ hostname: "127.0.0.1", port: busyPort });
    const { store, closes } = await countingStore(config);
    try {
      await assert.rejects(startServer(config, silentLogger(), { store }), (err: Error) => {
        assert.ok(err.message.includes(`${busyPort}`), err.message);
        return true;
      });
      assert.equal(closes(), 1, "store closed once");
      for (const [earlier, port] of STAGES.slice(0, i)) assertFree(port(config), earlier);
      // The nodeid was released: the same nodeid starts again at once
      // (a held one would be refused as "already running").
      busy.close();
      const again = await startServer(config, silentLogger(), {
        store: (await countingStore(config)).store,
      });
      await again.stop();
    } finally {
      try {
        busy.close();
      } catch {
        // closed above
      }
      await Deno.remove(config.datadir, { recursive: true });
    }
  });
}
