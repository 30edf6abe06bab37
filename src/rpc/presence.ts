// Who is online, as the RPC methods `emsg_session.counter`, `isonline` and `sessions`
// (docs/protocol.md §6) see it, and `kick`. One node answers from its router; the cluster swaps
// in an implementation that asks every node.

import type { Router, SessionInfo } from "../router.ts";

/** Sessions per live node. */
export interface NodeCount {
  node: string;
  count: number;
}

/** Online state across the nodes this server knows. */
export interface Presence {
  /** One row per live node. */
  counters(): Promise<NodeCount[]>;
  /** True when the bare JID has a session on some node. */
  isOnline(jid: string): Promise<boolean>;
  /** The bare JID's sessions on every live node. */
  sessions(jid: string): Promise<SessionInfo[]>;
  /**
   * Kicks the bare JID's sessions (only that of `resource` when not null) on
   * every live node; resolves to how many were found.
   */
  kick(jid: string, resource: string | null): Promise<number>;
}

/** Presence of a standalone node: its own sessions only. */
export function localPresence(nodeid: string, router: Router): Presence {
  return {
    counters: () => Promise.resolve([{ node: nodeid, count: router.online }]),
    isOnline: (jid) => Promise.resolve(router.local(jid) !== undefined),
    sessions: (jid) =>
      Promise.resolve(
        router.sessionsHere(jid).map((s) => ({
          resource: s.resource,
          node: nodeid,
          since: s.since,
        })),
      ),
    kick: (jid, resource) => {
      const found = router.sessionsHere(jid).filter((s) =>
        resource === null || s.resource === resource
      );
      for (const s of found) s.kick();
      return Promise.resolve(found.length);
    },
  };
}
