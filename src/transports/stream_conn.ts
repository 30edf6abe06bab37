// A TCP, TLS, WS or WSS socket as a session Conn: reads into a small buffer
// that grows only while data streams in, hands the bytes to its framing's
// decoder, and coalesces the packets queued for a connection into one write:
// those one read produced, or those queued while its previous write is out.

import type { ConnSink, Decoder, Framing } from "../protocol/framing.ts";
import { type Conn, type ConnHandler, UNREADABLE } from "../session/conn.ts";
import { concatBytes, decodeUtf8 } from "../bytes.ts";

// Read buffer sizes. Idle sessions are most of a node, and each pending read
// pins its buffer: a connection reads its login into MEDIUM, then waits in
// SMALL. A read that fills its buffer steps up (SMALL to MEDIUM to LARGE); a
// LARGE read that brought less than MEDIUM steps down to MEDIUM, and a
// heartbeat (all an idle client sends) back to SMALL.
const SMALL = 64;
const MEDIUM = 512;
const LARGE = 16384;
const HEARTBEAT_READ = 2;
// LARGE buffers kept for reuse once their connections slowed down.
const POOL_MAX = 64;
const pool: Uint8Array[] = [];
// A close waits this long for queued bytes (the kill, a login error) to leave.
const CLOSE_GRACE_MS = 2000;

const EMPTY = new Uint8Array(0);

/** Limits applied per connection. */
export interface StreamLimits {
  maxPacket: number;
  outQueueBytes: number;
  /** A handshake (WebSocket upgrade) not done within this many ms closes the socket. */
  handshakeMs: number;
}

/** What every connection of one listener shares. */
export interface ConnContext {
  limits: StreamLimits;
  warn: ConnLog;
  /** Opens the session of a connection: its handler, or null when it was refused (and closed). */
  admit: (conn: StreamConn) => ConnHandler | null;
  /** Connections still in their handshake (no session yet): the listener closes them on stop. */
  pending: Set<StreamConn>;
}

/** Something to call when a connection misbehaves, for the node's log. */
export type ConnLog = (msg: string, remote: string) => void;

