// WebSocket and WSS listeners (PROTOCOL 1): Deno.serve upgrades a request on
// any path; each text frame is one packet without 0x01, and heartbeat and kill
// go out as the 3-character texts `\02` and `\03` that browser SDKs compare.

import type { Admission, Conn, ConnHandler } from "../session/conn.ts";
import { type BindOptions, type Listener, listenError } from "../listener.ts";
import type { ConnLog, StreamLimits } from "./stream_conn.ts";
import { pairAtFault, readCertPair, type TlsFiles } from "./tls.ts";

/** Heartbeat as WebSocket clients send and expect it: backslash, zero, two. */
export const WS_HEARTBEAT = "\\02";
/** Kill as WebSocket clients expect it: backslash, zero, three. */
export const WS_KILL = "\\03";

/** What one client frame means. */
export type WsFrame =
  | { kind: "packet"; text: string }
  | { kind: "heartbeat" }
  | { kind: "empty" }
  | { kind: "oversize" }
  | { kind: "malformed" };

const utf8 = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

/**
 * Reads one client frame (text, or binary holding UTF-8): strips a trailing
 * 0x01 that stream-minded clients add, and recognises the heartbeat both as
 * the byte 0x02 and as the text `\02`. Pure.
 */
export function decodeWsFrame(data: string | ArrayBuffer, maxPacket: number): WsFrame {
  let text: string;
  if (typeof data === "string") {
    text = data.endsWith("\x01") ? data.slice(0, -1) : data;
    if (utf8Length(text, maxPacket) > maxPacket) return { kind: "oversize" };
  } else {
    let bytes = new Uint8Array(data);
    if (bytes[bytes.length - 1] === 0x01) bytes = bytes.subarray(0, -1);
    if (bytes.length > maxPacket) return { kind: "oversize" };
    try {
      text = utf8.decode(bytes);
    } catch {
      return { kind: "malformed" };
    }
  }
  if (text === "") return { kind: "empty" };
  if (text === "\x02" || text === WS_HEARTBEAT) return { kind: "heartbeat" };
  return { kind: "packet", text };
}

// UTF-8 is at least one byte per UTF-16 unit and at most three, so the exact
// count is needed only in between.
function utf8Length(text: string, max: number): number {
  if (text.length > max || text.length * 3 <= max) return text.length;
  return encoder.encode(text).length;
}

// Not JSON: the core answers it like any unreadable packet (fail_packet
// before login; bad_packet and a close after), without learning why.
const UNREADABLE = "\uFFFD";

/** One upgraded WebSocket as a session Conn. */
export class WsConn implements Conn {
  handler: ConnHandler | null = null;
  #closing = false;
  #closed = false;
  // Bytes sent since the current run of synchronous code began.
  #burst = 0;

  constructor(
    readonly transport: string,
    readonly socket: WebSocket,
    readonly remote: string,
    readonly limits: StreamLimits,
    readonly warn: ConnLog,
    admit: (conn: WsConn) => ConnHandler | null,
  ) {
    socket.onopen = () => {
      this.handler = admit(this);
    };
    socket.onmessage = (e: MessageEvent) => this.#frame(e.data);
    // Also fires after every error (reset, invalid UTF-8 in a text frame).
    socket.onclose = () => this.#shut();
  }

  send(packet: string): void {
    this.#write(packet);
  }

  sendHeartbeat(): void {
    this.#write(WS_HEARTBEAT);
  }

  sendKill(): void {
    this.#write(WS_KILL);
  }

  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    // The close frame queues behind the frames already sent, so they leave first.
    this.socket.close(1000);
  }

  #write(text: string): void {
    if (this.#closing || this.socket.readyState !== WebSocket.OPEN) return;
    // Each send is one frame that Deno writes from its own task;
    // bufferedAmount counts the bytes not yet taken by the socket, and the
    // difference around send() is this frame's size in bytes.
    const before = this.socket.bufferedAmount;
    this.socket.send(text);
    const unsent = this.socket.bufferedAmount;
    if (this.#burst === 0) queueMicrotask(() => this.#burst = 0);
    this.#burst += unsent - before;
    // Like StreamConn: only bytes left behind by earlier turns count, so
    // that what one turn queues (a login answer with a big backlog) goes out whole.
    if (unsent - this.#burst > this.limits.outQueueBytes) {
      this.warn(`slow consumer: ${unsent} bytes unsent, closing`, this.remote);
      this.#closing = true;
      // Not from inside send(): the session may be in the middle of a step.
      queueMicrotask(() => this.#shut());
    }
  }

  #frame(data: string | ArrayBuffer): void {
    const h = this.handler;
    if (!h || this.#closing) return;
    const f = decodeWsFrame(data, this.limits.maxPacket);
    switch (f.kind) {
      case "packet":
        return h.packet(f.text);
      case "heartbeat":
        return h.heartbeat();
      case "oversize":
        return h.oversize();
      case "malformed":
        return h.packet(UNREADABLE);
    }
  }

  #shut(): void {
    if (this.#closed) return;
    this.#closed = this.#closing = true;
    if (this.socket.readyState === WebSocket.OPEN) this.socket.close(1000);
    const h = this.handler;
    this.handler = null;
    h?.closed();
  }
}

/**
 * Starts the WebSocket listener, or WSS when `tls` names the PEM pair. Throws
 * a clear message (listener, address, file) when it cannot start.
 */
export function startWs(node: Admission, opts: BindOptions, tls?: TlsFiles): Listener {
  const name = tls ? "wss" : "ws";
  const pair = tls ? readCertPair(name, opts, tls) : undefined;
  const warn = (msg: string, remote: string) => node.log.warn(msg, { transport: name, remote });
  const admit = (conn: WsConn) => node.admit(conn);
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: opts.hostname,
      port: opts.port,
      ...pair,
      onListen() {}, // server.ts logs the start line
      onError(err) {
        node.log.warn(`${name} request failed: ${err}`);
        return new Response(null, { status: 500 });
      },
    }, (req, info) => {
      if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") return NOT_UPGRADE();
      // Read before the upgrade, which ends the request.
      const peer = `${info.remoteAddr.hostname}:${info.remoteAddr.port}`;
      let up: Deno.WebSocketUpgrade;
      try {
        // idleTimeout 0: liveness is the session sweep's idle_timeout, with
        // no ping timer per connection.
        up = Deno.upgradeWebSocket(req, { idleTimeout: 0 });
      } catch {
        return new Response("bad WebSocket handshake\n", { status: 400 });
      }
      // Kept alive by the socket's event handlers; admitted once it is open.
      new WsConn(name, up.socket, peer, node.limits, warn, admit);
      return up.response;
    });
  } catch (err) {
    throw listenError(name, opts, err, tls && pairAtFault(err, tls));
  }
  return {
    name,
    port: server.addr.port,
    // Also closes the upgraded sockets, which ends their sessions.
    close: () => server.shutdown(),
  };
}

// A plain HTTP request (a probe, a browser typing the URL): tell it to upgrade.
const NOT_UPGRADE = () =>
  new Response("sara: this port speaks WebSocket only\n", {
    status: 426,
    headers: { upgrade: "websocket", connection: "Upgrade" },
  });
