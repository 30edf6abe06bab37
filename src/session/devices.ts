// With `multi_login`: the sessions each user has on this node, one per
// resource, oldest login first (docs/multi-login.md).

/** What the set needs of a session. */
export interface Device {
  /** Bare JID of the user. */
  readonly jid: string;
  /** The login's resource ("" for a login without one). */
  readonly resource: string;
  readonly sid: string;
}

/** Sessions by user, in login order. */
export class Devices<D extends Device> {
  readonly #byUser = new Map<string, D[]>();
  #sessions = 0;

  /** Sessions in the set. */
  get sessions(): number {
    return this.#sessions;
  }

  /** Users with at least one session. */
  get users(): number {
    return this.#byUser.size;
  }

  /**
   * Adds `d` as its user's newest session; returns the sessions it takes the
   * place of (same resource, then the oldest beyond `max`; `max` null: no
   * bound here). They are out of the set already; the caller kicks them.
   */
  attach(d: D, max: number | null): D[] {
    const list = this.#byUser.get(d.jid);
    if (!list) {
      this.#byUser.set(d.jid, [d]);
      this.#sessions++;
      return [];
    }
    const replaced: D[] = [];
    const same = list.findIndex((x) => x.resource === d.resource);
    if (same !== -1) replaced.push(...list.splice(same, 1));
    list.push(d);
    if (max !== null && list.length > max) replaced.push(...list.splice(0, list.length - max));
    this.#sessions += 1 - replaced.length;
    return replaced;
  }

  /** Removes `d`; false when it was not in the set (replaced, or never added). */
  detach(d: D): boolean {
    const list = this.#byUser.get(d.jid);
    const i = list ? list.indexOf(d) : -1;
    if (i === -1) return false;
    list!.splice(i, 1);
    if (list!.length === 0) this.#byUser.delete(d.jid);
    this.#sessions--;
    return true;
  }

  has(d: D): boolean {
    return this.#byUser.get(d.jid)?.includes(d) ?? false;
  }

  /** The user's sessions, oldest first (never an empty array). */
  of(jid: string): readonly D[] | undefined {
    return this.#byUser.get(jid);
  }

  /** The user's session of `resource`. */
  find(jid: string, resource: string): D | undefined {
    return this.#byUser.get(jid)?.find((d) => d.resource === resource);
  }

  /** The user's session `sid` (a kick from another node names it). */
  bySid(jid: string, sid: string): D | undefined {
    return this.#byUser.get(jid)?.find((d) => d.sid === sid);
  }
}
