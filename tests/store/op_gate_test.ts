// The dbpool bound: at most N operations run, the rest start in call order.

import assert from "node:assert/strict";
import { OpGate } from "../../src/store/op_gate.ts";

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => resolve = r);
  return { promise, resolve };
}

Deno.test("OpGate runs at most its limit at once and starts waiting operations in call order", async () => {
  const gate = new OpGate(2);
  const started: number[] = [];
  const gates = [0, 1, 2, 3].map(() => deferred());
  const runs = gates.map((d, i) =>
    gate.run(async () => {
      started.push(i);
      await d.promise;
      return i;
    })
  );
  await Promise.resolve();
  assert.deepEqual(started, [0, 1]);
  assert.deepEqual([gate.active, gate.waiting], [2, 2]);
  gates[1]!.resolve();
  await runs[1];
  await Promise.resolve();
  assert.deepEqual(started, [0, 1, 2]);
  for (const d of gates) d.resolve();
  assert.deepEqual(await Promise.all(runs), [0, 1, 2, 3]);
  assert.deepEqual([gate.active, gate.waiting], [0, 0]);
});

Deno.test("OpGate gives the turn back when an operation fails", async () => {
  const gate = new OpGate(1);
  await assert.rejects(gate.run(() => Promise.reject(new Error("boom"))), /boom/);
  assert.equal(await gate.run(() => Promise.resolve("next")), "next");
  assert.equal(gate.active, 0);
});

Deno.test("OpGate refuses a limit below 1", () => {
  assert.throws(() => new OpGate(0), RangeError);
});
