// A small emsg client for tests: speaks the stream framing over TCP or TLS (or
// any Deno.Conn), logs in, sends packets, and waits for what the server sends.

import { KILL, StreamDecoder } from "../../src/protocol/framing.ts";

/** Something the server sent. */
export type Received =
  | { kind: "packet"; text: string; json: Record<string, unknown> & { envelope: Envelope } }
  | { kind: "heartbeat" }
  | { kind: "kill" };

/** The envelope fields tests look at. */
export interface Envelope {
  id: string;
  type: number;
  from?: string;
  to?: string;
  ack?: number;
  ct?: string;
  gid?: string;
  [k: string]: unknown;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A test client over one connection. */
export class TestClient implements AsyncDisposable {
  #queue: Received[] = [];
  #waiters: (() => void)[] = [];
  #closed = false;
  readonly done: Promise<void>;
  jid = "";

  constructor(readonly conn: Deno.Conn) {
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

  get closed(): boolean {
    return this.#closed;
  }

  async #readLoop(): Promise<void> {
    const d = new StreamDecoder(1 << 24, {
      packet: (bytes) => {
        if (bytes.length === 1 && bytes[0] === KILL) return this.#push({ kind: "kill" });
        const text = dec.decode(bytes);
        this.#push({ kind: "packet", text, json: JSON.parse(text) });
      },
      heartbeat: () => this.#push({ kind: "heartbeat" }),
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
    this.#closed = true;
    this.#wake();
  }

  #push(r: Received): void {
    this.#queue.push(r);
    this.#wake();
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
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

  /** Sends the login packet and returns the answer. */
  async login(jid: string, extra: Record<string, unknown> = {}) {
    this.jid = jid;
    const id = `login-${crypto.randomUUID()}`;
    await this.send({ envelope: { id, type: 0, jid, pwd: "pwd", ...extra }, vsn: "0.0.1" });
    return await this.nextPacket();
  }

  /** Sends a chat message (type 1 by default) and returns its id. */
  async chat(
    to: string,
    content: string,
    opts: { ack?: number; type?: number; id?: string; from?: string } = {},
  ): Promise<string> {
    const id = opts.id ?? crypto.randomUUID();
    const envelope: Record<string, unknown> = {
      id,
      type: opts.type ?? 1,
      from: opts.from ?? this.jid,
      to,
    };
    if (opts.ack !== undefined) envelope.ack = opts.ack;
    await this.send({ envelope, payload: { content }, vsn: "0.0.1" });
    return id;
  }

  /** Acks `id` to the server (type 3, to server_ack). */
  async ack(id: string): Promise<void> {
    await this.send({ envelope: { id, type: 3, from: this.jid, to: "server_ack" } });
  }

  /** The next thing received; rejects after `ms` or if the connection closes first. */
  async next(ms = 5000): Promise<Received> {
    const deadline = Date.now() + ms;
    while (this.#queue.length === 0) {
      if (this.#closed) throw new Error("connection closed while waiting");
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`nothing received within ${ms} ms`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
    return this.#queue.shift()!;
  }

  /** The next JSON packet (heartbeats and kills are an error here). */
  async nextPacket(ms = 5000) {
    const r = await this.next(ms);
    if (r.kind !== "packet") throw new Error(`expected a packet, got ${r.kind}`);
    return r;
  }

  /** Asserts that nothing arrives within `ms`. */
  async nothing(ms = 300): Promise<void> {
    try {
      const r = await this.next(ms);
      throw new Error(`expected nothing, got ${r.kind === "packet" ? r.text : r.kind}`);
    } catch (err) {
      if (!(err as Error).message.startsWith("nothing received")) throw err;
    }
  }

  /** Waits until the server closes the connection; returns what came before. */
  async closedByServer(ms = 5000): Promise<Received[]> {
    const deadline = Date.now() + ms;
    while (!this.#closed) {
      if (Date.now() > deadline) throw new Error(`connection still open after ${ms} ms`);
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
    await this.done;
    return this.#queue.splice(0);
  }

  async close(): Promise<void> {
    try {
      this.conn.close();
    } catch {
      // Already closed by the server.
    }
    await this.done;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
