// WebSocket framing of the emsg protocol (docs/transports.md, docs/protocol.md §1): the
// HTTP upgrade, then RFC 6455 frames, each text or binary message one packet
// (a trailing 0x01 tolerated), heartbeat and kill as the texts `\02` and `\03`.
// Pure: bytes in, packets and replies out. Written here rather than taken
// from Deno.upgradeWebSocket because that reads a whole frame (up to 64 MiB)
// before anyone can look at its length; here a frame over max_packet is
// refused from its header, so a connection never buffers more than max_packet.

import { createHash } from "node:crypto";
import { concatBytes } from "../bytes.ts";
import type { ConnSink, Decoder, Framing } from "./framing.ts";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/** Largest HTTP request head read before the upgrade; browsers send about 500 bytes. */
export const MAX_HEAD = 8192;
const Op = { continuation: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 } as const;
const enc = new TextEncoder();
const latin1 = new TextDecoder("latin1");

/** Heartbeat as WebSocket clients send and expect it: backslash, zero, two. */
export const WS_HEARTBEAT = "\\02";
/** Kill as WebSocket clients expect it: backslash, zero, three. */
export const WS_KILL = "\\03";

/** One unmasked server frame. */
export function serverFrame(opcode: number, payload: Uint8Array): Uint8Array {
  const len = payload.length;
  const ext = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const out = new Uint8Array(2 + ext + len);
  writeHeader(out, 0, opcode, len, ext);
  out.set(payload, 2 + ext);
  return out;
}

function writeHeader(out: Uint8Array, at: number, opcode: number, len: number, ext: number) {
  out[at] = 0x80 | opcode;
  out[at + 1] = ext === 0 ? len : ext === 2 ? 126 : 127;
  if (ext === 2) {
    out[at + 2] = len >>> 8;
    out[at + 3] = len & 0xff;
  } else if (ext === 8) {
    new DataView(out.buffer, out.byteOffset + at + 2, 8).setBigUint64(0, BigInt(len));
  }
}

/** The packets of one turn as consecutive text frames, encoded once. */
function encodeTexts(packets: string[]): Uint8Array {
  const bodies = packets.map((p) => enc.encode(p));
  let size = 0;
  for (const b of bodies) size += b.length + (b.length < 126 ? 2 : b.length < 65536 ? 4 : 10);
  const out = new Uint8Array(size);
  let off = 0;
  for (const b of bodies) {
    const ext = b.length < 126 ? 0 : b.length < 65536 ? 2 : 8;
    writeHeader(out, off, Op.text, b.length, ext);
    off += 2 + ext;
    out.set(b, off);
    off += b.length;
  }
  return out;
}

const CLOSE_NORMAL = serverFrame(Op.close, Uint8Array.of(0x03, 0xe8)); // 1000
const CLOSE_TOO_BIG = serverFrame(Op.close, Uint8Array.of(0x03, 0xf1)); // 1009
const CLOSE_PROTOCOL = serverFrame(Op.close, Uint8Array.of(0x03, 0xea)); // 1002

/** The WebSocket framing, for StreamConn. */
export const WS_FRAMING: Framing = {
  handshake: true,
  decoder: (maxPacket, sink) => new WsDecoder(maxPacket, sink),
  encode: encodeTexts,
  heartbeat: serverFrame(Op.text, enc.encode(WS_HEARTBEAT)),
  kill: serverFrame(Op.text, enc.encode(WS_KILL)),
};

function httpReply(status: string, body: string, headers: string): Uint8Array {
  return enc.encode(
    `HTTP/1.1 ${status}\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n` +
      `connection: close\r\n${headers}\r\n${body}`,
  );
}

/** Answer to a plain HTTP request (a probe, a browser typing the URL): tell it to upgrade. */
const NOT_UPGRADE = httpReply(
  "426 Upgrade Required",
  "sara: this port speaks WebSocket only\n",
  "upgrade: websocket\r\n",
);
const BAD_HANDSHAKE = httpReply("400 Bad Request", "bad WebSocket handshake\n", "");
const HEAD_TOO_LARGE = httpReply("431 Request Header Fields Too Large", "head too large\n", "");

