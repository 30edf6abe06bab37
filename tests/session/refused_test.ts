// A session's line of store_error'd messages per recipient (src/session/refused.ts).

import assert from "node:assert/strict";
import { REFUSED_MAX, RefusedSends } from "../../src/session/refused.ts";

Deno.test("with nothing refused every message passes", () => {
  const r = new RefusedSends();
  assert.equal(r.pass("b@d", "m1"), true);
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
  for (const id of ["m1", "m2", "m3"]) assert.equal(r.pass("b@d", id), true, id);
  assert.equal(r.size, 0);
  assert.equal(r.pass("b@d", "m4"), true);
});

Deno.test("a message refused again while in line keeps its first place", () => {
  const r = new RefusedSends();
  r.refused("b@d", "m1");
  r.refused("b@d", "m2");
  r.refused("b@d", "m1");
  assert.equal(r.pass("b@d", "m2"), false);
  assert.equal(r.pass("b@d", "m1"), true);
  assert.equal(r.pass("b@d", "m2"), true);
});

Deno.test("the lines are bounded: beyond REFUSED_MAX ids the oldest recipient's line is dropped", () => {
  const r = new RefusedSends();
  r.refused("old@d", "o1");
  for (let i = 0; i < REFUSED_MAX; i++) r.refused("b@d", `m${i}`);
  assert.ok(r.size <= REFUSED_MAX);
  assert.equal(r.pass("old@d", "o2"), true, "its line is gone");
  assert.equal(r.pass("b@d", "m0"), true);
});
