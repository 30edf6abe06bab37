// Typed view of the parts of the Apache Thrift library (npm `thrift`) that sara uses, plus the
// TApplicationException struct, whose library write() drops the exception type.

// The only importer in src/ (the tests' Thrift client has its own typed view of the client half).
import thrift from "thrift";

/** Thrift wire type ids (TType). */
export const Type = { STOP: 0, I32: 8, STRING: 11, STRUCT: 12, LIST: 15 } as const;

/** Thrift message types (TMessageType). */
export const MessageType = { CALL: 1, REPLY: 2, EXCEPTION: 3, ONEWAY: 4 } as const;

/** TApplicationException types that sara sends or reports. */
export const AppErrorType = { UNKNOWN_METHOD: 1, MISSING_RESULT: 5, INTERNAL_ERROR: 6 } as const;

/** The protocol calls sara's service code makes (TBinaryProtocol implements them). */
export interface TProtocol {
  /** `fname` is raw bytes when the peer used the old, non-strict message header. */
  readMessageBegin(): { fname: string | Uint8Array; mtype: number; rseqid: number };
  readMessageEnd(): void;
  readStructBegin(): unknown;
  readStructEnd(): void;
  readFieldBegin(): { ftype: number; fid: number };
  readFieldEnd(): void;
  readListBegin(): { etype: number; size: number };
  readListEnd(): void;
  readString(): string;
  readBinary(): Uint8Array;
  readI32(): number;
  skip(type: number): void;
  writeMessageBegin(name: string, type: number, seqid: number): void;
  writeMessageEnd(): void;
  writeStructBegin(name: string): void;
  writeStructEnd(): void;
  writeFieldBegin(name: string, type: number, id: number): void;
  writeFieldEnd(): void;
  writeFieldStop(): void;
  writeListBegin(etype: number, size: number): void;
  writeListEnd(): void;
  writeString(value: string): void;
  writeI32(value: number): void;
  flush(): void;
}

/** A transport instance; only the library itself calls its methods. */
export type TTransport = object;

/** Transport class: its receiver turns stream chunks into one transport per frame. */
export interface TTransportClass {
  new (buffer?: Uint8Array, onFlush?: (framed: Uint8Array) => void): TTransport;
  /**
   * Returns a chunk consumer that calls `onFrame` for every complete frame and throws when a
   * frame header announces more than `maxLength` bytes (or a negative size).
   */
  receiver(
    onFrame: (frame: TTransport) => void,
    seqid: undefined,
    maxLength: number,
  ): (chunk: Uint8Array) => void;
}

/** Protocol class over a transport. */
export interface TProtocolClass {
  new (transport: TTransport): TProtocol;
}

interface ThriftLib {
  TFramedTransport: TTransportClass;
  TBinaryProtocol: TProtocolClass;
}

// The package ships no type declarations: this cast is the one place that trusts its shape.
const lib = thrift as ThriftLib;

/** Framed transport: every message is preceded by its length as a big-endian i32. */
export const TFramedTransport: TTransportClass = lib.TFramedTransport;
/** Binary protocol (strict write, lenient read, like every Thrift library's default). */
export const TBinaryProtocol: TProtocolClass = lib.TBinaryProtocol;
/** A TApplicationException as it travels in an EXCEPTION message. */
export class ThriftApplicationError extends Error {
  constructor(message: string, readonly type: number) {
    super(message);
    this.name = "ThriftApplicationError";
  }
}

/** Writes the TApplicationException struct: 1: string message, 2: i32 type. */
export function writeApplicationError(output: TProtocol, err: ThriftApplicationError): void {
  output.writeStructBegin("TApplicationException");
  output.writeFieldBegin("message", Type.STRING, 1);
  output.writeString(err.message);
  output.writeFieldEnd();
  output.writeFieldBegin("type", Type.I32, 2);
  output.writeI32(err.type);
  output.writeFieldEnd();
  output.writeFieldStop();
  output.writeStructEnd();
}
