// Comparing an offered secret (RPC token, Thrift licence) with the configured
// one without leaking, through timing, how much of it matched.

import { createHash, timingSafeEqual } from "node:crypto";

/**
 * True when `offered` equals `expected`, in time independent of where they
 * differ. Both are hashed first so that their lengths do not matter either.
 */
export function sameSecret(offered: unknown, expected: string): boolean {
  if (typeof offered !== "string") return false;
  const a = createHash("sha256").update(offered).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(a, b);
}
