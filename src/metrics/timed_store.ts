// A Store that times every operation of the store it wraps into
// `sara_store_op_duration_seconds{op}` and counts failures, whichever
// implementation (embedded, Redis, a test's faulty store) is underneath.

import type { Batch, Store } from "../store/store.ts";
import type { Metrics } from "./metrics.ts";

/** `store`, with each operation timed into `metrics`. */
export function timedStore(store: Store, metrics: Metrics): Store {
  const timed = <T>(op: string, run: () => Promise<T>): Promise<T> => {
    const start = performance.now();
    return run().then(
      (value) => {
        metrics.storeOp(op, (performance.now() - start) / 1000, true);
        return value;
      },
      (err) => {
        metrics.storeOp(op, (performance.now() - start) / 1000, false);
        throw err;
      },
    );
  };
  return {
    get name() {
      return store.name;
    },
    get dropped() {
      return store.dropped;
    },
    get retries() {
      return store.retries;
    },
    keepsSentIds: store.keepsSentIds,
    shard: store.shard ? (user: string) => store.shard!(user) : undefined,
    commit: (batch: Batch) => timed("commit", () => store.commit(batch)),
    sweepExpired: () => timed("sweepExpired", () => store.sweepExpired()),
    inbox: (user) => timed("inbox", () => store.inbox(user)),
    recentIds: (from) => timed("recentIds", () => store.recentIds(from)),
    groupMembers: (key) => timed("groupMembers", () => store.groupMembers(key)),
    setGroupMembers: (key, members, ttl) =>
      timed("setGroupMembers", () => store.setGroupMembers(key, members, ttl)),
    dropGroup: (key) => timed("dropGroup", () => store.dropGroup(key)),
    blacklist: (owner, offset, limit) =>
      timed("blacklist", () => store.blacklist(owner, offset, limit)),
    block: (owner, jid, ct) => timed("block", () => store.block(owner, jid, ct)),
    unblock: (owner, jid) => timed("unblock", () => store.unblock(owner, jid)),
    blocks: (owner, jid) => timed("blocks", () => store.blocks(owner, jid)),
    ping: () => timed("ping", () => store.ping()),
    // Closing is not an operation worth a latency series.
    close: () => store.close(),
  };
}
