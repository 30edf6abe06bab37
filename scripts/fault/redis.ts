// The redis-server a Redis-mode fault check runs its nodes against: AOF with
// `appendfsync always` in a temp dir, on a fixed loopback port below the
// ephemeral range, so that it can be SIGKILLed and restarted on the same data.

import { freePort } from "./nodes.ts";
import { findOnPath, spawnTied } from "./spawn.ts";

const START_TIMEOUT_MS = 15_000;
const PING_TIMEOUT_MS = 1000;
// Kept for the report when Redis fails to start.
const OUTPUT_TAIL = 4000;

/** One redis-server, restartable on its port and AOF; SIGKILLed with this process. */
export class RedisProcess {
  #child: Deno.ChildProcess | null = null;
  #exited: Promise<unknown> = Promise.resolve();
  #out = "";

  private constructor(
    readonly dir: string,
    readonly port: number,
    readonly extraArgs: readonly string[],
  ) {}

  /** "127.0.0.1:PORT", the `dbaddr` of the nodes. */
  get addr(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** True while the process runs. */
  get up(): boolean {
    return this.#child !== null;
  }

  /**
   * Starts Redis in a fresh temp dir on a free port, with `extraArgs` after
   * the usual ones (a cluster node's settings); resolves once it answers PING.
   */
  static async create(extraArgs: readonly string[] = []): Promise<RedisProcess> {
    const dir = await Deno.makeTempDir({ prefix: "sara-fault-redis-" });
    const r = new RedisProcess(dir, freePort(), extraArgs);
    try {
      await r.start();
    } catch (err) {
      await Deno.remove(dir, { recursive: true });
      throw err;
    }
    return r;
  }

  /** Starts (again) on the same port and dir; resolves once the AOF is loaded. */
  async start(): Promise<void> {
    if (this.#child) throw new Error("redis-server already running");
    const redis = findOnPath("redis-server");
    if (redis === null) {
      throw new Error("redis-server is not installed: run scripts/install_deps.sh (as root)");
    }
    const args = [
      ...["--port", String(this.port), "--bind", "127.0.0.1", "--dir", this.dir],
      ...["--daemonize", "no", "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
      ...this.extraArgs,
    ];
    const child = spawnTied(redis, args);
    this.#child = child;
    this.#out = "";
    const pump = async (s: ReadableStream<Uint8Array>) => {
      for await (const text of s.pipeThrough(new TextDecoderStream())) {
        this.#out = (this.#out + text).slice(-OUTPUT_TAIL);
      }
    };
    const exited = Promise.all([pump(child.stdout), pump(child.stderr), child.status]);
    this.#exited = exited;
    let dead = false;
    exited.then(() => dead = true);
    const deadline = Date.now() + START_TIMEOUT_MS;
    // PING answers -LOADING (not PONG) while the AOF is replayed.
    while (!await ping(this.port)) {
      if (dead || Date.now() > deadline) {
        await this.kill();
        throw new Error(`redis-server on port ${this.port} did not start:\n${this.#out}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** SIGKILLs it (a crash) and waits until it is gone; the AOF stays. */
  async kill(): Promise<void> {
    this.killNow();
    await this.#exited;
  }

  /** Sends SIGKILL without waiting (emergency exit). */
  killNow(): void {
    try {
      this.#child?.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    this.#child = null;
  }

  /** Kills it and removes its dir unless `keep`. */
  async close(keep: boolean): Promise<void> {
    await this.kill();
    if (!keep) await Deno.remove(this.dir, { recursive: true });
  }
}

/** True when Redis on `port` answers PING with PONG now. */
async function ping(port: number): Promise<boolean> {
  let conn: Deno.Conn | null = null;
  const timer = setTimeout(() => conn?.close(), PING_TIMEOUT_MS);
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(new TextEncoder().encode("PING\r\n"));
    const buf = new Uint8Array(64);
    const n = await conn.read(buf);
    return n !== null && new TextDecoder().decode(buf.subarray(0, n)).startsWith("+PONG");
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
    try {
      conn?.close();
    } catch {
      // Closed by the timeout.
    }
  }
}
