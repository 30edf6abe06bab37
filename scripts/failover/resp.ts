// A minimal Redis client for the failover script's own probes and setup
// commands: one TCP connection, one command at a time, a timeout per command.
// It speaks to one Redis server directly (no cluster redirection): the probe
// wants to see exactly what that server answers (MOVED, CLUSTERDOWN, ...).

/** An error reply of Redis (`-ERR ...`, `-MOVED ...`, `-CLUSTERDOWN ...`). */
export class RedisReplyError extends Error {}

/** A reply: simple or bulk string, integer, nil, or an array of those. */
export type Reply = string | number | null | Reply[];

const enc = new TextEncoder();
const dec = new TextDecoder();

/** One connection to 127.0.0.1:`port`, opened on first use and after any failure. */
export class RespConn {
  #conn: Deno.Conn | null = null;
  #buf = new Uint8Array(0);

  constructor(readonly port: number, readonly timeoutMs = 500) {}

  /** Sends one command and resolves with its reply; error replies reject with RedisReplyError. */
  async command(...args: string[]): Promise<Reply> {
    const timer = setTimeout(() => this.close(), this.timeoutMs);
    try {
      this.#conn ??= await Deno.connect({ hostname: "127.0.0.1", port: this.port });
      let text = `*${args.length}\r\n`;
      for (const a of args) text += `$${enc.encode(a).length}\r\n${a}\r\n`;
      const bytes = enc.encode(text);
      for (let off = 0; off < bytes.length;) off += await this.#conn.write(bytes.subarray(off));
      return await this.#reply();
    } catch (err) {
      // A half-read reply would corrupt the next one: start over on a new connection.
      if (!(err instanceof RedisReplyError)) this.close();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    try {
      this.#conn?.close();
    } catch {
      // Closed already.
    }
    this.#conn = null;
    this.#buf = new Uint8Array(0);
  }

  async #reply(): Promise<Reply> {
    for (;;) {
      const parsed = parse(this.#buf, 0);
      if (parsed !== undefined) {
        this.#buf = this.#buf.slice(parsed.end);
        if (parsed.value instanceof RedisReplyError) throw parsed.value;
        return parsed.value;
      }
      const chunk = new Uint8Array(64 * 1024);
      const n = await this.#conn!.read(chunk);
      if (n === null) throw new Error(`redis 127.0.0.1:${this.port} closed the connection`);
      const next = new Uint8Array(this.#buf.length + n);
      next.set(this.#buf);
      next.set(chunk.subarray(0, n), this.#buf.length);
      this.#buf = next;
    }
  }
}

/** Parses one reply at `at`; undefined while incomplete. */
function parse(
  buf: Uint8Array,
  at: number,
): { value: Reply | RedisReplyError; end: number } | undefined {
  let eol = -1;
  for (let i = at; i + 1 < buf.length; i++) {
    if (buf[i] === 13 && buf[i + 1] === 10) {
      eol = i;
      break;
    }
  }
  if (eol < 0) return undefined;
  const line = dec.decode(buf.subarray(at + 1, eol));
  const end = eol + 2;
  switch (buf[at]) {
    case 43: // +
      return { value: line, end };
    case 45: // -
      return { value: new RedisReplyError(line), end };
    case 58: // :
      return { value: Number(line), end };
    case 36: { // $
      const len = Number(line);
      if (len < 0) return { value: null, end };
      if (buf.length < end + len + 2) return undefined;
      return { value: dec.decode(buf.subarray(end, end + len)), end: end + len + 2 };
    }
    case 42: { // *
      const count = Number(line);
      if (count < 0) return { value: null, end };
      const items: Reply[] = [];
      let pos = end;
      for (let i = 0; i < count; i++) {
        const item = parse(buf, pos);
        if (item === undefined) return undefined;
        if (item.value instanceof RedisReplyError) return item;
        items.push(item.value);
        pos = item.end;
      }
      return { value: items, end: pos };
    }
    default:
      throw new Error(`unexpected reply byte ${buf[at]} from redis`);
  }
}
