// Error codes the outside world sees (docs/protocol.md §2, §3, §6), kept in one place so
// that every boundary answers with exactly the same strings.

/** Reasons of a failed login answer (docs/protocol.md §3). */
export type LoginFailure =
  | "fail_packet"
  | "fail_type"
  | "fail_token"
  | "fail_param"
  | "timeout"
  | "store_error";

/** Reasons of a `sys_notify` notice to a logged-in client (docs/protocol.md §2). */
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

/** errCode values of the HTTP RPC interface (docs/protocol.md §6), JSON strings. */
export const RpcCode = {
  badBody: "1000",
  badParams: "1001",
  unknownMethod: "1002",
  refused: "1003",
  badPwd: "2000",
  /** The server failed (store unreachable): sara's addition to docs/protocol.md §6. */
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
