// Strict UTF-8 decoding of packets (src/bytes.ts): refused, never replaced.

import assert from "node:assert/strict";
import { decodeUtf8 } from "../src/bytes.ts";

const bytes = (...xs: number[]) => Uint8Array.from(xs);

Deno.test("decodeUtf8() decodes valid UTF-8, a real U+FFFD included", () => {
  const enc = new TextEncoder();
  for (const text of ["", "plain ascii {}", "héllo wörld", "日本語", "😀 x", "a\uFFFDb"]) {
    assert.equal(decodeUtf8(enc.encode(text)), text);
  }
});

Deno.test("decodeUtf8() refuses invalid UTF-8 instead of replacing it", () => {
  const bad = [
    bytes(0xff),
    bytes(0x61, 0x80, 0x62), // stray continuation byte
    bytes(0xc0, 0x80), // overlong NUL
    bytes(0xed, 0xa0, 0x80), // a surrogate
    bytes(0xe2, 0x82), // truncated sequence
    bytes(0xef, 0xbf, 0xbd, 0xff), // a real U+FFFD does not hide a bad byte after it
  ];
  for (const b of bad) assert.equal(decodeUtf8(b), null, String(b));
});
