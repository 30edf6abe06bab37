// Group members (docs/protocol.md §5): the store's one-hour cache under
// `group_<gid>@<domain>`, filled on a miss by the `emsg_group.get_user_list`
// callback, and dropped by the `emsg_group.reload` RPC.

import type { Callbacks } from "../callbacks.ts";
import { errMsg, type Logger } from "../log.ts";
import type { Store } from "../store/store.ts";
import { SingleFlight } from "../async.ts";

/** How long a member list stays cached. */
export const GROUP_TTL_SECONDS = 3600;

/** The store key of a group's cached member list. */
export function groupKey(gid: string, domain: string): string {
  return `group_${gid}@${domain}`;
}

// A user name must make `name@domain` a JID (docs/protocol.md §2).
const USER_RE = /^[^@/\s]+$/;

/** Resolves and forgets group member lists on one node. */
export class Groups {
  // One callback per group at a time: a burst of messages to an uncached
  // group waits for the same answer instead of asking once per message.
  readonly #pending = new SingleFlight<string, string[] | null>();

  constructor(
    readonly store: Store,
    readonly callbacks: Callbacks | null,
    readonly log: Logger,
  ) {}

  /**
   * Member user names of `gid` in `domain`, without duplicates; null when the
   * group is unknown (no callback, refused, failed, or empty). Rejects with
   * StoreError when the cache cannot be read.
   */
  async resolve(gid: string, domain: string): Promise<string[] | null> {
    const key = groupKey(gid, domain);
    const cached = await this.store.groupMembers(key);
    if (cached !== null) return cached;
    if (this.callbacks === null) return null;
    const callbacks = this.callbacks;
    return await this.#pending.run(key, (current) => this.#fetch(callbacks, gid, key, current));
  }

  /** Drops the cached list, and the answer of a callback still on its way. */
  async reload(gid: string, domain: string): Promise<void> {
    const key = groupKey(gid, domain);
    this.#pending.forget(key);
    await this.store.dropGroup(key);
  }

  async #fetch(
    callbacks: Callbacks,
    gid: string,
    key: string,
    current: () => boolean,
  ): Promise<string[] | null> {
    let members: string[] | null;
    try {
      const answer = await callbacks.call("emsg_group", "get_user_list", { gid });
      members = answer.success ? this.#members(answer.entity, gid) : null;
    } catch {
      members = null; // the callback client logged why
    }
    // A reload while the callback ran removed this flight: its answer may
    // predate the change, so it serves the waiting messages but is not cached.
    if (!current()) return members;
    if (members !== null) {
      await this.store.setGroupMembers(key, members, GROUP_TTL_SECONDS).catch((err) =>
        this.log.warn(`cannot cache members of group ${gid}: ${errMsg(err)}`)
      );
    }
    // The flight ends (and is forgotten) only once cached, so no message in between asks again.
    return members;
  }

  /** `entity.users` as unique names; numbers (numeric uids) are taken as their decimal text. */
  #members(entity: unknown, gid: string): string[] | null {
    const users = (entity as { users?: unknown } | null)?.users;
    if (!Array.isArray(users)) {
      this.log.warn(`callback emsg_group.get_user_list: no entity.users array`, { gid });
      return null;
    }
    const names = new Set<string>();
    let bad = 0;
    for (const u of users) {
      const name = typeof u === "number" && Number.isFinite(u) ? String(u) : u;
      if (typeof name === "string" && USER_RE.test(name)) names.add(name);
      else bad++;
    }
    if (bad > 0) {
      this.log.warn(`callback emsg_group.get_user_list: ${bad} member names ignored`, { gid });
    }
    return names.size > 0 ? [...names] : null;
  }
}
