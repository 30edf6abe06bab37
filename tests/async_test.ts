// The async helpers: the semaphore (dbpool, callback lanes), the deadline,
// the per-key queue, the single flight and the prefix of places.

import assert from "node:assert/strict";
import {
  KeyedQueue,
  Prefix,
  Semaphore,
  SingleFlight,
  WaitAborted,
  WaitLineFull,
  withTimeout,
} from "../src/async.ts";

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => resolve = r);
  return { promise, resolve };
}

Deno.test("Semaphore runs at most its limit at once and starts waiting operations in call order", async () => {
  const gate = new Semaphore(2);
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

Deno.test("Semaphore gives the turn back when an operation fails", async () => {
  const gate = new Semaphore(1);
  await assert.rejects(gate.run(() => Promise.reject(new Error("boom"))), /boom/);
  assert.equal(await gate.run(() => Promise.resolve("next")), "next");
  assert.equal(gate.active, 0);
});

Deno.test("Semaphore refuses a limit below 1", () => {
  assert.throws(() => new Semaphore(0), RangeError);
});

Deno.test("Semaphore refuses a waiter beyond its line, and one whose signal aborts leaves the line", async () => {
  const sem = new Semaphore(1, 1);
  await sem.acquire();
  const abort = new AbortController();
  const waiter = sem.acquire(abort.signal);
  await assert.rejects(sem.acquire(), WaitLineFull);
  abort.abort();
  await assert.rejects(waiter, WaitAborted);
  assert.equal(sem.waiting, 0);
  const next = sem.acquire();
  sem.release();
  await next;
  assert.deepEqual([sem.active, sem.waiting], [1, 0]);
});

Deno.test("withTimeout resolves to the work's result when it is in time", async () => {
  assert.equal(await withTimeout(1000, () => Promise.resolve("done"), () => "late"), "done");
  await assert.rejects(withTimeout(1000, () => Promise.reject(new Error("boom")), () => 0), /boom/);
});

Deno.test("withTimeout answers onTimeout and aborts the work's signal when the work is late", async () => {
  let seen: AbortSignal | null = null;
  const never = (signal: AbortSignal) => {
    seen = signal;
    // Rejects once aborted: that late rejection must be swallowed.
    return new Promise<string>((_, reject) =>
      signal.addEventListener("abort", () => reject(new Error("x")))
    );
  };
  assert.equal(await withTimeout(10, never, () => "late"), "late");
  assert.equal(seen!.aborted, true);
  await assert.rejects(
    withTimeout(10, never, () => {
      throw new Error("no answer");
    }),
    /no answer/,
  );
});

Deno.test("KeyedQueue runs one key's steps in call order and other keys beside them", async () => {
  const q = new KeyedQueue();
  const log: string[] = [];
  const a1 = deferred();
  const first = q.run("a", async () => {
    await a1.promise;
    log.push("a1");
  });
  const failing = q.run("a", () => Promise.reject(new Error("a2 failed")));
  const third = q.run("a", () => {
    log.push("a3");
    return Promise.resolve(3);
  });
  await q.run("b", () => Promise.resolve(log.push("b1")));
  assert.deepEqual(log, ["b1"], "b did not wait for a");
  a1.resolve();
  await first;
  await assert.rejects(failing, /a2 failed/);
  assert.equal(await third, 3, "a failed step does not stop the ones behind it");
  assert.deepEqual(log, ["b1", "a1", "a3"]);
  await q.settled();
});

Deno.test("KeyedQueue.settled waits for every step started so far", async () => {
  const q = new KeyedQueue();
  const d = deferred();
  let done = false;
  q.run("a", () => d.promise.then(() => done = true)).catch(() => {});
  const settled = q.settled();
  d.resolve();
  await settled;
  assert.equal(done, true);
});

Deno.test("SingleFlight shares one run per key until it settles, then starts anew", async () => {
  const flights = new SingleFlight<string, number>();
  let calls = 0;
  const d = deferred();
  const fn = async () => {
    calls++;
    await d.promise;
    return calls;
  };
  const a = flights.run("k", fn);
  const b = flights.run("k", fn);
  assert.equal(flights.pending("k"), a);
  d.resolve();
  assert.deepEqual(await Promise.all([a, b]), [1, 1]);
  assert.equal(flights.pending("k"), undefined);
  assert.equal(await flights.run("k", fn), 2);
});

Deno.test("SingleFlight.forget makes the run stale: current() turns false and the next caller starts anew", async () => {
  const flights = new SingleFlight<string, boolean>();
  const d = deferred();
  const stale = flights.run("k", async (current) => {
    await d.promise;
    return current();
  });
  flights.forget("k");
  const fresh = flights.run("k", (current) => Promise.resolve(current()));
  d.resolve();
  assert.equal(await stale, false);
  assert.equal(await fresh, true);
});

const turn = () => new Promise((r) => setTimeout(r, 0));

Deno.test("Prefix: a wait settles only once every place up to it settled, whatever order they settle in", async () => {
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

Deno.test("Prefix: a later, shorter wait is not held behind an earlier, longer one", async () => {
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

Deno.test("Prefix: nothing to wait for is null; a settled prefix is a settled promise; settling twice changes nothing", async () => {
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
