// The emsg_inf_push service of emsg_inf_push.thrift, written by hand in the shape that
// `thrift --gen js:node` gives: argument and result structs, and the client class that the
// library's connection drives (tests and backends written in TypeScript use it).

import {
  AppErrorType,
  MessageType,
  readApplicationError,
  ThriftApplicationError,
  type TProtocol,
  type TProtocolClass,
  type TTransport,
  Type,
} from "./runtime.ts";

/** The calls of the service. */
export type PushMethod = "process" | "process_batch";

/** The arguments of one call; `process` carries exactly one content. */
export interface PushCall {
  licence: string;
  sn: string;
  contents: string[];
}

/** True when `name` is a call of the service. */
export function isPushMethod(name: string): name is PushMethod {
  return name === "process" || name === "process_batch";
}

/**
 * Reads the arguments struct of `method`. Like generated code, it skips unknown fields and
 * fields of an unexpected type, and leaves missing strings empty (the Go sara's zero values).
 * @throws {TypeError} when `contents` is not a list of strings.
 */
export function readArgs(method: PushMethod, input: TProtocol): PushCall {
  const call: PushCall = { licence: "", sn: "", contents: method === "process" ? [""] : [] };
  input.readStructBegin();
  for (;;) {
    const { ftype, fid } = input.readFieldBegin();
    if (ftype === Type.STOP) break;
    if (fid === 1 && ftype === Type.STRING) call.licence = input.readString();
    else if (fid === 2 && ftype === Type.STRING) call.sn = input.readString();
    else if (fid === 3 && method === "process" && ftype === Type.STRING) {
      call.contents = [input.readString()];
    } else if (fid === 3 && method === "process_batch" && ftype === Type.LIST) {
      call.contents = readStringList(input);
    } else input.skip(ftype);
    input.readFieldEnd();
  }
  input.readStructEnd();
  return call;
}

function readStringList(input: TProtocol): string[] {
  const { etype, size } = input.readListBegin();
  if (etype !== Type.STRING || size < 0) {
    throw new TypeError(
      `Cannot read contents: expected list<string>, got element type ${etype} and size ${size}`,
    );
  }
  // Each element holds at least its 4-byte length, so the frame limit bounds this loop.
  const list: string[] = [];
  for (let i = 0; i < size; i++) list.push(input.readString());
  input.readListEnd();
  return list;
}

/** Writes the arguments struct of `method`; `process` sends `contents[0]`. */
export function writeArgs(method: PushMethod, output: TProtocol, call: PushCall): void {
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

/** Writes the result struct of `method`: field 0 `success`, the answer string. */
export function writeResult(method: PushMethod, output: TProtocol, answer: string): void {
  output.writeStructBegin(`emsg_inf_push_${method}_result`);
  writeStringField(output, "success", 0, answer);
  output.writeFieldStop();
  output.writeStructEnd();
}

/** Reads a result struct; undefined when the server sent no `success` field. */
export function readResult(input: TProtocol): string | undefined {
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

function writeStringField(output: TProtocol, name: string, id: number, value: string): void {
  output.writeFieldBegin(name, Type.STRING, id);
  output.writeString(value);
  output.writeFieldEnd();
}

type Pending = (err: Error | null, answer?: string) => void;

/**
 * Service client for the library's `createClient(EmsgInfPushClient, connection)`. The field
 * `_reqs` and the `recv_*` methods are the names the library's connection calls.
 */
export class EmsgInfPushClient {
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

  #call(method: PushMethod, call: PushCall): Promise<string> {
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
