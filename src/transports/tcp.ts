// Plain TCP listener (PROTOCOL 1): each accepted socket becomes a StreamConn
// driving one session.

import type { Admission } from "../session/conn.ts";
import { type BindOptions, type Listener, listenError } from "../listener.ts";
import { StreamConn } from "./stream_conn.ts";

/** Starts the TCP listener; rejects with a clear message when the port cannot be bound. */
export function startTcp(node: Admission, opts: BindOptions): Listener {
  let listener: Deno.TcpListener;
  try {
    listener = Deno.listen({ hostname: opts.hostname, port: opts.port, transport: "tcp" });
  } catch (err) {
    throw listenError("tcp", opts, err);
  }
  const accepting = acceptLoop(node, "tcp", listener, (socket) => {
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
 * Accepts until the listener closes. `prepare` may wrap or configure each
 * socket (TLS uses it); a failing accept (EMFILE) pauses instead of spinning.
 */
export async function acceptLoop<C extends Deno.Conn>(
  node: Admission,
  transport: string,
  listener: Deno.Listener<C>,
  prepare: (socket: C) => Deno.Conn,
): Promise<void> {
  const warn = (msg: string, remote: string) => node.log.warn(msg, { transport, remote });
  for (;;) {
    let socket: C;
    try {
      socket = await listener.accept();
    } catch (err) {
      if (err instanceof Deno.errors.BadResource || err instanceof Deno.errors.Interrupted) return;
      node.log.error(`${transport} accept failed: ${err}`);
      await new Promise((r) => setTimeout(r, 100));
      continue;
    }
    const conn = new StreamConn(transport, prepare(socket), node.limits, warn);
    conn.handler = node.admit(conn);
    if (conn.handler) conn.serve();
  }
}
