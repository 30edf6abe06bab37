// The waiting API every emsg test client shares, whatever its transport:
// what the server sent goes into a queue that tests wait on, with timeouts.

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

/** A JSON packet the server sent. */
export type PacketReceived = {
  kind: "packet";
  text: string;
  json: Record<string, unknown> & { envelope: Envelope };
};

/** Anything the server sent, as a transport's client classifies it. */
export type AnyReceived = { kind: string };

/** A test client: subclasses read their transport and call `received()`/`ended()`. */
export abstract class QueueClient<R extends AnyReceived> implements AsyncDisposable {
  #queue: R[] = [];
  #waiters: (() => void)[] = [];
  #closed = false;
  jid = "";
  /** Resolves when the read loop has ended. */
  abstract readonly done: Promise<void>;

  /** Sends one packet object in the transport's framing. */
  abstract send(packet: unknown): Promise<void>;
  /** Closes the connection and waits for the read loop. */
  abstract close(): Promise<void>;
  /** How a received item reads in an error message. */
  protected abstract describe(r: R): string;

  get closed(): boolean {
    return this.#closed;
  }

  protected received(r: R): void {
    this.#queue.push(r);
    this.#wake();
  }

  protected ended(): void {
    this.#closed = true;
    this.#wake();
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /** Sends the login packet and returns the answer. */
  async login(jid: string, extra: Record<string, unknown> = {}): Promise<PacketReceived> {
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
  async next(ms = 5000): Promise<R> {
    const deadline = Date.now() + ms;
    while (this.#queue.length === 0) {
      if (this.#closed) throw new Error("connection closed while waiting");
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`nothing received within ${ms} ms`);
      await this.#wait(left);
    }
    return this.#queue.shift()!;
  }

  /** The next JSON packet (anything else is an error here). */
  async nextPacket(ms = 5000): Promise<PacketReceived> {
    const r = await this.next(ms);
    if (r.kind !== "packet") throw new Error(`expected a packet, got ${this.describe(r)}`);
    return r as unknown as PacketReceived;
  }

  /** Asserts that nothing arrives within `ms`. */
  async nothing(ms = 300): Promise<void> {
    try {
      const r = await this.next(ms);
      throw new Error(`expected nothing, got ${this.describe(r)}`);
    } catch (err) {
      if (!(err as Error).message.startsWith("nothing received")) throw err;
    }
  }

  /** Waits until the server closes the connection; returns what came before. */
  async closedByServer(ms = 5000): Promise<R[]> {
    const deadline = Date.now() + ms;
    while (!this.#closed) {
      if (Date.now() > deadline) throw new Error(`connection still open after ${ms} ms`);
      await this.#wait(50);
    }
    await this.done;
    return this.#queue.splice(0);
  }

  #wait(ms: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    return new Promise<void>((resolve) => {
      this.#waiters.push(resolve);
      timer = setTimeout(resolve, ms);
    }).finally(() => clearTimeout(timer));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
