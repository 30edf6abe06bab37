// What one session already delivered, so that a retry from the inbox, a
// hand-off that also took the stored path, or a failover's second copy is not
// shown twice (docs/delivery.md, "Duplicate suppression"). The sender side
// (dedup.ts) cannot catch these: they are one send, delivered twice.
//
// A ring of 53-bit hashes of (sender, id), grown on use: an idle session
// holds none, a busy one at most DELIVERED_MAX (8 KiB). Two different
// packets among the last DELIVERED_MAX share a hash with a chance of about
// 1 in 10^13 per packet; the one dropped then stays in the inbox, unacked,
// and comes back at the next login.

/** How many of its last delivered packets a session remembers. */
export const DELIVERED_MAX = 1024;
const FIRST = 16;

/** The last DELIVERED_MAX packets a session delivered, by sender and id. */
export class DeliveredIds {
  #ring = new Float64Array(FIRST);
  // Packets recorded so far; the next one goes to `#count % ring length`.
  #count = 0;

  /** Records (`from`, `id`); true when it was among the last DELIVERED_MAX already. */
  seen(from: string, id: string): boolean {
    const h = hash53(from, id);
    let ring = this.#ring;
    const filled = Math.min(this.#count, ring.length);
    for (let i = 0; i < filled; i++) if (ring[i] === h) return true;
    if (this.#count === ring.length && ring.length < DELIVERED_MAX) {
      // Full before ever wrapping: slots 0..n-1 are in order, so growing keeps them.
      const bigger = new Float64Array(ring.length * 2);
      bigger.set(ring);
      this.#ring = ring = bigger;
    }
    ring[this.#count % ring.length] = h;
    this.#count++;
    return false;
  }
}

/** Two independent string hashes of "from\nid" (FNV-1a and a multiplicative one), 53 bits. */
function hash53(from: string, id: string): number {
  let a = 0x811c9dc5, b = 0x2f0b3c1d;
  const n = from.length + 1 + id.length;
  for (let i = 0; i < n; i++) {
    const c = i < from.length
      ? from.charCodeAt(i)
      : i === from.length
      ? 10
      : id.charCodeAt(i - from.length - 1);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995) ^ (b >>> 15);
  }
  return (b & 0x1fffff) * 0x1_0000_0000 + (a >>> 0);
}
