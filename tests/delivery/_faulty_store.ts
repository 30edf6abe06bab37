// Helpers of the delivery tests: a Store wrapper that records every batch and
// can hold commits behind a gate or make them fail (to prove what waits for
// what), a test node using it, and polling for a condition.

import type { Config } from "../../src/config/config.ts";
import { StoreError } from "../../src/errors.ts";
import { openStore } from "../../src/server.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import type { Batch, BlockedJid, Depths, InboxEntry, Store } from "../../src/store/store.ts";

/** Delegates to a real store; `gate()` and `failing` inject the faults. */
export class FaultyStore implements Store {
  /** Batches handed to `commit`, in call order (also those that failed). */
  readonly batches: Batch[] = [];
  /** While true, `commit` rejects with StoreError and writes nothing. */
  failing = false;
  #gate: Promise<void> | null = null;
  #open: (() => void) | null = null;

  constructor(readonly inner: Store) {}

  get name(): string {
    return `faulty(${this.inner.name})`;
  }

  get dropped(): Store["dropped"] {
    return this.inner.dropped;
  }

  /** Holds every commit from now on until the returned function is called. */
  gate(): () => void {
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#gate = promise;
    this.#open = resolve;
    return () => this.release();
  }

  /** Lets held and future commits through. */
  release(): void {
    this.#gate = null;
    this.#open?.();
    this.#open = null;
  }

  /** Ids appended by committed-or-attempted batches, for `user`. */
  appended(user: string): string[] {
    return this.batches.flatMap((b) => b.appends.filter((e) => e.user === user).map((e) => e.id));
  }

  async commit(batch: Batch): Promise<Depths> {
    // Copies: the writer may reuse nothing, but the record must not change.
    this.batches.push({
      appends: [...batch.appends],
      removes: [...batch.removes],
      sent: [...batch.sent],
    });
    if (this.#gate) await this.#gate;
    if (this.failing) throw new StoreError("injected commit failure");
    return await this.inner.commit(batch);
  }

  sweepExpired(): Promise<number> {
    return this.inner.sweepExpired();
  }
  inbox(user: string): Promise<InboxEntry[]> {
    return this.inner.inbox(user);
  }
  recentIds(from: string): Promise<string[]> {
    return this.inner.recentIds(from);
  }
  groupMembers(key: string): Promise<string[] | null> {
    return this.inner.groupMembers(key);
  }
  setGroupMembers(key: string, members: string[], ttlSeconds: number): Promise<void> {
    return this.inner.setGroupMembers(key, members, ttlSeconds);
  }
  dropGroup(key: string): Promise<void> {
    return this.inner.dropGroup(key);
  }
  blacklist(owner: string, offset: number, limit: number): Promise<BlockedJid[]> {
    return this.inner.blacklist(owner, offset, limit);
  }
  block(owner: string, jid: string, ct: number): Promise<void> {
    return this.inner.block(owner, jid, ct);
  }
  unblock(owner: string, jid: string): Promise<void> {
    return this.inner.unblock(owner, jid);
  }
  blocks(owner: string, jid: string): Promise<boolean> {
    return this.inner.blocks(owner, jid);
  }
  ping(): Promise<void> {
    return this.inner.ping();
  }
  close(): Promise<void> {
    this.release();
    return this.inner.close();
  }
}

/** A test node whose store is a FaultyStore around the real embedded one. */
export async function startFaultyServer(
  overrides: Partial<Config> = {},
): Promise<{ srv: TestServer; store: FaultyStore }> {
  let store: FaultyStore | undefined;
  const srv = await startTestServer(overrides, {
    store: async (config) => store = new FaultyStore(await openStore(config)),
  });
  return { srv, store: store! };
}

/** Polls `cond` until true; throws after `ms` (a condition that never comes is a failure). */
export async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
