// `sara` load-tool subcommands (makeconn, bench) as child processes of the
// scale run: each is a process of its own because one process may hold at
// most 20,000 open files. Their output is kept, so that the run can wait for
// a line and read the result.

import { spawnTied } from "../fault/spawn.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const ROOT = new URL("../../", import.meta.url).pathname;
// Kept for the report when a tool fails.
const OUTPUT_TAIL = 16_000;

/** One `sara <args>` process; SIGKILLed by the kernel if this process dies. */
export class ToolProcess {
  readonly child: Deno.ChildProcess;
  readonly exited: Promise<Deno.CommandStatus>;
  /** Output lines so far (stdout and stderr; live lines split at \r). */
  readonly lines: string[] = [];
  #tail = "";

  constructor(args: string[]) {
    const argv = ["run", "--allow-all", MAIN, ...args];
    this.child = spawnTied(Deno.execPath(), argv, { cwd: ROOT, env: { NO_COLOR: "1" } });
    const pumped = Promise.all([this.#pump(this.child.stdout), this.#pump(this.child.stderr)]);
    this.exited = pumped.then(() => this.child.status);
  }

  /** The last output, for error messages. */
  get tail(): string {
    return this.lines.join("\n").slice(-OUTPUT_TAIL);
  }

  /** Resolves with the first line matching `re`; rejects when the process ends or `ms` pass first. */
  async waitLine(re: RegExp, ms: number): Promise<RegExpExecArray> {
    const deadline = performance.now() + ms;
    let dead = false;
    this.exited.then(() => dead = true);
    let seen = 0;
    for (;;) {
      for (; seen < this.lines.length; seen++) {
        const m = re.exec(this.lines[seen]!);
        if (m) return m;
      }
      if (dead) throw new Error(`sara tool exited before "${re.source}":\n${this.tail}`);
      if (performance.now() > deadline) throw new Error(`no "${re.source}" within ${ms} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Sends `sig` if the process still runs. */
  signal(sig: Deno.Signal): void {
    try {
      this.child.kill(sig);
    } catch {
      // Already gone.
    }
  }

  /** Sends `sig`; SIGKILL after `graceMs`; resolves once it is gone. */
  async stop(sig: Deno.Signal, graceMs = 15_000): Promise<void> {
    this.signal(sig);
    const timer = setTimeout(() => this.signal("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  async #pump(stream: ReadableStream<Uint8Array>): Promise<void> {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      const parts = (this.#tail + text).split(/[\r\n]/);
      this.#tail = parts.pop()!;
      for (const p of parts) if (p.trim() !== "") this.lines.push(p);
    }
    if (this.#tail.trim() !== "") this.lines.push(this.#tail);
  }
}
