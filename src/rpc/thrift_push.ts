// Thrift push listener on `nodeaddr` (docs/protocol.md §6): serves emsg_inf_push over the
// framed transport and binary protocol, and hands every call to an injected handler.

import { acceptEach, type AcceptGuard } from "../transports/accept_guard.ts";
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
  /** Backs off accepts that fail (EMFILE) and tells /readyz and /metrics. */
  guard: AcceptGuard;
  /** A connection whose client sends or takes nothing for this long is closed (`idle_timeout`). */
  idleMs: number;
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
 * Starts the Thrift push listener. Its accept loop is acceptEach, like every
 * listener's: node:net's server stops accepting for good, without an error,
 * once the process runs out of file descriptors.
 * @throws {Error} naming "thrift push", the host and the port when it cannot listen.
 */
export function startThriftPush(opts: ThriftPushOptions): ThriftPush {
  const log: PushLog = opts.log ?? (() => {});
  const where = hostPort(opts.hostname, opts.port);
  let listener: Deno.TcpListener;
  try {
    listener = Deno.listen({ hostname: opts.hostname, port: opts.port, transport: "tcp" });
  } catch (err) {
    throw new Error(`thrift push: cannot listen on ${where}: ${errMsg(err)}`, { cause: err });
  }
  const connections = new Set<PushConnection>();
  const accepting = acceptEach(listener, "thrift push", opts.guard, (socket) => {
    const conn = new PushConnection(socket, opts.handler, opts.idleMs, log);
    connections.add(conn);
    conn.closed.then(() => connections.delete(conn));
  });
  const port = listener.addr.port;
  log("info", `thrift push: listening on ${hostPort(opts.hostname, port)}`);

  let closing: Promise<void> | undefined;
  return {
    port,
    close() {
      closing ??= (async () => {
        listener.close();
        await accepting;
        await Promise.all([...connections].map((conn) => conn.shutdown()));
      })();
      return closing;
    },
  };
}

function hostPort(hostname: string, port: number): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}

/** What answering one frame produced: bytes to send, and whether to close afterwards. */
interface Outcome {
  reply?: Uint8Array;
  closeReason?: string;
}

/** Bytes read at once; a frame is at most MAX_FRAME_BYTES, gathered across reads. */
const READ_BYTES = 16 * 1024;

/**
 * One client connection. Frames are answered one at a time, in order; nothing is read while a
 * call is in progress, so a client that floods calls is held back by TCP, not buffered here.
 */
class PushConnection {
  /** Resolves once the connection is closed. */
  readonly closed: Promise<void>;
  readonly #conn: Deno.Conn;
  readonly #handler: PushHandler;
  readonly #log: PushLog;
  readonly #peer: string;
  readonly #idleMs: number;
  #busy = false;
  #draining = false;
  #idle = false;

  constructor(conn: Deno.Conn, handler: PushHandler, idleMs: number, log: PushLog) {
    this.#conn = conn;
    this.#handler = handler;
    this.#idleMs = idleMs;
    this.#log = log;
    const remote = conn.remoteAddr as Deno.NetAddr;
    this.#peer = hostPort(remote.hostname, remote.port);
    this.closed = this.#serve();
  }

  /** Closes now when idle, else after the call in progress is answered. */
  shutdown(): Promise<void> {
    this.#draining = true;
    if (!this.#busy) this.#close();
    return this.closed;
  }

  async #serve(): Promise<void> {
    const frames: TTransport[] = [];
    const receive = TFramedTransport.receiver((f) => frames.push(f), undefined, MAX_FRAME_BYTES);
    const buf = new Uint8Array(READ_BYTES);
    try {
      for (;;) {
        const n = await this.#client(this.#conn.read(buf));
        if (n === null) return;
        try {
          // A copy: the receiver keeps the bytes of a frame not complete yet.
          receive(buf.slice(0, n));
        } catch (err) {
          return this.#drop(`bad frame: ${errMsg(err)}`);
        }
        this.#busy = true;
        for (let frame = frames.shift(); frame; frame = frames.shift()) {
          const { reply, closeReason } = await this.#answer(frame);
          // Awaiting the whole write keeps a client that never reads its answers bounded.
          if (reply) await this.#client(writeAll(this.#conn, reply));
          if (closeReason) return this.#drop(closeReason);
          if (this.#draining) return;
        }
        this.#busy = false;
      }
    } catch (err) {
      if (this.#idle) this.#log("info", `thrift push: closed idle connection from ${this.#peer}`);
      else if (!this.#draining) {
        this.#log("info", `thrift push: connection from ${this.#peer}: ${errMsg(err)}`);
      }
    } finally {
      this.#close();
    }
  }

  /**
   * Waits for the client (a read, or a write it must take); closes the
   * connection if that lasts `idleMs`. The handler's own time is not counted.
   */
  async #client<T>(op: Promise<T>): Promise<T> {
    const timer = setTimeout(() => {
      this.#idle = true;
      this.#close();
    }, this.#idleMs);
    try {
      return await op;
    } finally {
      clearTimeout(timer);
    }
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

  /** Why this connection (only) closes; answers already written still reach the client. */
  #drop(reason: string): void {
    this.#log("warn", `thrift push: closing connection from ${this.#peer}: ${reason}`);
  }

  #close(): void {
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
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
