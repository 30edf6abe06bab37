// The configuration of a node: every `conf.json` key of docs/protocol.md §11 with its
// type, default and meaning. Names are the wire names, so they stay snake_case.

/** Offline keep policy of one message type (docs/protocol.md §10). */
export type OfflinePolicy = "first" | "last" | "all";

/** The whole configuration, as read from conf.json and flags. */
export interface Config {
  port: number;
  wsport: number;
  tlsport: number;
  wssport: number;
  rpcport: number;
  bind: string;
  enable_tcp: boolean;
  enable_ws: boolean;
  enable_tls: boolean;
  enable_wss: boolean;
  keyfile: string;
  certfile: string;
  nodeid: string;
  nodeaddr: string;
  accesstoken: string;
  auth_secret: string;
  protected_mode: boolean;
  dbaddr: string;
  dbpool: number;
  dbpassword: string;
  dbtls: boolean;
  datadir: string;
  callback: string;
  callback_timeout: number;
  enable_auth: boolean;
  enable_offline_callback: boolean;
  logfile: string;
  loglevel: number;
  logformat: "text" | "json";
  pidfile: string;
  dc: string;
  login_timeout: number;
  idle_timeout: number;
  /** Seconds `sara` may take to start (Redis ready, nodeid claimed, listening) before it exits 1. */
  startup_timeout: number;
  offline_expire: number;
  offline_max: number;
  /** Bytes of stored packets kept per user (newest kept, like offline_max). */
  offline_max_bytes: number;
  offline_policy: Record<string, OfflinePolicy>;
  offline_delivery: "delay" | "packets";
  max_packet: number;
  max_conns: number;
  rate_limit: number;
  out_queue_bytes: number;
  dedup_ids: number;
  rpc_max_body: number;
  /** Several sessions per user, one per resource (docs/multi-login.md). */
  multi_login: boolean;
  /** With multi_login: sessions per user; a login beyond it kicks the user's oldest. */
  max_sessions: number;
}

/** Defaults of docs/protocol.md §11; `sara setup` writes exactly these. */
export const DEFAULTS: Readonly<Config> = Object.freeze<Config>({
  port: 4222,
  wsport: 4224,
  tlsport: 4333,
  wssport: 4334,
  rpcport: 4280,
  bind: "0.0.0.0",
  enable_tcp: true,
  enable_ws: true,
  enable_tls: false,
  enable_wss: false,
  keyfile: "/etc/sara/server.key",
  certfile: "/etc/sara/server.pem",
  nodeid: "n01",
  nodeaddr: "localhost:4281",
  accesstoken: "",
  auth_secret: "",
  protected_mode: true,
  dbaddr: "",
  dbpool: 100,
  dbpassword: "",
  dbtls: false,
  datadir: "./sara-data",
  callback: "",
  callback_timeout: 5,
  enable_auth: false,
  enable_offline_callback: false,
  logfile: "/tmp/sara.log",
  loglevel: 3,
  logformat: "text",
  pidfile: "/tmp/sara.pid",
  dc: "dc01",
  login_timeout: 8,
  idle_timeout: 100,
  startup_timeout: 60,
  offline_expire: 604800,
  offline_max: 10000,
  offline_max_bytes: 8388608,
  offline_policy: { "100": "first", "101": "last" },
  offline_delivery: "delay",
  max_packet: 65536,
  max_conns: 100000,
  rate_limit: 2000,
  out_queue_bytes: 4194304,
  dedup_ids: 1000,
  rpc_max_body: 1048576,
  multi_login: false,
  max_sessions: 5,
});

/** The default path of the config file, as Go sara had it. */
export const DEFAULT_CONFIG_PATH = "/etc/sara/conf.json";

/** A fresh, mutable copy of the defaults. */
export function defaultConfig(): Config {
  return structuredClone(DEFAULTS) as Config;
}
