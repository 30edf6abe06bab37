// A session's messages refused with `store_error`, per recipient, so that a
// resend cannot land behind newer messages (docs/protocol.md §12, "After a
// store_error"). Once a message to a recipient was refused, that recipient
// takes this session's messages only in the order they were refused: each
// must come again in its turn (the first of the line not yet on its way),
// anything else (a newer message, or a refused one out of turn) is refused too
// and joins the line. A message leaves the line once stored; one refused again
// goes back to its turn, and so do those behind it (they were on their way
// behind it and fail with it). Clients resend refused messages in send order
// (the SDKs resend every unacked one), so the line drains as they come, and
// nothing newer is stored ahead of an older refused one.

/** Refused ids kept per session; beyond it the oldest recipient's line is dropped. */
export const REFUSED_MAX = 1024;

interface InLine {
  id: string;
  /** Came again in its turn and is on its way: neither stored nor refused again yet. */
  going: boolean;
}

/** The line of refused message ids of each recipient of one session. */
export class RefusedSends {
  // Per recipient, oldest first; insertion order of the map is age.
  readonly #lines = new Map<string, InLine[]>();
  #size = 0;

  /**
   * Whether message `id` to `to` may be routed now: nothing refused to `to`
   * waits, or `id` is in its turn (or on its way already: a repeat). When
   * not, `id` joins the line and must be refused.
   */
  pass(to: string, id: string): boolean {
    const line = this.#lines.get(to);
    if (line === undefined) return true;
    const turn = line.find((m) => !m.going);
    if (turn?.id === id) return turn.going = true;
    if (line.some((m) => m.going && m.id === id)) return true;
    this.refused(to, id);
    return false;
  }

  /** Message `id` to `to` was refused (store_error): it and what is on its way behind it wait. */
  refused(to: string, id: string): void {
    let line = this.#lines.get(to);
    if (line === undefined) this.#lines.set(to, line = []);
    const at = line.findIndex((m) => m.id === id);
    if (at !== -1) {
      for (let i = at; i < line.length; i++) line[i]!.going = false;
      return;
    }
    line.push({ id, going: false });
    // Bounded: a client that never resends must not grow it without end.
    if (++this.#size > REFUSED_MAX) {
      const [oldest, dropped] = this.#lines.entries().next().value!;
      this.#lines.delete(oldest);
      this.#size -= dropped.length;
    }
  }

  /** Message `id` to `to` is stored: out of the line. */
  stored(to: string, id: string): void {
    const line = this.#lines.get(to);
    const at = line?.findIndex((m) => m.id === id) ?? -1;
    if (at === -1) return;
    line!.splice(at, 1);
    this.#size--;
    if (line!.length === 0) this.#lines.delete(to);
  }

  /** Refused messages not stored yet, over all recipients. */
  get size(): number {
    return this.#size;
  }
}
