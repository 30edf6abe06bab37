// Redis key names of the store. Every key of one user carries the user's hash
// tag, so that a Redis Cluster keeps them in one slot and one Lua script can
// touch them all atomically.
//
//   sara:{<jid>}:inbox      HASH  message id -> entry ([ct,type,from] JSON, "\n", packet)
//   sara:{<jid>}:order      ZSET  message id, scored by arrival order in this inbox
//   sara:{<jid>}:policy     HASH  "<type>|<from>" -> id of the entry a first/last policy keeps
//   sara:{<jid>}:blacklist  ZSET  blocked bare jid, scored by block time (ms); no TTL
//   sara:{<jid>}:sent       LIST  message ids <jid> sent, newest last, at most dedup_ids
//   sara:group_<gid>@<domain>  STRING  JSON array of member names, EX = cache ttl
//
// Other suffixes of `sara:{<jid>}:` (e.g. `:sess`) belong to the cluster layer.

/** Key prefix of everything sara stores in Redis. */
export const PREFIX = "sara:";

/**
 * Hash tag of a bare JID: `{<jid>}` with `%` and `}` escaped. Unescaped, a
 * JID starting with `}` would give an empty tag, which Redis ignores (it then
 * hashes whole key names and the user's keys scatter over slots).
 */
export function userTag(jid: string): string {
  return `{${jid.replaceAll("%", "%25").replaceAll("}", "%7D")}}`;
}

/** The store's keys of one user, in the order the Lua scripts take them. */
export interface UserKeys {
  inbox: string;
  order: string;
  policy: string;
  blacklist: string;
  sent: string;
}

/** Keys of `jid`'s inbox, blacklist and sent ids. */
export function userKeys(jid: string): UserKeys {
  return keysOf(`${PREFIX}${userTag(jid)}:`);
}

/** The per-user keys whose common part is `base` (`sara:{<jid>}:`). */
export function keysOf(base: string): UserKeys {
  return {
    inbox: `${base}inbox`,
    order: `${base}order`,
    policy: `${base}policy`,
    blacklist: `${base}blacklist`,
    sent: `${base}sent`,
  };
}

/** SCAN pattern matching every user's order key (the expiry sweep walks these). */
export const ORDER_PATTERN = `${PREFIX}{*}:order`;

/** Base (`sara:{<jid>}:`) of an order key found by {@link ORDER_PATTERN}. */
export function baseOfOrderKey(key: string): string {
  return key.slice(0, -"order".length);
}

/** Redis key of a group member cache entry (`group_<gid>@<domain>`, docs/protocol.md §5). */
export function groupKey(key: string): string {
  return `${PREFIX}${key}`;
}
