// A WebSocket emsg client for tests, written on a raw TCP or TLS socket so that
// tests can send what browsers cannot (binary, invalid UTF-8, huge frames),
// see every frame exactly as sent, and stop reading to play a slow consumer.
// Same waiting API as TestClient.

import type { Received } from "./client.ts";
import { QueueClient } from "./client_base.ts";
import { concatBytes } from "../../src/bytes.ts";

/** Something the server sent: a packet, `\02`, `\03`, or a frame that is none of these. */
export type WsReceived =
  | Received
  | { kind: "text"; text: string }
  | { kind: "binary"; bytes: Uint8Array };

/** How to reach the server. */
export interface WsConnectOptions {
  /** Speak WSS, trusting this PEM certificate. */
  caCert?: string;
  /** Request path; the server accepts any. */
  path?: string;
}

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const Op = { continuation: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 } as const;
const enc = new TextEncoder();
const dec = new TextDecoder();

/** A test client over one WebSocket. */
export class WsTestClient extends QueueClient<WsReceived> {
  #writes: Promise<void> = Promise.resolve();
  #paused: PromiseWithResolvers<void> | null = null;
  /** Code of the server's close frame, once it came (1005: none given). */
  closeCode: number | null = null;
  readonly done: Promise<void>;

  private constructor(readonly conn: Deno.Conn, leftover: Uint8Array) {
    super();
    this.done = this.#readLoop(leftover);
  }

