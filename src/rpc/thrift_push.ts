// Thrift push listener on `nodeaddr` (docs/protocol.md §6): serves emsg_inf_push over the
// framed transport and binary protocol, and hands every call to an injected handler.

import { type AddressInfo, createServer, type Server, type Socket } from "node:net";
import {
  isPushMethod,
  type PushCall,
  type PushMethod,
  readArgs,
  writeResult,
} from "./thrift/emsg_inf_push.ts";
import {
  AppErrorType,
  MessageType,
  TBinaryProtocol,
  TFramedTransport,
  ThriftApplicationError,
  type TProtocol,
  type TTransport,
  writeApplicationError,
} from "./thrift/runtime.ts";
import { errMsg } from "../log.ts";

/** Largest accepted frame; a header announcing more closes the connection before buffering. */
export const MAX_FRAME_BYTES = 1024 * 1024;

/**
 * Delivers pushed packets: `process` passes one content, `process_batch` the whole list. The
 * resolved string is the answer the Thrift caller gets; a rejection reaches the caller as a
 * TApplicationException INTERNAL_ERROR (the error itself is only logged).
 */
export interface PushHandler {
  (licence: string, sn: string, contents: (string | null)[]): Promise<string>;
}

/** Log sink of the listener; lines never contain the licence. */
export type PushLog = (level: "info" | "warn" | "error", msg: string) => void;

/** Where to listen and whom to call. Port 0 picks a free port. */
export interface ThriftPushOptions {
  hostname: string;
  port: number;
  handler: PushHandler;
  log?: PushLog;
}

/** A running listener. */
export interface ThriftPush {
  /** The port actually bound. */
  port: number;
  /**
   * Stops accepting, closes idle connections and closes busy ones once the call in progress
   * is answered (so it waits for the handler). Safe to call more than once.
   */
  close(): Promise<void>;
}

/**
 * Starts the Thrift push listener.
 * @throws {Error} naming "thrift push", the host and the port when it cannot listen.
 */
export async function startThriftPush(opts: ThriftPushOptions): Promise<ThriftPush> {
  const log: PushLog = opts.log ?? (() => {});
  const connections = new Set<PushConnection>();
  const server = createServer((socket) => {
    const conn = new PushConnection(socket, opts.handler, log);
    connections.add(conn);
    conn.closed.then(() => connections.delete(conn));
  });
  await listen(server, opts.hostname, opts.port);
  server.on("error", (err) => log("error", `thrift push: listener error: ${err.message}`));
  const port = (server.address() as AddressInfo).port;
  log("info", `thrift push: listening on ${hostPort(opts.hostname, port)}`);

  let closing: Promise<void> | undefined;
  return {
    port,
    close() {
      closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        const closed = [...connections].map((conn) => conn.shutdown());
        await Promise.all([stopped, ...closed]);
      })();
      return closing;
    },
  };
}

function listen(server: Server, hostname: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (err: Error) => {
      reject(
        new Error(`thrift push: cannot listen on ${hostPort(hostname, port)}: ${err.message}`, {
          cause: err,
        }),
      );
    };
    server.once("error", fail);
    server.listen(port, hostname, () => {
      server.off("error", fail);
      resolve();
    });
  });
}

function hostPort(hostname: string, port: number): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}

/** What answering one frame produced: bytes to send, and whether to close afterwards. */
interface Outcome {
  reply?: Uint8Array;
  closeReason?: string;
}

/**
 * One client connection. Frames are answered one at a time, in order; reading pauses while a
 * call is in progress, so a client that floods calls is held back by TCP, not buffered here.
 */
class PushConnection {
  /** Resolves once the socket is closed. */
  readonly closed: Promise<void>;
  readonly #socket: Socket;
  readonly #handler: PushHandler;
  readonly #log: PushLog;
  readonly #peer: string;
  readonly #frames: TTransport[] = [];
  #busy = false;
  #draining = false;

  constructor(socket: Socket, handler: PushHandler, log: PushLog) {
    this.#socket = socket;
    this.#handler = handler;
    this.#log = log;
    this.#peer = hostPort(socket.remoteAddress ?? "?", socket.remotePort ?? 0);
    this.closed = new Promise((resolve) => socket.once("close", () => resolve()));
    const receive = TFramedTransport.receiver(
      (frame) => {
        this.#frames.push(frame);
        void this.#pump();
      },
      undefined,
      MAX_FRAME_BYTES,
    );
    socket.on("data", (chunk: Uint8Array) => {
      try {
        receive(chunk);
      } catch (err) {
        this.#drop(`bad frame: ${errMsg(err)}`);
      }
    });
    socket.on("error", (err) => {
      this.#log("info", `thrift push: connection from ${this.#peer}: ${err.message}`);
    });
  }

