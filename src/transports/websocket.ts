// WebSocket and WSS listeners (docs/protocol.md §1): any path upgrades; each text or
// binary message is one packet without 0x01, and heartbeat and kill go out as
// the 3-character texts `\02` and `\03` that browser SDKs compare. The sockets
// come from the same accept loop as TCP and TLS, with the WebSocket framing
// of src/protocol/ws_framing.ts: a frame over max_packet is refused from its
// header, and a socket that does not finish its upgrade within login_timeout
// is closed.

import type { Admission } from "../session/conn.ts";
import { WS_FRAMING } from "../protocol/ws_framing.ts";
import type { AcceptGuard } from "./accept_guard.ts";
import { type BindOptions, type Listener, listenError } from "../listener.ts";
import { acceptLoop } from "./tcp.ts";
import { pairAtFault, readCertPair, type TlsFiles } from "./tls.ts";

/**
 * Starts the WebSocket listener, or WSS when `tls` names the PEM pair. Throws
 * a clear message (listener, address, file) when it cannot start.
 */
export function startWs(
  node: Admission,
  opts: BindOptions,
  guard: AcceptGuard,
  tls?: TlsFiles,
): Listener {
  const name = tls ? "wss" : "ws";
  const pair = tls ? readCertPair(name, opts, tls) : undefined;
  let listener: Deno.Listener;
  try {
    listener = pair
      ? Deno.listenTls({ hostname: opts.hostname, port: opts.port, ...pair })
      : Deno.listen({ hostname: opts.hostname, port: opts.port, transport: "tcp" });
  } catch (err) {
    throw listenError(name, opts, err, tls && pairAtFault(err, tls));
  }
  const accepting = acceptLoop(node, name, listener, WS_FRAMING, guard, (socket) => {
    if (!pair) (socket as Deno.TcpConn).setNoDelay(true);
    return socket;
  });
  return {
    name,
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      listener.close();
      await accepting;
    },
  };
}
