// A session's line of store_error'd messages per recipient (src/session/refused.ts).

import assert from "node:assert/strict";
import { REFUSED_MAX, RefusedSends } from "../../src/session/refused.ts";

Deno.test("with nothing refused every message passes", () => {
  const r = new RefusedSends();
  assert.equal(r.pass("b@d", "m1"), true);
  r.stored("b@d", "m1");
  assert.equal(r.size, 0);
});

Deno.test("after a refusal, a recipient takes messages only in the order they were refused", () => {
  const r = new RefusedSends();
  r.refused("b@d", "m1");
  // Newer: refused and in line behind m1.
  assert.equal(r.pass("b@d", "m2"), false);
  assert.equal(r.pass("b@d", "m3"), false);
  // Out of turn: refused again, its place kept.
  assert.equal(r.pass("b@d", "m2"), false);
  assert.equal(r.size, 3);
  // Another recipient is not held up.
  assert.equal(r.pass("c@d", "x1"), true);
  // Resent in order, back to back: each goes in its turn, before the one before is stored.
  for (const id of ["m1", "m2", "m3"]) assert.equal(r.pass("b@d", id), true, id);
  assert.equal(r.pass("b@d", "m4"), false, "newer, while the line is on its way");
  for (const id of ["m1", "m2", "m3", "m4"]) r.stored("b@d", id);
  assert.equal(r.pass("b@d", "m4"), true);
  r.stored("b@d", "m4");
  assert.equal(r.size, 0);
  assert.equal(r.pass("b@d", "m5"), true);
});

Deno.test("a message refused again goes back to its turn, with those on their way behind it", () => {
  const r = new RefusedSends();
  r.refused("b@d", "m1");
  r.refused("b@d", "m2");
  assert.equal(r.pass("b@d", "m1"), true);
  assert.equal(r.pass("b@d", "m2"), true);
  // The store fails again: m1 first, and m2 behind it.
  r.refused("b@d", "m1");
  r.refused("b@d", "m2");
  assert.equal(r.pass("b@d", "m2"), false, "m1's turn again");
  assert.equal(r.pass("b@d", "m1"), true);
  r.stored("b@d", "m1");
  assert.equal(r.pass("b@d", "m2"), true);
  r.stored("b@d", "m2");
  assert.equal(r.size, 0);
});

Deno.test("a repeat of a message on its way passes (duplicate suppression answers it)", () => {
  const r = new RefusedSends();
  r.refused("b@d", "m1");
  assert.equal(r.pass("b@d", "m1"), true);
  assert.equal(r.pass("b@d", "m1"), true);
});

Deno.test("the lines are bounded: beyond REFUSED_MAX ids the oldest recipient's line is dropped", () => {
  const r = new RefusedSends();
  r.refused("old@d", "o1");
  for (let i = 0; i < REFUSED_MAX; i++) r.refused("b@d", `m${i}`);
  assert.ok(r.size <= REFUSED_MAX);
  assert.equal(r.pass("old@d", "o2"), true, "its line is gone");
  assert.equal(r.pass("b@d", "m0"), true);
});
