// What the load tool reads from the local system (/proc): the server's RSS,
// its pid file, this process's open-file limit and the ephemeral port range.

/** Resident set size of a process in KiB, or null if it cannot be read. */
export function readRssKib(pid: number): number | null {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** The pid written in a pid file, or null if it is missing or not a number. */
export function readPidFile(path: string): number | null {
  try {
    const text = Deno.readTextFileSync(path).trim();
    return /^\d+$/.test(text) ? Number(text) : null;
  } catch {
    return null;
  }
}

/** The soft limit on open files of this process (Infinity if unknown). */
export function openFileLimit(): number {
  try {
    const limits = Deno.readTextFileSync("/proc/self/limits");
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(limits);
    return m && m[1] !== "unlimited" ? Number(m[1]) : Infinity;
  } catch {
    return Infinity;
  }
}

/** The kernel's ephemeral port range (inclusive), or the Linux default if unknown. */
export function ephemeralRange(): [number, number] {
  try {
    const [lo, hi] = Deno.readTextFileSync("/proc/sys/net/ipv4/ip_local_port_range").trim()
      .split(/\s+/).map(Number);
    if (lo !== undefined && hi !== undefined && lo > 0 && hi > lo) return [lo, hi];
  } catch {
    // Not Linux: keep the Linux default.
  }
  return [32768, 60999];
}

// Fewer ports above the ephemeral range than this: bind inside it after all.
const MIN_HIGH_PORTS = 1000;

/**
 * Source ports the tool binds itself when it chooses the source address:
 * those above the kernel's ephemeral range. Linux keeps a port bound
 * explicitly (and its TIME_WAIT, for a minute after) away from every other
 * socket's automatic port choice, on any address: ports inside the range
 * would starve the machine's other loopback clients (EADDRNOTAVAIL) during
 * and after a large run. Falls back to the ephemeral range when too few ports
 * lie above it.
 */
export function sourcePortRange(): [number, number] {
  const [lo, hi] = ephemeralRange();
  return 65535 - hi >= MIN_HIGH_PORTS ? [hi + 1, 65535] : [lo, hi];
}

/**
 * Ports one source address offers the tool, less a tenth that other sockets
 * may hold (4,082 with Linux defaults).
 */
export function portsPerSourceAddress(): number {
  const [lo, hi] = sourcePortRange();
  return Math.max(1, Math.floor((hi - lo + 1) * 0.9));
}
