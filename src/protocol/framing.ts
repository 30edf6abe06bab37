// Stream framing of the emsg protocol over TCP/TLS (docs/protocol.md §1): packets end
// with 0x01, 0x02 is a heartbeat, 0x03 a kill. Pure: bytes in, packets out.

import { concatBytes } from "../bytes.ts";

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

/** Turns a connection's bytes into frames for a sink. */
export interface Decoder {
  /** Feeds one read. `chunk` may be reused by the caller once this returns. */
  push(chunk: Uint8Array): void;
  /** Bytes to send before a server-side close (a WebSocket close frame), or null. */
  readonly goodbye: Uint8Array | null;
}

/** What a connection offers its decoder: frames, plus what a handshake needs. */
export interface ConnSink extends FrameSink {
  /** Bytes to send back at once, ahead of anything queued later (handshake, pong). */
  reply(bytes: Uint8Array): void;
  /** The handshake is done: the session may start. */
  opened(): void;
  /** The peer ended the conversation (close frame, bad handshake): close after replies. */
  end(): void;
}

/** How one transport frames packets in both directions. */
export interface Framing {
  /** True when the peer must finish a handshake before its session starts. */
  readonly handshake: boolean;
  decoder(maxPacket: number, sink: ConnSink): Decoder;
  /** The packets queued in one turn, as wire bytes. */
  encode(packets: string[]): Uint8Array;
  readonly heartbeat: Uint8Array;
  readonly kill: Uint8Array;
}

const encoder = new TextEncoder();

/** Framing of TCP and TLS: packets end with 0x01. */
export const STREAM_FRAMING: Framing = {
  handshake: false,
  decoder: (maxPacket, sink) => new StreamDecoder(maxPacket, sink),
  encode: (packets) =>
    encoder.encode(packets.length === 1 ? packets[0]! + "\x01" : packets.join("\x01") + "\x01"),
  heartbeat: HEARTBEAT_FRAME,
  kill: KILL_FRAME,
};

/**
 * Splits a byte stream into packets. Keeps the unterminated tail between
 * reads, so that a packet split over several reads (or several packets in
 * one read) come out whole, and refuses to buffer more than `maxPacket`.
 */
export class StreamDecoder implements Decoder {
  readonly goodbye = null;
  // The unterminated tail, in parts; null when there is none (most of the time).
  #parts: Uint8Array[] | null = null;
  #held = 0;
  #failed = false;

  constructor(readonly maxPacket: number, readonly sink: FrameSink) {}

  /** Bytes held back, waiting for their 0x01. */
  get pending(): number {
    return this.#held;
  }

  /** Feeds one read. `chunk` may be reused by the caller once this returns. */
  push(chunk: Uint8Array): void {
    if (this.#failed) return;
    let start = 0;
    let i = chunk.indexOf(END);
    if (this.#parts !== null) {
      if (i === -1) return this.#hold(chunk, 0);
      // The tail's parts are joined once, when its 0x01 arrives: a packet
      // spread over many reads costs linear time, not quadratic.
      if (this.#held + i > this.maxPacket) return this.#fail();
      const whole = concatBytes([...this.#parts, chunk.subarray(0, i)]);
      this.#parts = null;
      this.#held = 0;
      this.#emit(whole, 0, whole.length);
      start = i + 1;
      i = chunk.indexOf(END, start);
    }
    while (i !== -1) {
      if (i - start > this.maxPacket) return this.#fail();
      this.#emit(chunk, start, i);
      start = i + 1;
      i = chunk.indexOf(END, start);
    }
    this.#hold(chunk, start);
  }

  /** Keeps `chunk[start..]` (a copy: the caller reuses its buffer) until its 0x01 comes. */
  #hold(chunk: Uint8Array, start: number): void {
    let end = chunk.length;
    // Old clients pad reads with NUL bytes; JSON never holds a raw NUL.
    while (end > start && chunk[end - 1] === 0) end--;
    if (end === start) return;
    if (this.#held + end - start > this.maxPacket) return this.#fail();
    (this.#parts ??= []).push(chunk.slice(start, end));
    this.#held += end - start;
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
    this.#parts = null;
    this.#held = 0;
    this.sink.oversize();
  }
}
