// Stream framing of the emsg protocol over TCP/TLS (PROTOCOL 1): packets end
// with 0x01, 0x02 is a heartbeat, 0x03 a kill. Pure: bytes in, packets out.

/** Byte that ends every packet on a stream transport. */
export const END = 0x01;
/** One-byte heartbeat packet. */
export const HEARTBEAT = 0x02;
/** One-byte kill packet, sent before closing a replaced session. */
export const KILL = 0x03;

/** The heartbeat as it goes on the wire of a stream transport. */
export const HEARTBEAT_FRAME: Uint8Array = Uint8Array.of(HEARTBEAT, END);
/** The kill as it goes on the wire of a stream transport. */
export const KILL_FRAME: Uint8Array = Uint8Array.of(KILL, END);

/** What a decoder hands on for each complete frame. */
export interface FrameSink {
  /** A complete packet body (without 0x01), never empty. */
  packet(bytes: Uint8Array): void;
  heartbeat(): void;
  /** The unterminated tail grew past the limit: the caller must close. */
  oversize(): void;
}

/**
 * Splits a byte stream into packets. Keeps the unterminated tail between
 * reads, so that a packet split over several reads (or several packets in
 * one read) come out whole, and refuses to buffer more than `maxPacket`.
 */
export class StreamDecoder {
  #tail: Uint8Array | null = null;
  #failed = false;

  constructor(readonly maxPacket: number, readonly sink: FrameSink) {}

  /** Bytes held back, waiting for their 0x01. */
  get pending(): number {
    return this.#tail?.length ?? 0;
  }

  /** Feeds one read. `chunk` may be reused by the caller once this returns. */
  push(chunk: Uint8Array): void {
    if (this.#failed) return;
    let start = 0;
    let data = chunk;
    if (this.#tail) {
      // Join only when a tail exists; the common case (whole packets per
      // read) never copies.
      const joined = new Uint8Array(this.#tail.length + chunk.length);
      joined.set(this.#tail);
      joined.set(chunk, this.#tail.length);
      data = joined;
      start = 0;
      this.#tail = null;
    }
    const len = data.length;
    let i = data.indexOf(END, start);
    while (i !== -1) {
      if (i - start > this.maxPacket) return this.#fail();
      this.#emit(data, start, i);
      start = i + 1;
      i = data.indexOf(END, start);
    }
    let end = len;
    // Old clients pad reads with NUL bytes after the last packet.
    while (end > start && data[end - 1] === 0) end--;
    if (end > start) {
      if (end - start > this.maxPacket) return this.#fail();
      // Copy: the caller reuses its read buffer.
      this.#tail = data.slice(start, end);
    }
  }

  #emit(data: Uint8Array, start: number, end: number): void {
    // Leading NULs are padding left over from the previous read.
    while (start < end && data[start] === 0) start++;
    if (start === end) return;
    if (end - start === 1 && data[start] === HEARTBEAT) {
      this.sink.heartbeat();
      return;
    }
    this.sink.packet(data.subarray(start, end));
  }

  #fail(): void {
    this.#failed = true;
    this.#tail = null;
    this.sink.oversize();
  }
}
