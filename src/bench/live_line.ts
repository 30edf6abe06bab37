// A status line that rewrites itself in place on a terminal (carriage return)
// and, when the output is a file or a pipe, prints a plain line at most every
// few seconds so that logs stay short.

/** Where a live line goes. */
export interface LineSink {
  writeSync(bytes: Uint8Array): number;
  isTerminal(): boolean;
}

const encoder = new TextEncoder();

/** A live status line on one output. */
export class LiveLine {
  readonly #sink: LineSink;
  readonly #tty: boolean;
  readonly #plainEveryMs: number;
  #lastPlain = -Infinity;
  #shown = false;

  constructor(sink: LineSink, plainEveryMs = 2000) {
    this.#sink = sink;
    this.#tty = sink.isTerminal();
    this.#plainEveryMs = plainEveryMs;
  }

  /** Shows `text` as the current status. */
  update(text: string): void {
    if (this.#tty) {
      // \x1b[K clears what a longer previous line left behind.
      this.#write(`\r${text}\x1b[K`);
      this.#shown = true;
      return;
    }
    const now = performance.now();
    if (now - this.#lastPlain < this.#plainEveryMs) return;
    this.#lastPlain = now;
    this.#write(`${text}\n`);
  }

  /** Prints a line of its own (the live line continues below it). */
  print(text: string): void {
    this.#end();
    this.#write(`${text}\n`);
  }

  /** Ends the live line (a terminal gets its newline). */
  done(): void {
    this.#end();
  }

  #end(): void {
    if (this.#shown) this.#write("\n");
    this.#shown = false;
  }

  #write(text: string): void {
    const bytes = encoder.encode(text);
    let off = 0;
    while (off < bytes.length) off += this.#sink.writeSync(bytes.subarray(off));
  }
}

/** Counts events and gives their rate since the previous call. */
export class RateMeter {
  #lastCount = 0;
  #lastTime = performance.now();

  /** Events per second since the previous call, given the running total. */
  rate(total: number, now = performance.now()): number {
    const dt = (now - this.#lastTime) / 1000;
    const r = dt > 0 ? (total - this.#lastCount) / dt : 0;
    this.#lastCount = total;
    this.#lastTime = now;
    return Math.round(r);
  }
}
