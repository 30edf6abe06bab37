// Redis key and channel names of the cluster layer, in one place. A user's
// session entry carries the user's hash tag, so it sits in the same slot of
// a Redis Cluster as that user's inbox.

import { PREFIX, userTag } from "../store/redis_keys.ts";

/** Set of every nodeid that ever started against this Redis. */
export const NODES_KEY = `${PREFIX}nodes`;

/** Session entry of a bare JID: JSON {node, sid, transport, since}. */
export function sessionKey(jid: string): string {
  return `${PREFIX}${userTag(jid)}:sess`;
}

/**
 * With multi_login: hash of a bare JID's sessions, field = resource ("" for
 * none), value = JSON {node, sid, transport, since}.
 */
export function devicesKey(jid: string): string {
  return `${PREFIX}${userTag(jid)}:devices`;
}

/** Liveness hash of a node, with a short TTL its node keeps renewing. */
export function nodeKey(nodeid: string): string {
  return `${PREFIX}node:${nodeid}`;
}

/**
 * Sessions a node registered and has not unregistered yet (members: JSON
 * [jid, sid]; with multi_login the jid is the full `user@domain/resource`).
 */
export function nodeSessionsKey(nodeid: string): string {
  return `${PREFIX}node:${nodeid}:sessions`;
}

/** Pub/sub channel a node listens on for deliveries, kicks and blacklist changes. */
export function channelOf(nodeid: string): string {
  return `${PREFIX}chan:${nodeid}`;
}
