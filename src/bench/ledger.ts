// Delivery bookkeeping of a benchmark (docs/protocol.md §12): per stream of messages
// (one sender's messages to one recipient or one group), when each was sent
// and whether the server acked it; per receiver, which were received. Counts
// lost (acked, never received), duplicates and reordered first receipts.

/** Counts over all receivers of a ledger. */
export interface LedgerSummary {
  /** Messages sent (over all streams). */
  sent: number;
  /** Messages the server acked. */
  acked: number;
  /** First receipts (over all receivers). */
  received: number;
  /** Receipts expected: acked messages times the receivers of their stream. */
  expected: number;
  /** Acked but never received, per docs/protocol.md §12. */
  lost: number;
  /** Received again after a first receipt. */
  duplicates: number;
  /** First receipts whose sequence is lower than an earlier first receipt's. */
  reordered: number;
  /** Receipts of a sequence number never sent on that stream. */
  unknown: number;
}

class Stream {
  count = 0;
  acked = 0;
  receivers = 0;
  times = new Float64Array(64);
  ackedFlags = new Uint8Array(64);
}

class Receiver {
  got = new Uint8Array(64);
  maxSeq = -1;
  received = 0;
  duplicates = 0;
  reordered = 0;
  unknown = 0;
  constructor(readonly stream: number) {}
}

/** Send, ack and receipt records of numbered message streams. */
export class Ledger {
  readonly #streams: Stream[] = [];
  readonly #receivers: Receiver[] = [];

  /** Adds a stream of messages; returns its index. */
  addStream(): number {
    this.#streams.push(new Stream());
    return this.#streams.length - 1;
  }

  /** Adds a receiver of every message of `stream`; returns its index. */
  addReceiver(stream: number): number {
    this.#stream(stream).receivers++;
    this.#receivers.push(new Receiver(stream));
    return this.#receivers.length - 1;
  }

  /** Records the next message of `stream`, sent at `time`; returns its sequence number. */
  send(stream: number, time: number): number {
    const s = this.#stream(stream);
    const seq = s.count++;
    if (seq >= s.times.length) {
      s.times = grow(s.times, seq);
      s.ackedFlags = grow(s.ackedFlags, seq);
    }
    s.times[seq] = time;
    return seq;
  }

  /** Send time of a message, or NaN if it was never sent. */
  sentAt(stream: number, seq: number): number {
    const s = this.#streams[stream];
    return s !== undefined && seq < s.count ? s.times[seq]! : NaN;
  }

  /** Records a server ack; false if unknown or already acked. */
  ack(stream: number, seq: number): boolean {
    const s = this.#streams[stream];
    if (s === undefined || seq >= s.count || s.ackedFlags[seq] === 1) return false;
    s.ackedFlags[seq] = 1;
    s.acked++;
    return true;
  }

  /** Records a receipt; true for a first receipt of a message that was sent. */
  receive(receiver: number, seq: number): boolean {
    const r = this.#receivers[receiver];
    if (r === undefined) throw new RangeError(`Unknown receiver ${receiver}`);
    if (seq >= this.#streams[r.stream]!.count) {
      r.unknown++;
      return false;
    }
    if (seq >= r.got.length) r.got = grow(r.got, seq);
    if (r.got[seq] === 1) {
      r.duplicates++;
      return false;
    }
    r.got[seq] = 1;
    r.received++;
    if (seq < r.maxSeq) r.reordered++;
    else r.maxSeq = seq;
    return true;
  }

  /** Stream a receiver belongs to. */
  streamOf(receiver: number): number {
    const r = this.#receivers[receiver];
    if (r === undefined) throw new RangeError(`Unknown receiver ${receiver}`);
    return r.stream;
  }

  /** Totals; `lost` is exact (walks the acked flags), the rest are counters. */
  summary(): LedgerSummary {
    const out: LedgerSummary = {
      sent: 0,
      acked: 0,
      received: 0,
      expected: 0,
      lost: 0,
      duplicates: 0,
      reordered: 0,
      unknown: 0,
    };
    for (const s of this.#streams) {
      out.sent += s.count;
      out.acked += s.acked;
      out.expected += s.acked * s.receivers;
    }
    for (const r of this.#receivers) {
      const s = this.#streams[r.stream]!;
      out.received += r.received;
      out.duplicates += r.duplicates;
      out.reordered += r.reordered;
      out.unknown += r.unknown;
      for (let seq = 0; seq < s.count; seq++) {
        if (s.ackedFlags[seq] === 1 && r.got[seq] !== 1) out.lost++;
      }
    }
    return out;
  }

  /** First receipts so far and receipts expected of acked messages (cheap, for drain checks). */
  progress(): { received: number; expected: number } {
    let received = 0;
    let expected = 0;
    for (const s of this.#streams) expected += s.acked * s.receivers;
    for (const r of this.#receivers) received += r.received;
    return { received, expected };
  }

  #stream(i: number): Stream {
    const s = this.#streams[i];
    if (s === undefined) throw new RangeError(`Unknown stream ${i}`);
    return s;
  }
}

function grow<T extends Float64Array | Uint8Array>(a: T, index: number): T {
  let n = a.length * 2;
  while (n <= index) n *= 2;
  const b = new (a.constructor as new (n: number) => T)(n);
  b.set(a);
  return b;
}
