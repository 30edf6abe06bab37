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

/**
 * Ephemeral ports one source address can use, less a margin for ports in
 * TIME_WAIT from earlier runs (28232 with Linux defaults).
 */
export function portsPerSourceAddress(): number {
  let size = 28232;
  try {
    const [lo, hi] = Deno.readTextFileSync("/proc/sys/net/ipv4/ip_local_port_range").trim()
      .split(/\s+/).map(Number);
    if (lo !== undefined && hi !== undefined && hi > lo) size = hi - lo + 1;
  } catch {
    // Not Linux: keep the Linux default.
  }
  return Math.max(1, size - 2000);
}