  /** Opens a WebSocket to 127.0.0.1:port (WSS with `caCert`). */
  static async connect(port: number, opts: WsConnectOptions = {}): Promise<WsTestClient> {
    const conn = opts.caCert
      ? await Deno.connectTls({ hostname: "127.0.0.1", port, caCerts: [opts.caCert] })
      : await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
      await writeAll(
        conn,
        enc.encode(
          `GET ${opts.path ?? "/"} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n` +
            `Upgrade: websocket\r\nConnection: Upgrade\r\n` +
            `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
        ),
      );
      const { status, headers, rest } = await readHead(conn);
      if (status !== 101) throw new Error(`upgrade refused with HTTP ${status}`);
      const digest = await crypto.subtle.digest("SHA-1", enc.encode(key + GUID));
      const expected = btoa(String.fromCharCode(...new Uint8Array(digest)));
      if (headers.get("sec-websocket-accept") !== expected) {
        throw new Error("bad Sec-WebSocket-Accept");
      }
      return new WsTestClient(conn, rest);
    } catch (err) {
      conn.close();
      throw err;
    }
  }

  /** Connects and logs in; throws unless the answer is ok. Returns the answer. */
  static async login(
    port: number,
    jid: string,
    opts: WsConnectOptions & { extra?: Record<string, unknown> } = {},
  ) {
    const c = await WsTestClient.connect(port, opts);
    try {
      const answer = await c.login(jid, opts.extra);
      if ((answer.json.entity as { result?: string })?.result !== "ok") {
        throw new Error(`login of ${jid} failed: ${answer.text}`);
      }
      return { client: c, answer };
    } catch (err) {
      await c.close();
      throw err;
    }
  }

  /** Stops reading from the socket (the server's writes back up), until `resume()`. */
  pause(): void {
    this.#paused ??= Promise.withResolvers<void>();
  }

  resume(): void {
    this.#paused?.resolve();
    this.#paused = null;
  }

  async #readLoop(leftover: Uint8Array): Promise<void> {
    let buf = leftover;
    let parts: Uint8Array[] = [];
    let partOp = 0;
    const chunk = new Uint8Array(65536);
    try {
      for (;;) {
        for (let f = parseFrame(buf); f; f = parseFrame(buf)) {
          buf = buf.subarray(f.size);
          if (f.opcode === Op.close) {
            this.closeCode = f.payload.length >= 2 ? (f.payload[0]! << 8) | f.payload[1]! : 1005;
            await this.#sendFrame(Op.close, f.payload.subarray(0, 2)).catch(() => {});
            return;
          }
          if (f.opcode === Op.ping) {
            await this.#sendFrame(Op.pong, f.payload);
            continue;
          }
          if (f.opcode === Op.pong) continue;
          if (f.opcode !== Op.continuation) partOp = f.opcode;
          parts.push(f.payload);
          if (!f.fin) continue;
          const payload = concatBytes(parts);
          parts = [];
          this.received(
            partOp === Op.text ? fromText(dec.decode(payload)) : {
              kind: "binary",
              bytes: payload,
            },
          );
        }
        if (this.#paused) await this.#paused.promise;
        const n = await this.conn.read(chunk);
        if (n === null) return;
        buf = concatBytes([buf, chunk.subarray(0, n)]);
      }
    } catch {
      // Reset by the server: same as closed.
    } finally {
      this.ended();
    }
  }

  protected describe(r: WsReceived): string {
    if (r.kind === "packet" || r.kind === "text") return JSON.stringify(r.text);
    return r.kind;
  }

  #sendFrame(opcode: number, payload: Uint8Array): Promise<void> {
    const frame = encodeFrame(opcode, payload);
    const write = this.#writes.then(() => writeAll(this.conn, frame));
    this.#writes = write.catch(() => {});
    return write;
  }

  /** Sends a packet object as one text frame (no 0x01). */
  async send(packet: unknown): Promise<void> {
    await this.sendText(JSON.stringify(packet));
  }

  /** Sends one text frame. */
  async sendText(text: string): Promise<void> {
    await this.#sendFrame(Op.text, enc.encode(text));
  }

  /** Sends one binary frame. */
  async sendBinary(bytes: Uint8Array | string): Promise<void> {
    await this.#sendFrame(Op.binary, typeof bytes === "string" ? enc.encode(bytes) : bytes);
  }

  async close(): Promise<void> {
    this.resume();
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
    await this.done;
  }
}

function fromText(text: string): WsReceived {
  if (text === "\\02") return { kind: "heartbeat" };
  if (text === "\\03") return { kind: "kill" };
  try {
    return { kind: "packet", text, json: JSON.parse(text) };
  } catch {
    return { kind: "text", text };
  }
}

/** One server frame (unmasked) at the start of `buf`, or null if it is not complete yet. */
function parseFrame(buf: Uint8Array) {
  if (buf.length < 2) return null;
  const fin = (buf[0]! & 0x80) !== 0;
  const opcode = buf[0]! & 0x0f;
  let len = buf[1]! & 0x7f;
  let off = 2;
  if (len === 126) {
    if (buf.length < 4) return null;
    len = (buf[2]! << 8) | buf[3]!;
    off = 4;
  } else if (len === 127) {
    if (buf.length < 10) return null;
    len = Number(new DataView(buf.buffer, buf.byteOffset + 2, 8).getBigUint64(0));
    off = 10;
  }
  if (buf.length < off + len) return null;
  return { fin, opcode, payload: buf.slice(off, off + len), size: off + len };
}

/** A masked client frame, FIN set. */
function encodeFrame(opcode: number, payload: Uint8Array): Uint8Array {
  const len = payload.length;
  const ext = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const out = new Uint8Array(2 + ext + 4 + len);
  out[0] = 0x80 | opcode;
  out[1] = 0x80 | (ext === 0 ? len : ext === 2 ? 126 : 127);
  const view = new DataView(out.buffer);
  if (ext === 2) view.setUint16(2, len);
  if (ext === 8) view.setBigUint64(2, BigInt(len));
  const mask = crypto.getRandomValues(new Uint8Array(4));
  out.set(mask, 2 + ext);
  const body = 2 + ext + 4;
  for (let i = 0; i < len; i++) out[body + i] = payload[i]! ^ mask[i & 3]!;
  return out;
}

/** Reads the HTTP response head; returns the status, headers and the bytes after it. */
async function readHead(conn: Deno.Conn) {
  let buf: Uint8Array = new Uint8Array(0);
  const chunk = new Uint8Array(4096);
  for (;;) {
    const end = indexOfCrlf2(buf);
    if (end >= 0) {
      const lines = dec.decode(buf.subarray(0, end)).split("\r\n");
      const headers = new Headers();
      for (const line of lines.slice(1)) {
        const i = line.indexOf(":");
        if (i > 0) headers.append(line.slice(0, i).trim(), line.slice(i + 1).trim());
      }
      const status = Number(lines[0]!.split(" ")[1]);
      return { status, headers, rest: buf.slice(end + 4) };
    }
    const n = await conn.read(chunk);
    if (n === null) throw new Error("connection closed during the WebSocket handshake");
    buf = concatBytes([buf, chunk.subarray(0, n)]);
  }
}

function indexOfCrlf2(buf: Uint8Array): number {
  for (let i = 0; i + 3 < buf.length; i++) {
    if (buf[i] === 13 && buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10) return i;
  }
  return -1;
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}
