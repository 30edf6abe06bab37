// The emsg_inf_push service of emsg_inf_push.thrift, written by hand in the shape that
// `thrift --gen js:node` gives: the server side's argument and result structs (the client
// half, which only tests use, is in the tests' helpers).

import { decodeUtf8 } from "../../bytes.ts";
import { type TProtocol, Type } from "./runtime.ts";

/** The calls of the service. */
export type PushMethod = "process" | "process_batch";

/**
 * The arguments of one call; `process` carries exactly one content. A
 * content that is not UTF-8 is null: refused, never replaced (SECURITY.md,
 * input rules).
 */
export interface PushCall {
  licence: string;
  sn: string;
  contents: (string | null)[];
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
      call.contents = [readText(input)];
    } else if (fid === 3 && method === "process_batch" && ftype === Type.LIST) {
      call.contents = readStringList(input);
    } else input.skip(ftype);
    input.readFieldEnd();
  }
  input.readStructEnd();
  return call;
}

function readStringList(input: TProtocol): (string | null)[] {
  const { etype, size } = input.readListBegin();
  if (etype !== Type.STRING || size < 0) {
    throw new TypeError(
      `Cannot read contents: expected list<string>, got element type ${etype} and size ${size}`,
    );
  }
  // Each element holds at least its 4-byte length, so the frame limit bounds this loop.
  const list: (string | null)[] = [];
  for (let i = 0; i < size; i++) list.push(readText(input));
  input.readListEnd();
  return list;
}

/** A string field as UTF-8 text, or null when its bytes are not UTF-8 (readString would replace them). */
function readText(input: TProtocol): string | null {
  return decodeUtf8(input.readBinary());
}

/** Writes the result struct of `method`: field 0 `success`, the answer string. */
export function writeResult(method: PushMethod, output: TProtocol, answer: string): void {
  output.writeStructBegin(`emsg_inf_push_${method}_result`);
  writeStringField(output, "success", 0, answer);
  output.writeFieldStop();
  output.writeStructEnd();
}

/** Writes field `id` as a string (the tests' client writes its arguments with it too). */
export function writeStringField(output: TProtocol, name: string, id: number, value: string): void {
  output.writeFieldBegin(name, Type.STRING, id);
  output.writeString(value);
  output.writeFieldEnd();
}
