// One emsg client connection of the load tool over TCP (docs/protocol.md §1-§4): login,
// packets out batched into one write per event-loop turn, packets in handed
// on as text, heartbeats and kill counted. node:net, because Deno.connect
// cannot choose a source address and makeconn needs several.

import net from "node:net";
import { END, HEARTBEAT, KILL, StreamDecoder } from "../protocol/framing.ts";
import { Deadlines } from "./deadlines.ts";
import { LocalPorts } from "./local_ports.ts";
import { loginPacket } from "./packets.ts";
import { sourcePortRange } from "./system.ts";

/** Where and how to connect. */
export interface ConnectOptions {
  host: string;
  port: number;
  /** Source address to bind (127.x.y.z), or the kernel's choice. */
  localAddress?: string;
  /** Where source ports come from with `localAddress` (default: the tool's, see system.ts). */
  ports?: LocalPorts;
  /** Give up connecting after this long (default 10 s). */
  timeoutMs?: number;
  /** Largest packet accepted (default 64 MiB: login answers carry whole backlogs). */
  maxPacket?: number;
}

/** The server's answer to a login (docs/protocol.md §3). */
export interface LoginAnswer {
  ok: boolean;
  /** `entity.reason` of a failure, or "" */
  reason: string;
  /** `delay.total`, 0 when absent. */
  total: number;
  /** `delay.packets`, in the order received. */
  packets: unknown[];
  /** Milliseconds from writing the login packet to reading the whole answer. */
  ms: number;
  /** Length of the answer's JSON text. */
  chars: number;
}

const END_TEXT = String.fromCharCode(END);
const HEARTBEAT_TEXT = String.fromCharCode(HEARTBEAT, END);
const decoder = new TextDecoder();
const localPorts = new LocalPorts(...sourcePortRange());
const deadlines = new Deadlines();
// Ports tried per connection before its failure counts (each can be taken by
// another socket, or its 4-tuple still be in TIME_WAIT).
const PORT_ATTEMPTS = 20;

/** A connection speaking the emsg stream protocol. */
export class BenchConn {
  /** Bare jid once `login` was called. */
  jid = "";
  /** Called with the text of every packet after the login answer. */
  onPacket: (text: string) => void = () => {};
  /** Called once when the connection is gone. */
  onClose: () => void = () => {};
  /** Heartbeat replies received. */
  heartbeats = 0;
  /** True once the server sent Kill (a newer login replaced this one). */
  killed = false;
  closed = false;

  readonly #socket: net.Socket;
  readonly #decoder: StreamDecoder;
  #out = "";
  #flushQueued = false;
  #noDelay = false;
  #pendingLogin: ((text: string | null) => void) | null = null;

