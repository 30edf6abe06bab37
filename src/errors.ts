// Error codes the outside world sees (PROTOCOL 2, 3, 6), kept in one place so
// that every boundary answers with exactly the same strings.

/** Reasons of a failed login answer (PROTOCOL 3). */
export type LoginFailure = "fail_packet" | "fail_type" | "fail_token" | "fail_param" | "timeout";

/** Reasons of a `sys_notify` notice to a logged-in client (PROTOCOL 2). */
export type NoticeReason =
  | "bad_from"
  | "bad_to"
  | "bad_packet"
  | "no_permission"
  | "group_notfound"
  | "group_too_small"
  | "rate_limited"
  | "store_error"
  | "packet_too_large"
  | "server_full";

/** errCode values of the HTTP RPC interface (PROTOCOL 6), JSON strings. */
export const RpcCode = {
  badBody: "1000",
  badParams: "1001",
  unknownMethod: "1002",
  refused: "1003",
  badPwd: "2000",
  /** Not in PROTOCOL 6: the server failed (store unreachable); see README. */
  internal: "5000",
} as const;
export type RpcCode = typeof RpcCode[keyof typeof RpcCode];

/** An error the RPC boundary turns into `{"success":false,"entity":{errCode,reason}}`. */
export class RpcError extends Error {
  constructor(readonly code: RpcCode, readonly reason: string) {
    super(reason);
    this.name = "RpcError";
  }
}

/** The store could not do what was asked (Redis down, disk full): clients get `store_error`. */
export class StoreError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StoreError";
  }
}

/** A configuration file or value that sara refuses to start with. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}
