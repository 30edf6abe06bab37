// Source ports the load tool binds itself: every port of the range in turn,
// per address, and a range that leaves the kernel's automatic ports alone.

import assert from "node:assert/strict";
import { LocalPorts } from "../../src/bench/local_ports.ts";
import { ephemeralRange, portsPerSourceAddress, sourcePortRange } from "../../src/bench/system.ts";

Deno.test("take() hands out every port of the range once before repeating one", () => {
  const ports = new LocalPorts(61000, 61009);
  const first = Array.from({ length: 10 }, () => ports.take("127.0.0.2"));
  assert.deepEqual(
    [...first].sort((a, b) => a - b),
    Array.from({ length: 10 }, (_, i) => 61000 + i),
  );
  // Then the same cycle again, in the same order.
  assert.deepEqual(Array.from({ length: 10 }, () => ports.take("127.0.0.2")), first);
});

Deno.test("take() keeps a separate turn for each source address", () => {
  const ports = new LocalPorts(61000, 61001);
  const a = [ports.take("127.0.0.2"), ports.take("127.0.0.2")];
  const b = [ports.take("127.0.0.3"), ports.take("127.0.0.3")];
  assert.deepEqual([a.sort(), b.sort()], [[61000, 61001], [61000, 61001]]);
});

Deno.test("LocalPorts refuses an empty or impossible range", () => {
  assert.throws(() => new LocalPorts(62000, 61000), RangeError);
  assert.throws(() => new LocalPorts(0, 10), RangeError);
  assert.throws(() => new LocalPorts(60000, 70000), RangeError);
});

Deno.test("the tool's source ports lie above the kernel's ephemeral range when it leaves room", () => {
  const [, ephemeralHi] = ephemeralRange();
  const [lo, hi] = sourcePortRange();
  if (65535 - ephemeralHi >= 1000) assert.deepEqual([lo, hi], [ephemeralHi + 1, 65535]);
  else assert.deepEqual([lo, hi], ephemeralRange());
  assert.ok(portsPerSourceAddress() <= hi - lo + 1);
});
