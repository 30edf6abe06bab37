// Delivery bookkeeping on known inputs: lost, reordered, duplicates (docs/protocol.md §12).

import assert from "node:assert/strict";
import { Ledger } from "../../src/bench/ledger.ts";

function oneStream(sent: number): { ledger: Ledger; stream: number; receiver: number } {
  const ledger = new Ledger();
  const stream = ledger.addStream();
  const receiver = ledger.addReceiver(stream);
  for (let i = 0; i < sent; i++) ledger.send(stream, i);
  return { ledger, stream, receiver };
}

Deno.test("a message acked but never received is lost; one never acked is not", () => {
  const { ledger, stream, receiver } = oneStream(5);
  for (const seq of [0, 1, 2, 3]) ledger.ack(stream, seq);
  for (const seq of [0, 1, 3]) ledger.receive(receiver, seq);
  const s = ledger.summary();
  assert.deepEqual([s.sent, s.acked, s.received, s.lost], [5, 4, 3, 1]);
});

Deno.test("a first receipt below an earlier first receipt counts as reordered", () => {
  const a = oneStream(4);
  for (const seq of [0, 2, 1, 3]) a.ledger.receive(a.receiver, seq);
  assert.equal(a.ledger.summary().reordered, 1);
  const b = oneStream(4);
  for (const seq of [0, 3, 1, 2]) b.ledger.receive(b.receiver, seq);
  assert.equal(b.ledger.summary().reordered, 2);
});

Deno.test("a second receipt is a duplicate, not a receipt or a reordering", () => {
  const { ledger, receiver } = oneStream(3);
  assert.equal(ledger.receive(receiver, 0), true);
  assert.equal(ledger.receive(receiver, 1), true);
  assert.equal(ledger.receive(receiver, 0), false);
  const s = ledger.summary();
  assert.deepEqual([s.received, s.duplicates, s.reordered], [2, 1, 0]);
});

Deno.test("a receipt of a sequence never sent counts as unknown", () => {
  const { ledger, receiver } = oneStream(2);
  assert.equal(ledger.receive(receiver, 5), false);
  assert.equal(ledger.summary().unknown, 1);
});

Deno.test("each receiver of a stream is checked on its own", () => {
  const ledger = new Ledger();
  const stream = ledger.addStream();
  const a = ledger.addReceiver(stream);
  const b = ledger.addReceiver(stream);
  for (let i = 0; i < 3; i++) {
    ledger.send(stream, i);
    ledger.ack(stream, i);
    ledger.receive(a, i);
  }
  ledger.receive(b, 0);
  ledger.receive(b, 2);
  const s = ledger.summary();
  assert.deepEqual([s.expected, s.received, s.lost], [6, 5, 1]);
});

Deno.test("a repeated ack counts once", () => {
  const { ledger, stream } = oneStream(1);
  assert.equal(ledger.ack(stream, 0), true);
  assert.equal(ledger.ack(stream, 0), false);
  assert.equal(ledger.ack(stream, 1), false);
  assert.equal(ledger.summary().acked, 1);
});

Deno.test("streams grow past their first allocation and keep send times", () => {
  const { ledger, stream, receiver } = oneStream(1000);
  for (let i = 0; i < 1000; i++) ledger.ack(stream, i);
  for (let i = 0; i < 999; i++) ledger.receive(receiver, i);
  assert.equal(ledger.summary().lost, 1);
  assert.equal(ledger.sentAt(stream, 777), 777);
  assert.ok(Number.isNaN(ledger.sentAt(stream, 1000)));
});
