// A TCP or TLS socket as a session Conn: reads into a small buffer that grows
// only while data streams in, splits packets on 0x01, and coalesces all the
// packets queued in one event-loop turn into one write.

import { HEARTBEAT_FRAME, KILL_FRAME, StreamDecoder } from "../protocol/framing.ts";
import type { Conn, ConnHandler } from "../session/conn.ts";

const SMALL = 512;
const LARGE = 16384;
// A close waits this long for queued bytes (the kill, a login error) to leave.
const CLOSE_GRACE_MS = 2000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Limits applied per connection. */
export interface StreamLimits {
  maxPacket: number;
  outQueueBytes: number;
}

/** Something to call when a connection misbehaves, for the node's log. */
export type ConnLog = (msg: string, remote: string) => void;

/** One stream connection; `serve()` runs its read loop until it ends. */
export class StreamConn implements Conn {
  readonly remote: string;
  handler: ConnHandler | null = null;
  #out: string[] = [];
  #outBytes = 0;
  #raw: Uint8Array[] = [];
  #writing = false;
  #scheduled = false;
  #closing = false;
  #closed = false;
  #graceTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    readonly transport: string,
    readonly socket: Deno.Conn,
    readonly limits: StreamLimits,
    readonly warn: ConnLog,
  ) {
    const a = socket.remoteAddr as Deno.NetAddr;
    this.remote = `${a.hostname}:${a.port}`;
  }

  send(packet: string): void {
    if (this.#closing) return;
    this.#out.push(packet);
    this.#queued(packet.length + 1);
  }

  sendHeartbeat(): void {
    this.#sendRaw(HEARTBEAT_FRAME);
  }

  sendKill(): void {
    this.#sendRaw(KILL_FRAME);
  }

  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    if (!this.#writing && !this.#scheduled) return this.#shut();
    this.#graceTimer = setTimeout(() => this.#shut(), CLOSE_GRACE_MS);
  }

  /** Reads until the peer or the server closes; then tells the handler, once. */
  async serve(): Promise<void> {
    const dec = new StreamDecoder(this.limits.maxPacket, {
      packet: (bytes) => this.handler?.packet(decoder.decode(bytes)),
      heartbeat: () => this.handler?.heartbeat(),
      oversize: () => this.handler?.oversize(),
    });
    let buf = new Uint8Array(SMALL);
    try {
      for (;;) {
        const n = await this.socket.read(buf);
        if (n === null) break;
        dec.push(buf.subarray(0, n));
        // Grow while reads fill the buffer (bulk data), shrink back when idle:
        // an idle connection keeps only the small buffer.
        if (n === buf.length && buf.length < LARGE) buf = new Uint8Array(LARGE);
        else if (n < SMALL && buf.length > SMALL) buf = new Uint8Array(SMALL);
        if (this.#closed) break;
      }
    } catch (err) {
      if (!this.#closed && !isDisconnect(err)) this.warn(`read failed: ${err}`, this.remote);
    }
    this.#shut();
  }

  #sendRaw(bytes: Uint8Array): void {
    if (this.#closing) return;
    // Keeps order with packets queued before it.
    this.#flushStrings();
    this.#raw.push(bytes);
    this.#queued(bytes.length);
  }

  #queued(n: number): void {
    this.#outBytes += n;
    // Only bytes piling up behind a write the peer has not taken count: what
    // one turn queues (a login answer with a big backlog) goes out whole.
    if (this.#writing && this.#outBytes > this.limits.outQueueBytes) {
      this.warn(`slow consumer: ${this.#outBytes} bytes unsent, closing`, this.remote);
      this.#out = [];
      this.#raw = [];
      return this.#shut();
    }
    if (!this.#scheduled && !this.#writing) {
      this.#scheduled = true;
      queueMicrotask(() => this.#flush());
    }
  }

  #flushStrings(): void {
    if (this.#out.length === 0) return;
    const text = this.#out.length === 1 ? this.#out[0]! + "\x01" : this.#out.join("\x01") + "\x01";
    this.#out = [];
    this.#raw.push(encoder.encode(text));
  }

  async #flush(): Promise<void> {
    this.#scheduled = false;
    if (this.#closed) return;
    this.#writing = true;
    try {
      for (;;) {
        this.#flushStrings();
        if (this.#raw.length === 0) break;
        const chunks = this.#raw;
        this.#raw = [];
        const data = chunks.length === 1 ? chunks[0]! : concat(chunks);
        this.#outBytes = 0;
        let off = 0;
        while (off < data.length) off += await this.socket.write(data.subarray(off));
      }
    } catch (err) {
      if (!isDisconnect(err)) this.warn(`write failed: ${err}`, this.remote);
      return this.#shut();
    } finally {
      this.#writing = false;
    }
    if (this.#closing) this.#shut();
  }

  #shut(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing = true;
    clearTimeout(this.#graceTimer);
    try {
      this.socket.close();
    } catch {
      // Already closed by the peer.
    }
    const h = this.handler;
    this.handler = null;
    h?.closed();
  }
}

function concat(chunks: Uint8Array[]): Uint8Array {
  let len = 0;
  for (const c of chunks) len += c.length;
  const out = new Uint8Array(len);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

function isDisconnect(err: unknown): boolean {
  return err instanceof Deno.errors.ConnectionReset ||
    err instanceof Deno.errors.BrokenPipe ||
    err instanceof Deno.errors.BadResource ||
    err instanceof Deno.errors.Interrupted ||
    err instanceof Deno.errors.NotConnected ||
    // A TLS peer that drops the TCP connection without close_notify: the
    // usual way a mobile client goes away.
    err instanceof Deno.errors.UnexpectedEof;
}