/** What a request head asks for: the 101 answer, or the HTTP error to send before closing. */
export function upgradeAnswer(head: string): { ok: boolean; reply: Uint8Array } {
  const lines = head.split("\r\n");
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const i = line.indexOf(":");
    if (i > 0) headers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
  }
  if (!/^GET \S+ HTTP\/1\.1$/.test(lines[0] ?? "")) return { ok: false, reply: BAD_HANDSHAKE };
  if (headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return { ok: false, reply: NOT_UPGRADE };
  }
  const key = headers.get("sec-websocket-key");
  if (!key || headers.get("sec-websocket-version") !== "13") {
    return { ok: false, reply: BAD_HANDSHAKE };
  }
  const accept = createHash("sha1").update(key + GUID).digest("base64");
  return {
    ok: true,
    reply: enc.encode(
      "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n" +
        `sec-websocket-accept: ${accept}\r\n\r\n`,
    ),
  };
}

/**
 * Reads the upgrade request, then client frames. Keeps at most MAX_HEAD bytes
 * of head, 14 of frame header and max_packet of message; a frame whose
 * header announces more is refused before any of its payload is read.
 */
export class WsDecoder implements Decoder {
  #head: Uint8Array | null = new Uint8Array(0);
  // Frame header being read (2 to 14 bytes).
  readonly #hdr = new Uint8Array(14);
  #hdrLen = 0;
  #op = 0;
  #fin = false;
  #mask = new Uint8Array(4);
  // Payload of the current frame, filled as bytes arrive.
  #payload: Uint8Array | null = null;
  #filled = 0;
  // Fragments of a message not finished yet.
  #parts: Uint8Array[] | null = null;
  #partsLen = 0;
  #partOp = 0;
  #failed = false;
  #goodbye: Uint8Array | null = null;

  constructor(readonly maxPacket: number, readonly sink: ConnSink) {}

  /** The close frame to send before closing: none before the upgrade, else with its code. */
  get goodbye(): Uint8Array | null {
    return this.#goodbye;
  }

  push(chunk: Uint8Array): void {
    let i = 0;
    if (this.#head !== null) {
      i = this.#readHead(chunk);
      if (i < 0) return;
    }
    while (i < chunk.length && !this.#failed) {
      if (this.#payload === null) i = this.#readHeader(chunk, i);
      else i = this.#readPayload(chunk, i);
    }
  }

  /** Index in `chunk` after the head, or -1 when the head is not complete (or failed). */
  #readHead(chunk: Uint8Array): number {
    if (this.#failed) return -1;
    const prev = this.#head!;
    const all = concatBytes([prev, chunk]);
    const end = indexOfBlankLine(all, Math.max(0, prev.length - 3));
    if (end < 0) {
      if (all.length > MAX_HEAD) this.#refuse(HEAD_TOO_LARGE);
      else this.#head = all;
      return -1;
    }
    const { ok, reply } = upgradeAnswer(latin1.decode(all.subarray(0, end)));
    if (!ok) {
      this.#refuse(reply);
      return -1;
    }
    this.#head = null;
    this.#goodbye = CLOSE_NORMAL;
    this.sink.reply(reply);
    this.sink.opened();
    return end + 4 - prev.length;
  }

  #refuse(reply: Uint8Array): void {
    this.#failed = true;
    this.#head = new Uint8Array(0);
    this.sink.reply(reply);
    this.sink.end();
  }

