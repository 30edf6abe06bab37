// Waiting: the hand-offs a node waits on, by reference (src/cluster/waiting.ts).

import assert from "node:assert/strict";
import { Waiting } from "../../src/cluster/waiting.ts";

function waits(n: number, since = (i: number) => i) {
  const w = new Waiting<string>();
  const got: string[] = [];
  const refs = Array.from(
    { length: n },
    (_, i) => w.add({ resolve: (a) => got.push(`${i}:${a}`), since: since(i) }),
  );
  return { w, got, refs };
}

Deno.test("each wait is answered once, by its own reference, in whatever order the answers come", () => {
  const { w, got, refs } = waits(3);
  assert.equal(w.answer(refs[2]!, "took"), true);
  assert.equal(w.answer(refs[0]!, "refused"), true);
  assert.equal(w.answer(refs[0]!, "took"), false);
  assert.equal(w.size, 1);
  assert.equal(w.answer(refs[1]!, "took"), true);
  assert.deepEqual(got, ["2:took", "0:refused", "1:took"]);
  assert.equal(w.size, 0);
});

Deno.test("references never made, or not written as the waiting list writes them, answer nothing", () => {
  const { w, got, refs } = waits(2);
  for (const bad of ["2", "-1", "01", "1!", "", "zzzzzzzzzzzzzzzz", " 1"]) {
    assert.equal(w.answer(bad, "took"), false, bad);
  }
  assert.deepEqual(got, []);
  assert.equal(w.answer(refs[1]!, "took"), true);
});

Deno.test("expire answers the waits made at the limit or before, oldest first, and the rest still get their own answers", () => {
  const { w, got, refs } = waits(4, (i) => [10, 20, 30, 40][i]!);
  w.answer(refs[1]!, "took");
  const expired: string[] = [];
  w.expire("lost", 30, (r) => expired.push(r));
  assert.deepEqual(expired, [refs[0], refs[2]]);
  assert.deepEqual(got, ["1:took", "0:lost", "2:lost"]);
  assert.equal(w.answer(refs[3]!, "took"), true);
  w.expire("lost");
  assert.deepEqual(got, ["1:took", "0:lost", "2:lost", "3:took"]);
});

Deno.test("expireIf answers only the waits it picks, and the rest still get their own answers", () => {
  const w = new Waiting<string, { resolve: (a: string) => void; since: number; lane: string }>();
  const got: string[] = [];
  const lanes = ["a", "b", "a", "b", "a"];
  const refs = lanes.map((lane, i) =>
    w.add({ resolve: (a) => got.push(`${i}:${a}`), since: i, lane })
  );
  w.answer(refs[2]!, "took");
  w.expireIf("lost", (x) => x.lane === "a");
  assert.deepEqual(got, ["2:took", "0:lost", "4:lost"]);
  assert.equal(w.size, 2);
  assert.equal(w.answer(refs[0]!, "took"), false, "answered already");
  assert.equal(w.answer(refs[1]!, "took"), true);
  assert.equal(w.answer(refs[3]!, "took"), true);
  assert.deepEqual(got, ["2:took", "0:lost", "4:lost", "1:took", "3:took"]);
});

Deno.test("thousands answered out of order, with an old one unanswered at the head, keep every reference right", () => {
  const n = 5000;
  const { w, got, refs } = waits(n);
  // The first stays unanswered while the rest are answered in pairs, swapped.
  for (let i = 1; i + 1 < n; i += 2) {
    w.answer(refs[i + 1]!, "took");
    w.answer(refs[i]!, "took");
  }
  w.answer(refs[n - 1]!, "took");
  assert.equal(w.size, 1);
  const more = w.add({ resolve: (a) => got.push(`more:${a}`), since: 0 });
  w.answer(refs[0]!, "refused");
  assert.equal(w.answer(more, "took"), true);
  assert.equal(got.length, n + 1);
  assert.deepEqual(got.slice(-2), ["0:refused", "more:took"]);
  assert.equal(new Set(got).size, n + 1);
});
