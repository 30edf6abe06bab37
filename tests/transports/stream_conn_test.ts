// When a stream connection writes (src/transports/stream_conn.ts): what one
// read queues leaves when that read is handled, not after every other read of
// the event-loop turn; packets for one connection keep their order.

import assert from "node:assert/strict";
import { type ConnContext, StreamConn } from "../../src/transports/stream_conn.ts";
import { STREAM_FRAMING } from "../../src/protocol/framing.ts";
import type { ConnHandler } from "../../src/session/conn.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A socket whose reads complete when the test says, and whose writes log themselves. */
class FakeSocket {
  readonly remoteAddr = { transport: "tcp", hostname: "127.0.0.1", port: 1 };
  #read: { buf: Uint8Array; resolve(n: number | null): void } | null = null;

  constructor(readonly name: string, readonly events: string[]) {}

  read(buf: Uint8Array): Promise<number | null> {
    return new Promise((resolve) => (this.#read = { buf, resolve }));
  }

  /** Completes the pending read with `text`. */
  arrive(text: string): void {
    const r = this.#read!;
    this.#read = null;
    const bytes = enc.encode(text);
    r.buf.set(bytes);
    r.resolve(bytes.length);
  }

  write(data: Uint8Array): Promise<number> {
    this.events.push(`write ${this.name}: ${dec.decode(data).replaceAll("\x01", "|")}`);
    return Promise.resolve(data.length);
  }

  close(): void {}
}

/** Three connections: packets read on a and b are sent on to c; reads are logged. */
function threeConns(events: string[]) {
  const sockets = { a: new FakeSocket("a", events), b: new FakeSocket("b", events) };
  const c = new FakeSocket("c", events);
  const conns = new Map<FakeSocket, StreamConn>();
  const ctx: ConnContext = {
    limits: { maxPacket: 65536, outQueueBytes: 1 << 20, handshakeMs: 1000 },
    warn: () => {},
    pending: new Set(),
    admit: (conn): ConnHandler => ({
      packet: (text) => {
        events.push(`read ${(conn.socket as unknown as FakeSocket).name}: ${text}`);
        if (conn.socket !== (c as unknown)) conns.get(c)!.send(text);
      },
      heartbeat: () => {},
      oversize: () => {},
      closed: () => {},
    }),
  };
  for (const s of [sockets.a, sockets.b, c]) {
    const conn = new StreamConn("tcp", s as unknown as Deno.Conn, STREAM_FRAMING, ctx);
    conns.set(s, conn);
    conn.serve();
  }
  return { ...sockets, close: () => conns.forEach((conn) => conn.close()) };
}

const turn = () => new Promise((r) => setTimeout(r, 0));

Deno.test("a packet one read sends on is written before the next read of the same turn is handled", async () => {
  const events: string[] = [];
  const { a, b, close } = threeConns(events);
  // Both reads complete in one turn, as when the event loop finds both sockets ready.
  a.arrive("x\x01");
  b.arrive("y\x01");
  await turn();
  assert.deepEqual(events.slice(0, 3), ["read a: x", "write c: x|", "read b: y"]);
  close();
});

Deno.test("packets for one connection from several reads of one turn keep their order: the first read's leave at once, the later ones together behind that write", async () => {
  const events: string[] = [];
  const { a, b, close } = threeConns(events);
  a.arrive("x1\x01x2\x01");
  b.arrive("y1\x01");
  await turn();
  const writes = events.filter((e) => e.startsWith("write c"));
  assert.deepEqual(writes, ["write c: x1|x2|", "write c: y1|"]);
  close();
});