  #readHeader(chunk: Uint8Array, i: number): number {
    const h = this.#hdr;
    if (this.#hdrLen < 2) {
      h[this.#hdrLen++] = chunk[i++]!;
      if (this.#hdrLen < 2) return i;
    }
    const len7 = h[1]! & 0x7f;
    const need = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + ((h[1]! & 0x80) ? 4 : 0);
    while (this.#hdrLen < need && i < chunk.length) h[this.#hdrLen++] = chunk[i++]!;
    if (this.#hdrLen < need) return i;
    this.#hdrLen = 0;
    this.#startFrame(h, len7, need);
    return i;
  }

  #startFrame(h: Uint8Array, len7: number, headerLen: number): void {
    this.#fin = (h[0]! & 0x80) !== 0;
    this.#op = h[0]! & 0x0f;
    const masked = (h[1]! & 0x80) !== 0;
    let len = len7;
    if (len7 === 126) len = (h[2]! << 8) | h[3]!;
    else if (len7 === 127) {
      const big = new DataView(h.buffer, 2, 8).getBigUint64(0);
      len = big > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(big);
    }
    // Clients must mask (RFC 6455 5.1); reserved bits and opcodes are unused.
    if (!masked || (h[0]! & 0x70) !== 0) return this.#protocolError();
    if (this.#op >= 8) {
      if (!this.#fin || len > 125 || this.#op > Op.pong) return this.#protocolError();
    } else if (this.#op === Op.continuation) {
      if (this.#parts === null) return this.#protocolError();
    } else if (this.#op > Op.binary || this.#parts !== null) {
      return this.#protocolError();
    }
    // A trailing 0x01 is allowed on top of max_packet, as on the stream transports.
    if (this.#op < 8 && this.#partsLen + len > this.maxPacket + 1) return this.#oversize();
    this.#mask.set(h.subarray(headerLen - 4, headerLen));
    this.#payload = new Uint8Array(len);
    this.#filled = 0;
    if (len === 0) this.#endFrame();
  }

  #readPayload(chunk: Uint8Array, i: number): number {
    const p = this.#payload!;
    const n = Math.min(p.length - this.#filled, chunk.length - i);
    const m = this.#mask;
    const at = this.#filled;
    for (let k = 0; k < n; k++) p[at + k] = chunk[i + k]! ^ m[(at + k) & 3]!;
    this.#filled += n;
    if (this.#filled === p.length) this.#endFrame();
    return i + n;
  }

  #endFrame(): void {
    const payload = this.#payload!;
    this.#payload = null;
    const op = this.#op;
    if (op === Op.close) {
      this.#failed = true;
      return this.sink.end();
    }
    if (op === Op.ping) return this.sink.reply(serverFrame(Op.pong, payload));
    if (op === Op.pong) return;
    if (!this.#fin) {
      if (this.#parts === null) this.#partOp = op;
      (this.#parts ??= []).push(payload);
      this.#partsLen += payload.length;
      return;
    }
    let message = payload;
    if (this.#parts !== null) {
      this.#parts.push(payload);
      message = concatBytes(this.#parts);
      this.#parts = null;
      this.#partsLen = 0;
    }
    this.#message(message);
  }

  #message(bytes: Uint8Array): void {
    let end = bytes.length;
    if (end > 0 && bytes[end - 1] === 0x01) end--;
    if (end > this.maxPacket) return this.#oversize();
    if (end === 0) return;
    const b = bytes.subarray(0, end);
    if (
      (end === 1 && b[0] === 0x02) || (end === 3 && b[0] === 0x5c && b[1] === 0x30 && b[2] === 0x32)
    ) {
      return this.sink.heartbeat();
    }
    this.sink.packet(b);
  }

  #oversize(): void {
    this.#failed = true;
    this.#parts = null;
    this.#goodbye = CLOSE_TOO_BIG;
    this.sink.oversize();
  }

  #protocolError(): void {
    this.#failed = true;
    this.#parts = null;
    this.#goodbye = CLOSE_PROTOCOL;
    this.sink.end();
  }
}

function indexOfBlankLine(buf: Uint8Array, from: number): number {
  for (let i = from; i + 3 < buf.length; i++) {
    if (buf[i] === 13 && buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10) return i;
  }
  return -1;
}
