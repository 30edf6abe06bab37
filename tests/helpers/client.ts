// A small emsg client for tests: speaks the stream framing over TCP or TLS (or
// any Deno.Conn), logs in, sends packets, and waits for what the server sends.

import { KILL, StreamDecoder } from "../../src/protocol/framing.ts";
import { type Envelope, type PacketReceived, QueueClient } from "./client_base.ts";

/** Something the server sent. */
export type Received = PacketReceived | { kind: "heartbeat" } | { kind: "kill" };

export type { Envelope };

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A test client over one connection. */
export class TestClient extends QueueClient<Received> {
  readonly done: Promise<void>;

  constructor(readonly conn: Deno.Conn) {
    super();
    this.done = this.#readLoop();
  }

  /** Connects over TCP to 127.0.0.1:port. */
  static async connect(port: number): Promise<TestClient> {
    return new TestClient(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  /** Connects over TLS to 127.0.0.1:port, trusting only `caCert` (PEM). */
  static async connectTls(port: number, caCert: string): Promise<TestClient> {
    return new TestClient(
      await Deno.connectTls({ hostname: "127.0.0.1", port, caCerts: [caCert] }),
    );
  }

  /** Connects and logs in; throws unless the answer is ok. Returns the answer. */
  static async login(port: number, jid: string, extra: Record<string, unknown> = {}) {
    return await TestClient.#loggedIn(await TestClient.connect(port), jid, extra);
  }

  /** Connects over TLS and logs in, like `login`. */
  static async loginTls(
    port: number,
    caCert: string,
    jid: string,
    extra: Record<string, unknown> = {},
  ) {
    return await TestClient.#loggedIn(await TestClient.connectTls(port, caCert), jid, extra);
  }

  static async #loggedIn(c: TestClient, jid: string, extra: Record<string, unknown>) {
    const answer = await c.login(jid, extra);
    if ((answer.json.entity as { result?: string })?.result !== "ok") {
      await c.close();
      throw new Error(`login of ${jid} failed: ${answer.text}`);
    }
    return { client: c, answer };
  }

  async #readLoop(): Promise<void> {
    const d = new StreamDecoder(1 << 24, {
      packet: (bytes) => {
        if (bytes.length === 1 && bytes[0] === KILL) return this.received({ kind: "kill" });
        const text = dec.decode(bytes);
        this.received({ kind: "packet", text, json: JSON.parse(text) });
      },
      heartbeat: () => this.received({ kind: "heartbeat" }),
      oversize: () => {},
    });
    const buf = new Uint8Array(65536);
    try {
      for (;;) {
        const n = await this.conn.read(buf);
        if (n === null) break;
        d.push(buf.subarray(0, n));
      }
    } catch {
      // Reset by the server: same as closed.
    }
    this.ended();
  }

  protected describe(r: Received): string {
    return r.kind === "packet" ? r.text : r.kind;
  }

  /** Sends a packet object (framed with 0x01). */
  async send(packet: unknown): Promise<void> {
    await this.sendRaw(enc.encode(JSON.stringify(packet) + "\x01"));
  }

  /** Sends raw bytes as they are. */
  async sendRaw(bytes: Uint8Array | string): Promise<void> {
    const data = typeof bytes === "string" ? enc.encode(bytes) : bytes;
    let off = 0;
    while (off < data.length) off += await this.conn.write(data.subarray(off));
  }

  async close(): Promise<void> {
    try {
      this.conn.close();
    } catch {
      // Already closed by the server.
    }
    await this.done;
  }
}
