// What every session shares on one node: config, logger, router, store,
// the hooks to the business backend, and the sweep of login/idle deadlines.

import type { Config } from "../config/config.ts";
import type { Logger } from "../log.ts";
import type { Store } from "../store/store.ts";
import type { InboxWriter } from "../store/inbox_writer.ts";
import type { DedupCache } from "./dedup.ts";
import type { Router } from "../router.ts";
import type { Session } from "./session.ts";
import type { Metrics } from "../metrics/metrics.ts";

/** Decides whether a login may proceed (the auth callback, or always yes). */
export type Authenticator = (jid: string, pwd: string | undefined) => Promise<boolean>;

/** Resolves a group's member user names (cache, then callback); null when unknown. */
export type GroupResolver = (gid: string, domain: string) => Promise<string[] | null>;

/** Shared state of the session core on one node. */
export interface Core {
  readonly config: Config;
  readonly log: Logger;
  readonly store: Store;
  readonly writer: InboxWriter;
  readonly router: Router;
  readonly dedup: DedupCache;
  readonly auth: Authenticator;
  readonly groups: GroupResolver;
  /** Every connection's session, logged in or not. */
  readonly sessions: Set<Session>;
  /** Counters the hot paths bump; scraped at /metrics. */
  readonly metrics: Metrics;
}
