// Prefix: the router's lanes wait with it for their earlier packets.

import assert from "node:assert/strict";
import { Prefix } from "../src/prefix.ts";

const turn = () => new Promise((r) => setTimeout(r, 0));

Deno.test("a wait settles only once every place up to it settled, whatever order they settle in", async () => {
  const p = new Prefix();
  const [a, b, c] = [p.take(), p.take(), p.take()];
  const seen: string[] = [];
  void p.until(b)!.then(() => seen.push("upTo b"));
  void p.until(c)!.then(() => seen.push("upTo c"));
  p.settle(c);
  p.settle(b);
  await turn();
  assert.deepEqual(seen, []);
  p.settle(a);
  await turn();
  assert.deepEqual(seen, ["upTo b", "upTo c"]);
});

Deno.test("a later, shorter wait is not held behind an earlier, longer one", async () => {
  const p = new Prefix();
  const [a, b] = [p.take(), p.take()];
  const seen: string[] = [];
  void p.until(b)!.then(() => seen.push("upTo b"));
  void p.until(a)!.then(() => seen.push("upTo a"));
  p.settle(a);
  await turn();
  assert.deepEqual(seen, ["upTo a"]);
  p.settle(b);
  await turn();
  assert.deepEqual(seen, ["upTo a", "upTo b"]);
});

Deno.test("nothing to wait for is null; a settled prefix is a settled promise; settling twice changes nothing", async () => {
  const p = new Prefix();
  assert.equal(p.until(0), null);
  const a = p.take();
  p.settle(a);
  p.settle(a);
  const b = p.take();
  assert.equal(p.last, 2);
  let settled = false;
  void p.until(a)!.then(() => settled = true);
  let waited = false;
  void p.until(b)!.then(() => waited = true);
  await turn();
  assert.equal(settled, true);
  assert.equal(waited, false);
  p.settle(b);
  await turn();
  assert.equal(waited, true);
});
