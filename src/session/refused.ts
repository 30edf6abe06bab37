// A session's messages refused with `store_error`, per recipient, so that a
// resend cannot land behind newer messages (docs/protocol.md §12, "After a
// store_error"). Once a message to a recipient was refused, that recipient
// takes this session's messages only in the order they were refused: the
// oldest refused one first, any other (a newer one, or a refused one out of
// turn) is refused too and joins the line. Clients resend refused messages in
// send order (the SDKs resend every unacked one), so the line drains as they
// come, and nothing newer is stored ahead of an older refused one.

/** Refused ids kept per session; beyond it the oldest recipient's line is dropped. */
export const REFUSED_MAX = 1024;

/** The line of refused message ids of each recipient of one session. */
export class RefusedSends {
  // Per recipient, refused ids oldest first; insertion order of the map is age.
  readonly #lines = new Map<string, string[]>();
  #size = 0;

  /**
   * Whether message `id` to `to` may be routed now: no refused message to
   * `to` is waiting, or `id` is the oldest one (which leaves the line). When
   * not, `id` joins the line and must be refused.
   */
  pass(to: string, id: string): boolean {
    const line = this.#lines.get(to);
    if (line === undefined) return true;
    if (line[0] === id) {
      line.shift();
      this.#size--;
      if (line.length === 0) this.#lines.delete(to);
      return true;
    }
    this.refused(to, id);
    return false;
  }

  /** Message `id` to `to` was refused (store_error): later ones to `to` wait for it. */
  refused(to: string, id: string): void {
    let line = this.#lines.get(to);
    if (line === undefined) this.#lines.set(to, line = []);
    if (line.includes(id)) return;
    line.push(id);
    // Bounded: a client that never resends must not grow it without end.
    if (++this.#size > REFUSED_MAX) {
      const [oldest, dropped] = this.#lines.entries().next().value!;
      this.#lines.delete(oldest);
      this.#size -= dropped.length;
    }
  }

  /** Refused messages not sent again yet, over all recipients. */
  get size(): number {
    return this.#size;
  }
}
