// What one session already delivered, so that a retry from the inbox, a
// hand-off that also took the stored path, or a failover's second copy is not
// shown twice (docs/delivery.md, "Duplicate suppression"). The sender side
// (dedup.ts) cannot catch these: they are one send, delivered twice.
//
// A ring of 53-bit hashes of (sender, id), oldest overwritten first, and an
// open-addressing index into it (linear probing, backward-shift removal), so
// a check costs a probe or two, not a scan. Grown on use: an idle session
// holds none, a busy one at most DELIVERED_MAX entries (3 KiB). A retry or a
// failover's second copy comes within seconds, far fewer packets than that
// even for a busy recipient. Two different packets among the last
// DELIVERED_MAX share a hash with a chance of about 1 in 3 * 10^13 per
// packet; the one dropped then stays in the inbox, unacked, and comes back at
// the next login.

/** How many of its last delivered packets a session remembers. */
export const DELIVERED_MAX = 256;
const FIRST = 16;

/** The last DELIVERED_MAX packets a session delivered, by sender and id. */
export class DeliveredIds {
  #ring = new Float64Array(FIRST);
  // Twice the ring's size: ring index + 1 of each entry, 0 when free.
  #slots = new Uint16Array(2 * FIRST);
  // Packets recorded so far; the next one goes to `#count % ring length`.
  #count = 0;

  /** Whether (`from`, `id`) is among the last DELIVERED_MAX recorded. */
  has(from: string, id: string): boolean {
    return this.#find(hash53(from, id)) !== -1;
  }

  /** Records (`from`, `id`); true when it was among the last DELIVERED_MAX already. */
  seen(from: string, id: string): boolean {
    const h = hash53(from, id);
    if (this.#find(h) !== -1) return true;
    if (this.#count === this.#ring.length && this.#ring.length < DELIVERED_MAX) this.#grow();
    const ring = this.#ring;
    const at = this.#count % ring.length;
    if (this.#count >= ring.length) this.#remove(this.#find(ring[at]!));
    ring[at] = h;
    this.#insert(at);
    this.#count++;
    return false;
  }

  #home(h: number): number {
    // `>>> 0` keeps the low 32 bits of the integer h.
    return (h >>> 0) & (this.#slots.length - 1);
  }

  /** The slot of `h`, or -1. */
  #find(h: number): number {
    const slots = this.#slots, ring = this.#ring, mask = slots.length - 1;
    for (let i = this.#home(h);; i = (i + 1) & mask) {
      const v = slots[i]!;
      if (v === 0) return -1;
      if (ring[v - 1] === h) return i;
    }
  }

  #insert(at: number): void {
    const slots = this.#slots, mask = slots.length - 1;
    let i = this.#home(this.#ring[at]!);
    while (slots[i] !== 0) i = (i + 1) & mask;
    slots[i] = at + 1;
  }

  /** Frees slot `i`, moving later entries of its probe run back into the gap. */
  #remove(i: number): void {
    const slots = this.#slots, ring = this.#ring, mask = slots.length - 1;
    for (let j = (i + 1) & mask; slots[j] !== 0; j = (j + 1) & mask) {
      const k = this.#home(ring[slots[j]! - 1]!);
      // The entry at j may move to i unless its home lies in (i, j] (cyclically).
      const stays = i <= j ? k > i && k <= j : k > i || k <= j;
      if (!stays) {
        slots[i] = slots[j]!;
        i = j;
      }
    }
    slots[i] = 0;
  }

  #grow(): void {
    const ring = new Float64Array(this.#ring.length * 2);
    // Full before ever wrapping: slots 0..n-1 are in order, so growing keeps them.
    ring.set(this.#ring);
    this.#ring = ring;
    this.#slots = new Uint16Array(2 * ring.length);
    for (let at = 0; at < this.#count; at++) this.#insert(at);
  }
}

// Seeded per process, so that nobody can craft an id colliding with another
// sender's (and have it dropped) without seeing this node's memory.
const SEED = crypto.getRandomValues(new Uint32Array(2));

/** Two independent string hashes of "from\nid" (FNV-1a-like, seeded), 53 bits. */
function hash53(from: string, id: string): number {
  let a = SEED[0]!, b = SEED[1]!;
  for (let i = 0; i < from.length; i++) {
    const c = from.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
  }
  a = Math.imul(a ^ 10, 0x01000193);
  b = Math.imul(b ^ 10, 0x5bd1e995);
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
  }
  b ^= b >>> 15;
  b = Math.imul(b, 0x2c1b3c6d);
  b ^= b >>> 12;
  return (b & 0x1fffff) * 0x1_0000_0000 + (a >>> 0);
}
