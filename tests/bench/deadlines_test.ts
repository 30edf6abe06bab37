// The shared sweep of connect and login timeouts, which runs only while a
// deadline is pending.

import assert from "node:assert/strict";
import { Deadlines } from "../../src/bench/deadlines.ts";
import { until } from "./helpers.ts";

Deno.test("a deadline fires, and only once", async () => {
  const deadlines = new Deadlines();
  let fired = 0;
  deadlines.add(30, () => fired++);
  await until(() => fired > 0, "the deadline to fire");
  // Another deadline outlives a sweep or two: the first must not fire again.
  let later = false;
  deadlines.add(250, () => later = true);
  await until(() => later, "the second deadline to fire");
  assert.equal(fired, 1);
  assert.equal(deadlines.sweeping, false);
});

Deno.test("a cancelled deadline never fires, and the others still do", async () => {
  const deadlines = new Deadlines();
  const fired: string[] = [];
  const early = deadlines.add(10, () => fired.push("early"));
  deadlines.add(150, () => fired.push("late"));
  deadlines.cancel(early);
  await until(() => fired.length > 0, "the late deadline to fire");
  assert.deepEqual(fired, ["late"]);
});

Deno.test("cancelling every deadline stops the sweep", () => {
  const deadlines = new Deadlines();
  const ids = [deadlines.add(10_000, () => {}), deadlines.add(20_000, () => {})];
  assert.equal(deadlines.sweeping, true);
  deadlines.cancel(ids[0]!);
  assert.equal(deadlines.sweeping, true);
  deadlines.cancel(ids[1]!);
  assert.equal(deadlines.sweeping, false);
});
