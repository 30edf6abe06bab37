// The WARN lines a node logs at start-up, one per surface left open to the
// network (docs: SECURITY.md): so that running on defaults is a choice seen
// in the log, not an accident.

import { isLoopback } from "../rpc/loopback.ts";
import type { Config } from "./config.ts";

/** One line per open surface of `config`; none for a node set up as SECURITY.md says. */
export function openSurfaces(config: Config): string[] {
  const lines: string[] = [];
  if (config.auth_secret === "" && !(config.enable_auth && config.callback !== "")) {
    lines.push(
      "open login: any jid logs in with any pwd (set auth_secret, or enable_auth with a callback)",
    );
  }
  if (config.accesstoken === "") {
    lines.push(
      config.protected_mode
        ? "accesstoken is empty: the RPC, /metrics and /console answer loopback clients only " +
          "(protected mode); the push API is refused until accesstoken is set"
        : "accesstoken is empty and protected_mode is false: the RPC (push excepted), " +
          "/metrics and /console answer anyone",
    );
  }
  const clear = [config.enable_tcp && "tcp", config.enable_ws && "ws"].filter(Boolean);
  if (clear.length > 0 && !isLoopback(config.bind)) {
    lines.push(
      `${clear.join(" and ")} listen on ${config.bind} without TLS: ` +
        "logins and messages cross the network in clear text",
    );
  }
  return lines;
}
