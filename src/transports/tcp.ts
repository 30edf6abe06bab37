// Plain TCP listener (docs/protocol.md §1): each accepted socket becomes a StreamConn
// driving one session. Its accept loop serves TLS, WS and WSS too.

import type { Admission } from "../session/conn.ts";
import { type Framing, STREAM_FRAMING } from "../protocol/framing.ts";
import { acceptEach, type AcceptGuard } from "./accept_guard.ts";
import { type BindOptions, type Listener, listenError } from "../listener.ts";
import { type ConnContext, StreamConn } from "./stream_conn.ts";

/** Starts the TCP listener; rejects with a clear message when the port cannot be bound. */
export function startTcp(node: Admission, opts: BindOptions, guard: AcceptGuard): Listener {
  let listener: Deno.TcpListener;
  try {
    listener = Deno.listen({ hostname: opts.hostname, port: opts.port, transport: "tcp" });
  } catch (err) {
    throw listenError("tcp", opts, err);
  }
  const accepting = acceptLoop(node, "tcp", listener, STREAM_FRAMING, guard, (socket) => {
    socket.setNoDelay(true);
    return socket;
  });
  return {
    name: "tcp",
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      listener.close();
      await accepting;
    },
  };
}

/**
 * Accepts until the listener closes (acceptEach: EMFILE backs off and goes
 * on). `prepare` may wrap or configure each socket.
 */
export async function acceptLoop<C extends Deno.Conn>(
  node: Admission,
  transport: string,
  listener: Deno.Listener<C>,
  framing: Framing,
  guard: AcceptGuard,
  prepare: (socket: C) => Deno.Conn,
): Promise<void> {
  const ctx: ConnContext = {
    limits: node.limits,
    warn: (msg, remote) => node.log.warn(msg, { transport, remote }),
    admit: (conn) => node.admit(conn),
    pending: new Set(),
  };
  await acceptEach(listener, transport, guard, (socket) => {
    new StreamConn(transport, prepare(socket), framing, ctx).serve();
  });
  // Sessions are closed by the server; handshakes that never finished close here.
  for (const conn of [...ctx.pending]) conn.close();
}
