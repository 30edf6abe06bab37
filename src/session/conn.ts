// The one interface between transports and the session core: the core sends
// packets and control signals, the transport frames and writes them.

/** A client connection as the session core sees it, whatever the transport. */
export interface Conn {
  /** "tcp", "tls", "ws" or "wss": for logs, metrics and the session registry only. */
  readonly transport: string;
  /** Peer address, for logs. */
  readonly remote: string;
  /** Queues one serialised JSON packet; writes are coalesced per event-loop turn. */
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

/**
 * What a transport hands on for bytes that are not UTF-8: not JSON, so the
 * core answers it like any unreadable packet (fail_packet before login;
 * bad_packet and a close after).
 */
export const UNREADABLE = "\uFFFD";