  private constructor(socket: net.Socket, maxPacket: number) {
    this.#socket = socket;
    this.#decoder = new StreamDecoder(maxPacket, {
      packet: (bytes) => this.#packet(bytes),
      heartbeat: () => this.heartbeats++,
      // A packet beyond maxPacket: nothing sensible can follow it.
      oversize: () => this.destroy(),
    });
    socket.on("data", (chunk: Uint8Array) => this.#decoder.push(chunk));
    socket.on("close", () => this.#closed());
    // 'close' follows every error; the error itself needs no handling here.
    socket.on("error", () => {});
  }

  /**
   * Opens a TCP connection (not yet logged in). With a source address, the
   * source port is chosen here (see LocalPorts), and a port found taken is
   * replaced by the next one.
   */
  static async connect(opts: ConnectOptions): Promise<BenchConn> {
    if (opts.localAddress === undefined) return await BenchConn.#connectOnce(opts, undefined);
    for (let attempt = 1;; attempt++) {
      try {
        const ports = opts.ports ?? localPorts;
        return await BenchConn.#connectOnce(opts, ports.take(opts.localAddress));
      } catch (e) {
        if (attempt >= PORT_ATTEMPTS || !isPortTaken(e)) throw e;
      }
    }
  }

  static #connectOnce(opts: ConnectOptions, localPort: number | undefined): Promise<BenchConn> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({
        host: opts.host,
        port: opts.port,
        localAddress: opts.localAddress,
        localPort,
      });
      const timer = deadlines.add(opts.timeoutMs ?? 10_000, () => {
        socket.destroy();
        reject(new Error("connect timeout"));
      });
      const fail = (e: Error) => {
        deadlines.cancel(timer);
        reject(e);
      };
      socket.once("error", fail);
      socket.once("connect", () => {
        deadlines.cancel(timer);
        socket.off("error", fail);
        resolve(new BenchConn(socket, opts.maxPacket ?? 64 * 1024 * 1024));
      });
    });
  }

  /** Queues one packet; everything queued in this turn goes out in one write. */
  send(text: string): void {
    if (this.closed) return;
    this.#out += text + END_TEXT;
    this.#scheduleFlush();
  }

  /** Queues a heartbeat. */
  heartbeat(): void {
    if (this.closed) return;
    this.#out += HEARTBEAT_TEXT;
    this.#scheduleFlush();
  }

  /**
   * Logs in as `jid` and resolves with the answer, or rejects on timeout or
   * close. Set `onPacket` first when packets may follow the answer at once.
   */
  login(jid: string, pwd: string, id: string, timeoutMs = 10_000): Promise<LoginAnswer> {
    this.jid = jid;
    return new Promise((resolve, reject) => {
      const t0 = performance.now();
      const timer = deadlines.add(timeoutMs, () => {
        this.#pendingLogin = null;
        reject(new Error("login timeout"));
      });
      this.#pendingLogin = (text) => {
        deadlines.cancel(timer);
        this.#pendingLogin = null;
        if (text === null) reject(new Error("closed before the login answer"));
        else resolve(parseLoginAnswer(text, performance.now() - t0));
      };
      this.send(loginPacket(id, jid, pwd));
    });
  }

  /** Closes the connection (queued packets are written first). */
  close(): void {
    if (this.closed) return;
    this.#flush();
    // Once our side is written, nothing more is wanted from the server.
    this.#socket.end(() => this.#socket.destroy());
  }

  /** Drops the connection at once, without writing what is queued. */
  destroy(): void {
    this.#socket.destroy();
  }

  #scheduleFlush(): void {
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    queueMicrotask(() => this.#flush());
  }

  #flush(): void {
    this.#flushQueued = false;
    if (this.#out === "" || this.closed) return;
    const out = this.#out;
    this.#out = "";
    // Writes are already batched per turn: Nagle would only add latency. Not
    // needed for the login packet (nothing is in flight before it), which
    // spares idle connections the call.
    if (!this.#noDelay && this.#pendingLogin === null) {
      this.#noDelay = true;
      this.#socket.setNoDelay(true);
    }
    this.#socket.write(out);
  }

  #packet(bytes: Uint8Array): void {
    if (bytes.length === 1 && bytes[0] === KILL) {
      this.killed = true;
      return;
    }
    const text = decoder.decode(bytes);
    if (this.#pendingLogin) this.#pendingLogin(text);
    else this.onPacket(text);
  }

  #closed(): void {
    if (this.closed) return;
    this.closed = true;
    this.#out = "";
    this.#pendingLogin?.(null);
    this.onClose();
  }
}

/** Reads a login answer; anything but a well-formed type 0 answer is a failure. */
export function parseLoginAnswer(text: string, ms: number): LoginAnswer {
  const answer: LoginAnswer = {
    ok: false,
    reason: "",
    total: 0,
    packets: [],
    ms,
    chars: text.length,
  };
  let p: unknown;
  try {
    p = JSON.parse(text);
  } catch {
    answer.reason = "answer is not JSON";
    return answer;
  }
  const o = p as {
    envelope?: { type?: unknown };
    entity?: { result?: unknown; reason?: unknown };
    delay?: { total?: unknown; packets?: unknown };
  };
  if (o?.envelope?.type !== 0) {
    answer.reason = `first packet is not a login answer: ${text.slice(0, 120)}`;
    return answer;
  }
  answer.ok = o.entity?.result === "ok";
  if (!answer.ok) answer.reason = String(o.entity?.reason ?? o.entity?.result ?? "no result");
  if (typeof o.delay?.total === "number") answer.total = o.delay.total;
  if (Array.isArray(o.delay?.packets)) answer.packets = o.delay.packets;
  return answer;
}

function isPortTaken(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  return code === "EADDRINUSE" || code === "EADDRNOTAVAIL";
}
