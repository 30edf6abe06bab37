// Why a session ended, as one value (a code and a reason) that every close
// passes, in the style of centrifuge's Disconnect: the session logs it in one
// place and /metrics counts it (`sara_sessions_closed_total{reason}`). These
// never go on the wire (what the client is told is in docs/protocol.md).

import { Level } from "../log.ts";

/** One way a session can end. */
export interface CloseReason {
  /** Stable number, for log searches (4xxx: the node's decision, 3xxx: the peer's). */
  readonly code: number;
  /** The `reason` label of `sara_sessions_closed_total`. */
  readonly reason: string;
  /** How loudly the close is logged. */
  readonly level: Level;
}

const reason = (code: number, reason: string, level: Level): CloseReason => ({
  code,
  reason,
  level,
});

/** Every close reason; one per call site kind. */
export const Close = {
  /** The client closed the connection, or the transport lost it (slow consumer included). */
  connectionClosed: reason(3000, "connection_closed", Level.debug),
  /** The node is stopping. */
  shutdown: reason(4000, "shutdown", Level.debug),
  /** A newer login of the same user replaced this session (kill signal sent). */
  replaced: reason(4001, "replaced", Level.info),
  /** Logged in, but nothing arrived for `idle_timeout`. */
  idleTimeout: reason(4002, "idle_timeout", Level.info),
  /** Not logged in within `login_timeout`. */
  loginTimeout: reason(4003, "login_timeout", Level.info),
  /** The login was refused (the detail names the failure reason sent to the client). */
  /** DEBUG: refused credentials are logged by the login throttle, once a second at most. */
  loginFailed: reason(4004, "login_failed", Level.debug),
  /** A logged-in client sent something that is not a packet. */
  badPacket: reason(4005, "bad_packet", Level.info),
  /** One packet over `max_packet` bytes. */
  packetTooLarge: reason(4006, "packet_too_large", Level.warn),
  /** A fault of the node while handling the session's packets (a bug: the detail says what). */
  internalError: reason(4007, "internal_error", Level.error),
  /** Over `rate_limit` for 10 s on end. */
  flooding: reason(4008, "flooding", Level.warn),
} as const;

/** The values of the `reason` label, in code order. */
export const CLOSE_REASONS: readonly string[] = Object.values(Close)
  .sort((a, b) => a.code - b.code)
  .map((r) => r.reason);
