// Runs `sara` (main.ts) as a child process, as operators do, and watches its
// output: for CLI tests and for tests that kill or restart whole nodes.

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/**
 * A conf.json for a test node process: loopback, ports chosen by the
 * kernel, no WebSocket, logs on stdout (where `port()` reads them), the pid
 * file in `dir`; `extra` adds or overrides keys.
 */
export function processConfig(dir: string, extra: Record<string, unknown>) {
  return {
    bind: "127.0.0.1",
    port: 0,
    rpcport: 0,
    nodeaddr: "127.0.0.1:0",
    enable_ws: false,
    logfile: "",
    pidfile: `${dir}/sara.pid`,
    loglevel: 2,
    ...extra,
  };
}

/** A running `sara` process. */
export class SaraProcess implements AsyncDisposable {
  #out = "";
  #waiters: (() => void)[] = [];
  readonly status: Promise<Deno.CommandStatus>;
  readonly #reading: Promise<void>;

  constructor(readonly child: Deno.ChildProcess) {
    this.#reading = Promise.all([this.#pump(child.stdout), this.#pump(child.stderr)]).then(
      () => {},
    );
    this.status = child.status;
  }

  /**
   * Starts `deno run -A main.ts ...args`; with `nofile`, under that limit of
   * open files. The process is SIGKILLed by the kernel when the test process
   * dies however it dies (a failed or killed test run): a node left behind
   * once its Redis was gone spun retrying for hours.
   */
  static start(args: string[], env: Record<string, string> = {}, nofile?: number): SaraProcess {
    const run = [
      "setpriv",
      "--pdeathsig",
      "KILL",
      Deno.execPath(),
      "run",
      "--allow-all",
      MAIN,
      ...args,
    ];
    const argv = nofile === undefined ? run : ["prlimit", `--nofile=${nofile}:${nofile}`, ...run];
    const child = new Deno.Command(argv[0]!, {
      args: argv.slice(1),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", ...env },
    }).spawn();
    return new SaraProcess(child);
  }

  /** Runs to completion; resolves to exit code and all output. */
  static async run(args: string[]): Promise<{ code: number; out: string }> {
    const p = SaraProcess.start(args);
    const { code } = await p.status;
    await p.#reading;
    return { code, out: p.output };
  }

  /** Everything printed so far (stdout and stderr). */
  get output(): string {
    return this.#out;
  }

  async #pump(stream: ReadableStream<Uint8Array>): Promise<void> {
    const dec = new TextDecoder();
    for await (const chunk of stream) {
      this.#out += dec.decode(chunk, { stream: true });
      const w = this.#waiters;
      this.#waiters = [];
      for (const f of w) f();
    }
  }

  /** Waits for output matching `re`; returns the match. */
  async waitFor(re: RegExp, ms = 20_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + ms;
    for (;;) {
      const m = this.#out.match(re);
      if (m) return m;
      if (Date.now() > deadline) throw new Error(`no ${re} within ${ms} ms; output:\n${this.#out}`);
      let t: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((r) => {
        this.#waiters.push(r);
        t = setTimeout(r, 100);
      });
      clearTimeout(t);
    }
  }

  /** Port of the listener `name` as logged at startup ("tcp start on [h:p]"). */
  async port(name: string): Promise<number> {
    const m = await this.waitFor(new RegExp(`${name} start on \\[[^\\]]*:(\\d+)\\]`));
    return Number(m[1]);
  }

  /** Sends a signal (ignored when already exited). */
  kill(sig: Deno.Signal = "SIGTERM"): void {
    try {
      this.child.kill(sig);
    } catch {
      // Already exited.
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.kill("SIGKILL");
    await this.status;
    await this.#reading;
  }
}
