// Several sara nodes in this process, joined through a real Redis and
// sharing one store (the embedded one, so these tests need no Redis store):
// the cluster layer's routing, kicks and presence, with nothing else between.

import type { Config } from "../../src/config/config.ts";
import type { Logger } from "../../src/log.ts";
import { openStore } from "../../src/server.ts";
import type { Store } from "../../src/store/store.ts";
import { startTestServer, testConfig, type TestServer } from "../helpers/server.ts";

/** The RPC token of every node (push needs one). */
export const TOKEN = "cluster-token";

/** Nodes n1..nN sharing a store and `dbaddr`; disposing stops them all. */
export interface Nodes extends AsyncDisposable {
  nodes: TestServer[];
  store: Store;
}

/** How single nodes differ: node i's logger, and the store it sees (the shared one, wrapped). */
export interface NodeOptions {
  logs?: (Logger | undefined)[];
  /** Keys every node runs with besides its nodeid, dbaddr and token. */
  config?: Partial<Config>;
  store?: (i: number, shared: Store) => Store;
}

/** Starts `n` nodes against the Redis at `dbaddr`. */
export async function startNodes(
  dbaddr: string,
  n: number,
  prefix = "n",
  opts: NodeOptions = {},
): Promise<Nodes> {
  const shared = await testConfig();
  const store = await openStore(shared);
  const nodes: TestServer[] = [];
  const stop = async () => {
    for (const s of nodes) await s[Symbol.asyncDispose]();
    await store.close();
    await Deno.remove(shared.datadir, { recursive: true });
  };
  try {
    for (let i = 1; i <= n; i++) {
      const config = { ...opts.config, nodeid: `${prefix}${i}`, dbaddr, accesstoken: TOKEN };
      nodes.push(
        await startTestServer(config, {
          store: () => Promise.resolve(opts.store?.(i, unclosable(store)) ?? unclosable(store)),
          ...(opts.logs?.[i - 1] ? { log: opts.logs[i - 1] } : {}),
        }),
      );
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { nodes, store, [Symbol.asyncDispose]: stop };
}

/** `store` as seen by one node: its `close()` leaves the shared store open. */
function unclosable(store: Store): Store {
  return new Proxy(store, {
    get(target, key) {
      if (key === "close") return () => Promise.resolve();
      const v = Reflect.get(target, key, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}
