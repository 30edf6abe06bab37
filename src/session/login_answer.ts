// The login answer's bound (SECURITY.md): it never exceeds max_packet x 16
// bytes; the stored packets that do not fit follow it as packets, in order.

import { Buffer } from "node:buffer";
import { loginOk } from "../protocol/packet.ts";

/** The login answer may be this many times `max_packet`. */
export const ANSWER_PACKETS = 16;

/**
 * How many of `stored` (oldest first) fit in the login answer of login `id`
 * when it may be at most `maxBytes` UTF-8 bytes.
 */
export function storedThatFit(id: string, stored: readonly string[], maxBytes: number): number {
  // The empty answer has `{"total":0}`; one with packets has `,"packets":[...]`
  // (13 bytes) and the digits of its total on top.
  let size = Buffer.byteLength(loginOk(id, [])) + 13 + String(stored.length).length;
  for (let i = 0; i < stored.length; i++) {
    size += Buffer.byteLength(stored[i]!) + (i > 0 ? 1 : 0);
    if (size > maxBytes) return i;
  }
  return stored.length;
}