  /** Closes now when idle, else after the call in progress is answered. */
  shutdown(): Promise<void> {
    this.#draining = true;
    if (!this.#busy) this.#socket.destroy();
    return this.closed;
  }

  async #pump(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    this.#socket.pause();
    for (let frame = this.#frames.shift(); frame; frame = this.#frames.shift()) {
      if (!this.#socket.writable) break;
      const { reply, closeReason } = await this.#answer(frame);
      // Waiting for drain keeps a client that sends calls but never reads answers bounded.
      if (reply && this.#socket.writable && !this.#socket.write(reply)) {
        await drained(this.#socket);
      }
      if (closeReason) {
        this.#drop(closeReason);
        break;
      }
      if (this.#draining) break;
    }
    this.#busy = false;
    if (this.#draining) this.#close();
    else if (this.#socket.writable) this.#socket.resume();
  }

  /** Decodes one frame and calls the handler; never throws. */
  async #answer(frame: TTransport): Promise<Outcome> {
    const decoded = decodeCall(frame);
    if (!("call" in decoded)) return decoded;
    const { method, seqid, call } = decoded;
    try {
      const answer = await this.#handler(call.licence, call.sn, call.contents);
      return { reply: encodeReply(method, seqid, answer) };
    } catch (err) {
      this.#log("error", `thrift push: ${method} failed: ${errMsg(err)}`);
      const reply = new ThriftApplicationError("internal error", AppErrorType.INTERNAL_ERROR);
      return { reply: encodeException(method, seqid, reply) };
    }
  }

  /** Closes this connection only; answers already written still reach the client. */
  #drop(reason: string): void {
    if (!this.#socket.writable) return;
    this.#log("warn", `thrift push: closing connection from ${this.#peer}: ${reason}`);
    this.#close();
  }

  #close(): void {
    this.#socket.pause();
    // end() flushes what was written; destroy() then closes without waiting for the peer's FIN.
    if (this.#socket.writable) this.#socket.end(() => this.#socket.destroy());
  }
}

const utf8 = new TextDecoder();

/** Reads the call in one frame, or says why the connection must close. */
function decodeCall(
  frame: TTransport,
): { method: PushMethod; seqid: number; call: PushCall } | Outcome {
  try {
    const input = new TBinaryProtocol(frame);
    const header = input.readMessageBegin();
    const name = typeof header.fname === "string" ? header.fname : utf8.decode(header.fname);
    if (header.mtype !== MessageType.CALL) {
      return { closeReason: `bad frame: message type ${header.mtype} is not a call` };
    }
    if (!isPushMethod(name)) {
      const err = new ThriftApplicationError(
        `Unknown function ${name}`,
        AppErrorType.UNKNOWN_METHOD,
      );
      return {
        reply: encodeException(name, header.rseqid, err),
        closeReason: `unknown method ${JSON.stringify(name.slice(0, 64))}`,
      };
    }
    const call = readArgs(name, input);
    input.readMessageEnd();
    return { method: name, seqid: header.rseqid, call };
  } catch (err) {
    return { closeReason: `bad frame: ${errMsg(err)}` };
  }
}

function drained(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      socket.off("drain", done);
      socket.off("close", done);
      resolve();
    };
    socket.on("drain", done);
    socket.on("close", done);
  });
}

function encodeReply(method: PushMethod, seqid: number, answer: string): Uint8Array {
  return encodeMessage(method, MessageType.REPLY, seqid, (out) => writeResult(method, out, answer));
}

function encodeException(name: string, seqid: number, err: ThriftApplicationError): Uint8Array {
  return encodeMessage(
    name,
    MessageType.EXCEPTION,
    seqid,
    (out) => writeApplicationError(out, err),
  );
}

function encodeMessage(
  name: string,
  type: number,
  seqid: number,
  writeBody: (out: TProtocol) => void,
): Uint8Array {
  let framed: Uint8Array = new Uint8Array(0);
  const out = new TBinaryProtocol(new TFramedTransport(undefined, (bytes) => framed = bytes));
  out.writeMessageBegin(name, type, seqid);
  writeBody(out);
  out.writeMessageEnd();
  out.flush();
  return framed;
}
