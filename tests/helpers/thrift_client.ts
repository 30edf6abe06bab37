// Test client of the Thrift push listener: one call per connection through the Apache Thrift
// library's own client stack (framed transport, binary protocol), closed before returning.
// The service's client half lives here, written like `thrift --gen js:node` output: the server
// never calls out over Thrift.

import thrift from "thrift";
import {
  type PushCall,
  type PushMethod,
  writeStringField,
} from "../../src/rpc/thrift/emsg_inf_push.ts";

/** What a caller sends: the server's view of a call, every content text. */
type SentCall = PushCall & { contents: string[] };
import {
  AppErrorType,
  MessageType,
  TBinaryProtocol,
  TFramedTransport,
  ThriftApplicationError,
  type TProtocol,
  type TProtocolClass,
  type TTransport,
  type TTransportClass,
  Type,
} from "../../src/rpc/thrift/runtime.ts";

/** Client-side connection of the library (reconnects only when asked to; tests never ask). */
interface ThriftConnection {
  on(event: "connect" | "close", listener: () => void): void;
  on(event: "error", listener: (err: Error) => void): void;
  end(): void;
}

interface ThriftClientLib {
  createConnection(
    host: string,
    port: number,
    options: { transport: TTransportClass; protocol: TProtocolClass },
  ): ThriftConnection;
  createClient<C>(
    client: new (output: TTransport, protocol: TProtocolClass) => C,
    connection: ThriftConnection,
  ): C;
}

// The package ships no type declarations: this cast trusts its client half's shape.
const lib = thrift as ThriftClientLib;
const createConnection = lib.createConnection.bind(lib);
const createClient = lib.createClient.bind(lib);

/** Calls `process` on 127.0.0.1:`port` and resolves to the server's answer. */
export function thriftProcess(
  port: number,
  licence: string,
  sn: string,
  content: string,
): Promise<string> {
  return callOnce(port, (client) => client.process(licence, sn, content));
}

/** Calls `process_batch` on 127.0.0.1:`port` and resolves to the server's answer. */
export function thriftProcessBatch(
  port: number,
  licence: string,
  sn: string,
  contents: string[],
): Promise<string> {
  return callOnce(port, (client) => client.process_batch(licence, sn, contents));
}

/**
 * Opens a connection, makes one call and closes the connection, waiting for the close so
 * that no socket outlives the call. Rejects when the server closes without answering.
 */
async function callOnce(
  port: number,
  call: (client: EmsgInfPushClient) => Promise<string>,
): Promise<string> {
  const connection = createConnection("127.0.0.1", port, {
    transport: TFramedTransport,
    protocol: TBinaryProtocol,
  });
  const closed = new Promise<void>((resolve) => connection.on("close", resolve));
  try {
    return await new Promise<string>((resolve, reject) => {
      connection.on("error", reject);
      closed.then(() => reject(new Error("thrift push closed the connection without answering")));
      call(createClient(EmsgInfPushClient, connection)).then(resolve, reject);
    });
  } finally {
    connection.end();
    await closed;
  }
}

/** Writes the arguments struct of `method`; `process` sends `contents[0]`. */
function writeArgs(method: PushMethod, output: TProtocol, call: SentCall): void {
  output.writeStructBegin(`emsg_inf_push_${method}_args`);
  writeStringField(output, "licence", 1, call.licence);
  writeStringField(output, "sn", 2, call.sn);
  if (method === "process") writeStringField(output, "content", 3, call.contents[0] ?? "");
  else {
    output.writeFieldBegin("contents", Type.LIST, 3);
    output.writeListBegin(Type.STRING, call.contents.length);
    for (const content of call.contents) output.writeString(content);
    output.writeListEnd();
    output.writeFieldEnd();
  }
  output.writeFieldStop();
  output.writeStructEnd();
}

/** Reads a result struct; undefined when the server sent no `success` field. */
function readResult(input: TProtocol): string | undefined {
  let answer: string | undefined;
  input.readStructBegin();
  for (;;) {
    const { ftype, fid } = input.readFieldBegin();
    if (ftype === Type.STOP) break;
    if (fid === 0 && ftype === Type.STRING) answer = input.readString();
    else input.skip(ftype);
    input.readFieldEnd();
  }
  input.readStructEnd();
  return answer;
}

type Pending = (err: Error | null, answer?: string) => void;

/**
 * Service client for the library's `createClient(EmsgInfPushClient, connection)`. The field
 * `_reqs` and the `recv_*` methods are the names the library's connection calls.
 */
class EmsgInfPushClient {
  /** Pending calls by sequence id. */
  readonly _reqs: Record<number, Pending> = {};
  #seqid = 0;

  constructor(readonly output: TTransport, readonly pClass: TProtocolClass) {}

  /** Pushes one packet JSON string; resolves to the server's answer. */
  process(licence: string, sn: string, content: string): Promise<string> {
    return this.#call("process", { licence, sn, contents: [content] });
  }

  /** Pushes several packet JSON strings in one call; resolves to the server's answer. */
  process_batch(licence: string, sn: string, contents: string[]): Promise<string> {
    return this.#call("process_batch", { licence, sn, contents });
  }

  /** Called by the library's connection with the answer to `process`. */
  recv_process(input: TProtocol, mtype: number, rseqid: number): void {
    this.#receive(input, mtype, rseqid);
  }

  /** Called by the library's connection with the answer to `process_batch`. */
  recv_process_batch(input: TProtocol, mtype: number, rseqid: number): void {
    this.#receive(input, mtype, rseqid);
  }

  #call(method: PushMethod, call: SentCall): Promise<string> {
    const seqid = ++this.#seqid;
    return new Promise((resolve, reject) => {
      this._reqs[seqid] = (err, answer) => err ? reject(err) : resolve(answer ?? "");
      try {
        const output = new this.pClass(this.output);
        output.writeMessageBegin(method, MessageType.CALL, seqid);
        writeArgs(method, output, call);
        output.writeMessageEnd();
        output.flush();
      } catch (err) {
        delete this._reqs[seqid];
        reject(err);
      }
    });
  }

  #receive(input: TProtocol, mtype: number, rseqid: number): void {
    const pending = this._reqs[rseqid];
    delete this._reqs[rseqid];
    if (mtype === MessageType.EXCEPTION) {
      const err = readApplicationError(input);
      input.readMessageEnd();
      pending?.(err);
      return;
    }
    const answer = readResult(input);
    input.readMessageEnd();
    if (answer === undefined) {
      pending?.(new ThriftApplicationError("no result in the reply", AppErrorType.MISSING_RESULT));
    } else pending?.(null, answer);
  }
}
/** Reads the TApplicationException struct, skipping fields it does not know. */
function readApplicationError(input: TProtocol): ThriftApplicationError {
  let message = "";
  let type = 0;
  input.readStructBegin();
  for (;;) {
    const { ftype, fid } = input.readFieldBegin();
    if (ftype === Type.STOP) break;
    if (fid === 1 && ftype === Type.STRING) message = input.readString();
    else if (fid === 2 && ftype === Type.I32) type = input.readI32();
    else input.skip(ftype);
    input.readFieldEnd();
  }
  input.readStructEnd();
  return new ThriftApplicationError(message, type);
}
