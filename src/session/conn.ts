// The one interface between transports and the session core: the core sends
// packets and control signals, the transport frames and writes them; and
// what a transport is given to admit connections.

import type { Logger } from "../log.ts";

/** A client connection as the session core sees it, whatever the transport. */
export interface Conn {
  /** "tcp", "tls", "ws" or "wss": for logs, metrics and the session registry only. */
  readonly transport: string;
  /** Peer address, for logs. */
  readonly remote: string;
  /** Queues one serialised JSON packet; writes are coalesced (see the transport). */
  send(packet: string): void;
  /** Answers a heartbeat in the transport's framing. */
  sendHeartbeat(): void;
  /** Sends the kill signal (the session was replaced by a newer login). */
  sendKill(): void;
  /** Flushes what is queued, then closes. Idempotent. */
  close(): void;
}

/** What a transport calls on the core for one connection. */
export interface ConnHandler {
  /** One complete packet, decoded as text. */
  packet(text: string): void;
  heartbeat(): void;
  /** The client sent more than `max_packet` bytes in one packet. */
  oversize(): void;
  /** The connection is gone (either side closed it, or it failed). */
  closed(): void;
}

/** Per-connection limits every transport applies. */
export interface ConnLimits {
  /** Largest packet, in bytes (`max_packet`). */
  readonly maxPacket: number;
  /** Bytes queued to a slow reader before the connection is closed (`out_queue_bytes`). */
  readonly outQueueBytes: number;
  /** A handshake (TLS, WebSocket upgrade) not done within this many ms closes the socket. */
  readonly handshakeMs: number;
}

/** What a transport gets from the node: admission of each connection, its limits, a logger. */
export interface Admission {
  /** The handler (session) of a new connection; null when refused (the conn is closing). */
  admit(conn: Conn): ConnHandler | null;
  readonly limits: ConnLimits;
  readonly log: Logger;
}

/**
 * What a transport hands on for bytes that are not UTF-8: not JSON, so the
 * core answers it like any unreadable packet (fail_packet before login;
 * bad_packet and a close after).
 */
export const UNREADABLE = "\uFFFD";
