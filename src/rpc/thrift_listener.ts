// The Thrift push listener of docs/protocol.md §6 as a node runs it: `emsg_inf_push`
// on the port of `nodeaddr`, the licence checked against `accesstoken`, and
// every content routed by the push API.

import { ConfigError } from "../errors.ts";
import type { Listener } from "../listener.ts";
import type { AcceptGuard } from "../transports/accept_guard.ts";
import { type PushDeps, pushPackets, type PushResult } from "./push.ts";
import { sameSecret } from "./secret.ts";
import { type PushHandler, startThriftPush } from "./thrift_push.ts";

// Reasons named in a refusal answer; the rest are counted only.
const SHOWN_REASONS = 5;

/** The port part of `nodeaddr` ("host:port", "[v6]:port"). */
export function nodeaddrPort(nodeaddr: string): number {
  const digits = nodeaddr.slice(nodeaddr.lastIndexOf(":") + 1);
  const port = Number(digits);
  if (!nodeaddr.includes(":") || !/^\d{1,5}$/.test(digits) || port > 65535) {
    throw new ConfigError(`nodeaddr "${nodeaddr}": expected host:port`);
  }
  return port;
}

/**
 * The call handler: "success" when every content was accepted, otherwise a
 * short reason. Refuses everything while `accesstoken` is empty.
 */
export function thriftPushHandler(push: PushDeps, token: string): PushHandler {
  return async (licence, sn, contents) => {
    if (token === "") return "set accesstoken to enable push";
    if (!sameSecret(licence, token)) {
      push.log.info("thrift push refused: wrong licence", { sn });
      return "wrong licence";
    }
    return answer(await pushPackets(push, contents), contents.length);
  };
}

function answer(r: PushResult, total: number): string {
  if (r.rejected.length === 0) return "success";
  const shown = r.rejected.slice(0, SHOWN_REASONS).map((x) => `${x.index}:${x.reason}`);
  const more = r.rejected.length > SHOWN_REASONS ? " ..." : "";
  return `rejected ${r.rejected.length} of ${total}: ${shown.join(" ")}${more}`;
}

/**
 * Starts the listener on `hostname` and the port of `nodeaddr`.
 * @throws {ConfigError} when nodeaddr has no port; Error when it cannot listen.
 */
export function startThriftListener(
  push: PushDeps,
  opts: { hostname: string; nodeaddr: string; accesstoken: string; idleMs: number },
  guard: AcceptGuard,
): Listener {
  const log = push.log;
  const server = startThriftPush({
    hostname: opts.hostname,
    port: nodeaddrPort(opts.nodeaddr),
    handler: thriftPushHandler(push, opts.accesstoken),
    guard,
    idleMs: opts.idleMs,
    // Its start and connection events are details: the composition root logs the start.
    log: (level, msg) => level === "info" ? log.debug(msg) : log[level](msg),
  });
  return { name: "thrift push", port: server.port, close: () => server.close() };
}
