// StreamDecoder from raw bytes: splits, joins, padding, heartbeats, limits.

import assert from "node:assert/strict";
import { StreamDecoder } from "../../src/protocol/framing.ts";

function collect(max = 1024) {
  const out: string[] = [];
  let oversize = 0;
  const d = new StreamDecoder(max, {
    packet: (b) => out.push(new TextDecoder().decode(b)),
    heartbeat: () => out.push("<hb>"),
    oversize: () => oversize++,
  });
  const push = (s: string) => d.push(new TextEncoder().encode(s));
  return { out, push, d, oversize: () => oversize };
}

Deno.test("StreamDecoder splits several packets in one read", () => {
  const c = collect();
  c.push("a\x01bb\x01ccc\x01");
  assert.deepEqual(c.out, ["a", "bb", "ccc"]);
  assert.equal(c.d.pending, 0);
});

Deno.test("StreamDecoder keeps an unterminated tail until its 0x01 arrives", () => {
  const c = collect();
  c.push('{"a":');
  c.push("1");
  assert.deepEqual(c.out, []);
  assert.equal(c.d.pending, 6);
  c.push("}\x01x");
  assert.deepEqual(c.out, ['{"a":1}']);
  assert.equal(c.d.pending, 1);
});

Deno.test("StreamDecoder ignores empty packets and trailing NUL padding", () => {
  const c = collect();
  c.push("\x01\x01p\x01\0\0\0");
  c.push("q\x01");
  assert.deepEqual(c.out, ["p", "q"]);
});

Deno.test("StreamDecoder reports a heartbeat byte as a heartbeat, not a packet", () => {
  const c = collect();
  c.push("\x02\x01x\x01\x02\x01");
  assert.deepEqual(c.out, ["<hb>", "x", "<hb>"]);
});

Deno.test("StreamDecoder reports oversize once the tail passes the limit and then stops", () => {
  const c = collect(8);
  c.push("12345");
  c.push("6789");
  assert.equal(c.oversize(), 1);
  c.push("\x01ok\x01");
  assert.deepEqual(c.out, []);
  assert.equal(c.oversize(), 1);
});

Deno.test("StreamDecoder accepts a packet of exactly the limit", () => {
  const c = collect(4);
  c.push("abcd\x01");
  assert.deepEqual(c.out, ["abcd"]);
  assert.equal(c.oversize(), 0);
});

Deno.test("StreamDecoder copies the tail, so the caller may reuse its read buffer", () => {
  const out: string[] = [];
  const d = new StreamDecoder(100, {
    packet: (b) => out.push(new TextDecoder().decode(b)),
    heartbeat: () => {},
    oversize: () => {},
  });
  const buf = new TextEncoder().encode("abc");
  d.push(buf);
  buf.fill(0x7a);
  d.push(new TextEncoder().encode("d\x01"));
  assert.deepEqual(out, ["abcd"]);
});
