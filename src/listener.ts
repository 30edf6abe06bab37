// What the composition root needs of every started listener.

import { errMsg } from "./log.ts";

/** A running listener. */
export interface Listener {
  /** "tcp", "tls", "ws", "wss", "rpc", "thrift push". */
  readonly name: string;
  /** The port actually bound (useful with port 0). */
  readonly port: number;
  /** Stops accepting; existing connections are closed by the session core. */
  close(): Promise<void>;
}

/** Where to bind. */
export interface BindOptions {
  hostname: string;
  port: number;
}

/** A listener that failed to start, with the listener, address and cause in the message. */
export function listenError(name: string, opts: BindOptions, err: unknown, file?: string): Error {
  const cause = errMsg(err);
  const where = `${opts.hostname}:${opts.port}`;
  return new Error(
    `${name} listener on [${where}] failed to start${file ? ` (${file})` : ""}: ${cause}`,
  );
}