/** One connection; `serve()` starts its read loop, which runs until it ends. */
export class StreamConn implements Conn {
  // Connections that queued output while one read's packets were handled:
  // written once that read is done, not after every read of the event-loop
  // turn (which run first), so that a recipient is not kept waiting behind
  // other connections' packets (BENCHMARKS.md, "Single node: timing trace of the event loop").
  static readonly #readDirty: StreamConn[] = [];
  static #inRead = false;
  handler: ConnHandler | null = null;
  #decoder: Decoder;
  readonly #sink = new Sink(this);
  #buf: Uint8Array = new Uint8Array(MEDIUM);
  // Whether the read that completed the first packet (the login) was seen.
  #pastLogin = false;
  // Queued output, allocated while there is some (most sessions are idle).
  #out: string[] | null = null;
  #outBytes = 0;
  #raw: Uint8Array[] | null = null;
  #writing = false;
  #scheduled = false;
  #closing = false;
  #closed = false;
  #graceTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    readonly transport: string,
    readonly socket: Deno.Conn,
    readonly framing: Framing,
    readonly ctx: ConnContext,
  ) {
    this.#decoder = framing.decoder(ctx.limits.maxPacket, this.#sink);
  }

  get limits(): StreamLimits {
    return this.ctx.limits;
  }

  get warn(): ConnLog {
    return this.ctx.warn;
  }

  /** Peer address, for logs: built when asked, since most connections never log. */
  get remote(): string {
    const a = this.socket.remoteAddr as Deno.NetAddr;
    return `${a.hostname}:${a.port}`;
  }

  send(packet: string): void {
    if (this.#closing) return;
    (this.#out ??= []).push(packet);
    this.#queued(packet.length + 1);
  }

  sendHeartbeat(): void {
    this.#sendRaw(this.framing.heartbeat);
  }

  sendKill(): void {
    this.#sendRaw(this.framing.kill);
  }

  /** Sends bytes of the framing itself (handshake answer, pong, close frame). */
  sendRaw(bytes: Uint8Array): void {
    this.#sendRaw(bytes);
  }

  /** The handshake is done: the session starts. */
  opened(): void {
    clearTimeout(this.#graceTimer);
    this.ctx.pending.delete(this);
    this.handler = this.ctx.admit(this);
  }

  close(): void {
    if (this.#closing) return;
    const goodbye = this.#decoder.goodbye;
    if (goodbye) this.#sendRaw(goodbye);
    this.#closing = true;
    if (!this.#writing && !this.#scheduled) return this.#shut();
    clearTimeout(this.#graceTimer);
    this.#graceTimer = setTimeout(() => this.#shut(), CLOSE_GRACE_MS);
  }

  /**
   * Starts reading until the peer or the server closes; then tells the
   * handler, once. Callbacks rather than an async loop: a suspended async
   * function per idle connection costs more memory than two bound functions.
   */
  serve(): void {
    if (this.framing.handshake) {
      // Reuses the grace timer's slot: no close can be pending before the upgrade.
      this.#graceTimer = setTimeout(() => this.#shut(), this.limits.handshakeMs);
      this.ctx.pending.add(this);
    } else {
      this.handler = this.ctx.admit(this);
      if (this.handler === null) return;
    }
    this.#read();
  }

  #read(): void {
    this.socket.read(this.#buf).then(this.#onRead, this.#onReadError);
  }

  readonly #onRead = (n: number | null): void => {
    if (n === null) {
      this.#shut();
      return this.#release();
    }
    const buf = this.#buf;
    StreamConn.#inRead = true;
    try {
      this.#decoder.push(buf.subarray(0, n));
    } catch (err) {
      StreamConn.#flushRead();
      return this.#onReadError(err);
    }
    StreamConn.#flushRead();
    this.#resize(buf, n);
    if (this.#closed) return this.#release();
    this.#read();
  };

  readonly #onReadError = (err: unknown): void => {
    if (!this.#closed && !isDisconnect(err)) this.warn(`read failed: ${err}`, this.remote);
    this.#shut();
    this.#release();
  };

  /** Picks the buffer of the next read after `n` bytes came into `buf`. */
  #resize(buf: Uint8Array, n: number): void {
    let size = buf.length;
    if (n === size) size = size === SMALL ? MEDIUM : LARGE;
    else if (n <= HEARTBEAT_READ || (!this.#pastLogin && this.#sink.packets > 0)) size = SMALL;
    else if (size === LARGE && n < MEDIUM) size = MEDIUM;
    if (this.#sink.packets > 0) this.#pastLogin = true;
    if (size === buf.length) return;
    this.#buf = size === LARGE ? pool.pop() ?? new Uint8Array(LARGE) : new Uint8Array(size);
    // The decoder copied what it keeps: the old buffer is free.
    if (buf.length === LARGE && pool.length < POOL_MAX) pool.push(buf);
  }

  /** Gives a pooled buffer back once no read can use it any more. */
  #release(): void {
    const buf = this.#buf;
    this.#buf = EMPTY;
    if (buf.length === LARGE && pool.length < POOL_MAX) pool.push(buf);
  }

  #sendRaw(bytes: Uint8Array): void {
    if (this.#closing) return;
    // Keeps order with packets queued before it.
    this.#flushStrings();
    (this.#raw ??= []).push(bytes);
    this.#queued(bytes.length);
  }

  #queued(n: number): void {
    this.#outBytes += n;
    // Only bytes piling up behind a write the peer has not taken count: what
    // one read or one turn queues (a login answer with a big backlog) goes out whole.
    if (this.#writing && this.#outBytes > this.limits.outQueueBytes) {
      this.warn(`slow consumer: ${this.#outBytes} bytes unsent, closing`, this.remote);
      this.#out = null;
      this.#raw = null;
      return this.#shut();
    }
    if (!this.#scheduled && !this.#writing) {
      this.#scheduled = true;
      if (StreamConn.#inRead) StreamConn.#readDirty.push(this);
      else queueMicrotask(() => this.#flush());
    }
  }

  /** Writes what the read just handled queued (see #readDirty). */
  static #flushRead(): void {
    StreamConn.#inRead = false;
    const dirty = StreamConn.#readDirty;
    if (dirty.length === 0) return;
    // Kept, not replaced, once emptied: #inRead is false, so nothing joins
    // the list while it is walked (what is queued meanwhile takes a microtask).
    for (const conn of dirty) void conn.#flush();
    dirty.length = 0;
  }

  #flushStrings(): void {
    const out = this.#out;
    if (out === null) return;
    this.#out = null;
    (this.#raw ??= []).push(this.framing.encode(out));
  }

  async #flush(): Promise<void> {
    this.#scheduled = false;
    if (this.#closed) return;
    this.#writing = true;
    try {
      for (;;) {
        this.#flushStrings();
        const chunks = this.#raw;
        if (chunks === null) break;
        this.#raw = null;
        const data = concatBytes(chunks);
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
    this.ctx.pending.delete(this);
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

/** Hands the decoder's frames to the connection's handler. */
class Sink implements ConnSink {
  /** Packets handed on (counting stops at 1: only the first matters). */
  packets = 0;

  constructor(readonly conn: StreamConn) {}

  packet(bytes: Uint8Array): void {
    this.packets = 1;
    // Invalid UTF-8 is refused, never replaced: two different byte strings
    // must not become one jid.
    this.conn.handler?.packet(decodeUtf8(bytes) ?? UNREADABLE);
  }

  reply(bytes: Uint8Array): void {
    this.conn.sendRaw(bytes);
  }

  opened(): void {
    this.conn.opened();
  }

  end(): void {
    this.conn.close();
  }

  heartbeat(): void {
    this.conn.handler?.heartbeat();
  }

  oversize(): void {
    this.conn.handler?.oversize();
  }
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
