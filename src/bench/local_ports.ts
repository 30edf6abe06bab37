// Source ports the load tool binds itself. A bind() to port 0 with a chosen
// source address makes the kernel search for a free port, and that search
// grows with every socket already bound (it dominated the tool's CPU at
// 19,000 connections); a bind() to a given port is one lookup.

/** Hands out ports of a range in turn, per source address. */
export class LocalPorts {
  readonly #next = new Map<string, number>();

  /** Ports `lo`..`hi` (inclusive); each address starts at a random one. */
  constructor(readonly lo: number, readonly hi: number) {
    if (!(lo >= 1 && hi <= 65535 && lo <= hi)) throw new RangeError(`Bad port range ${lo}-${hi}`);
  }

  /**
   * The next port to bind on `address`. Starting at a random port keeps runs
   * from walking into the previous run's TIME_WAIT ports in the same order.
   */
  take(address: string): number {
    const span = this.hi - this.lo + 1;
    const port = this.#next.get(address) ?? this.lo + Math.floor(Math.random() * span);
    this.#next.set(address, port >= this.hi ? this.lo : port + 1);
    return port;
  }
}
