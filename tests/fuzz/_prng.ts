// A small seeded PRNG (mulberry32) and input generators for the fuzz tests:
// the same seed gives the same inputs, so a failure can be replayed.

/** The seed: SARA_FUZZ_SEED, or a fixed default so that `deno test` is deterministic. */
export const SEED = Number(Deno.env.get("SARA_FUZZ_SEED") ?? 20260601);

/** Deterministic random numbers from a 32-bit seed. */
export class Prng {
  #s: number;

  constructor(seed: number) {
    this.#s = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }

  /** A short string of printable ASCII, some non-ASCII and some JSON-special characters. */
  text(max: number): string {
    const alphabet = 'abcxyz019 @/."\\{}[]:,é中😀\u0000\u001f';
    let out = "";
    const n = this.int(max + 1);
    for (let i = 0; i < n; i++) out += this.pick([...alphabet]);
    return out;
  }
}

/** A copy of `s` with a few random edits: replaced, inserted and deleted characters. */
export function mutate(rng: Prng, s: string): string {
  const chars = [...s];
  const edits = 1 + rng.int(4);
  for (let i = 0; i < edits; i++) {
    const at = rng.int(chars.length + 1);
    const c = rng.pick([...'{}[]":,0-9etnuls \\x\u0001\u0000é']);
    const op = rng.int(3);
    if (op === 0) chars.splice(at, 1, c);
    else if (op === 1) chars.splice(at, 0, c);
    else chars.splice(at, 1);
  }
  return chars.join("");
}

/** JSON nested `depth` levels deep, as arrays or objects. */
export function deepJson(depth: number, objects: boolean): string {
  return objects
    ? '{"a":'.repeat(depth) + "1" + "}".repeat(depth)
    : "[".repeat(depth) + "]".repeat(depth);
}
