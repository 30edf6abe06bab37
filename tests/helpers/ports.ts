// Ports for servers that must be told theirs before they bind: redis-server and its cluster
// bus, and a port a test needs nobody to listen on. A server that can listen on port 0 and
// report the port it got does that instead (sara logs "tcp start on [h:p]", see process.ts).
//
// A port handed out here is reserved for this process until released: its lock file in
// LOCK_DIR is created while an flock on GUARD is held, and only when no live process holds
// that port's lock already (a lock whose pid is gone is stale and taken over). So the test
// files of one `deno test --parallel` run (one process, several isolates) and several runs
// sharing the machine never get the same port. A port some other program listens on is
// skipped; one that such a program binds between the reservation and the server's start
// is caught by withReservedPorts(), which starts again on other ports.

const LOCK_DIR = "/tmp/sara-test-ports";
const GUARD = `${LOCK_DIR}/.guard`;
// Clear of the ports below it, where servers started by hand on this machine live.
const FLOOR = 30000;
const CEILING = 65535;
const START_ATTEMPTS = 5;

/** The ports this process reserved and has not released. */
const held = new Set<number>();

/**
 * [FLOOR, CEILING] minus the kernel's ephemeral range: the kernel gives those to client
 * sockets, which would make a server restarted on its port fail to bind it.
 */
function candidates(): number[] {
  let [lo, hi] = [32768, 60999];
  try {
    const text = Deno.readTextFileSync("/proc/sys/net/ipv4/ip_local_port_range");
    [lo, hi] = text.trim().split(/\s+/).map(Number) as [number, number];
  } catch {
    // Not Linux: assume its default range.
  }
  const out: number[] = [];
  for (let p = FLOOR; p <= CEILING; p++) if (p < lo || p > hi) out.push(p);
  return out;
}

const CANDIDATES = candidates();

/** True when the process `pid` is alive (its /proc entry exists). */
function alive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/** Takes `port`'s lock file unless a live process holds it; call under the guard. */
function tryLock(port: number): boolean {
  const path = `${LOCK_DIR}/${port}`;
  try {
    Deno.writeTextFileSync(path, String(Deno.pid), { createNew: true });
    return true;
  } catch (err) {
    if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
  }
  const owner = Number(Deno.readTextFileSync(path).trim());
  if (owner === Deno.pid || alive(owner)) return false;
  Deno.writeTextFileSync(path, String(Deno.pid));
  return true;
}

/** True when nothing listens on 127.0.0.1:`port` right now. */
function bindable(port: number): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
    return true;
  } catch {
    return false;
  }
}

/**
 * A loopback port reserved for this process until releasePort(); nothing listens on it now.
 * `from`: the ports to choose among (default: every port of the range).
 */
export function reservePort(from: readonly number[] = CANDIDATES): number {
  Deno.mkdirSync(LOCK_DIR, { recursive: true });
  using guard = Deno.openSync(GUARD, { create: true, write: true });
  guard.lockSync(true);
  const start = Math.floor(Math.random() * from.length);
  for (let i = 0; i < from.length; i++) {
    const port = from[(start + i) % from.length]!;
    if (held.has(port) || !tryLock(port)) continue;
    if (!bindable(port)) {
      Deno.removeSync(`${LOCK_DIR}/${port}`);
      continue;
    }
    held.add(port);
    return port;
  }
  throw new Error(`no free port among ${from.length} (${FLOOR}-${CEILING}, not ephemeral)`);
}

/** Gives a port of reservePort() back; ports never reserved are ignored. */
export function releasePort(port: number): void {
  if (!held.delete(port)) return;
  try {
    Deno.removeSync(`${LOCK_DIR}/${port}`);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}

/** True for the error of a server that could not bind its port because it is taken. */
export function addressInUse(err: unknown): boolean {
  return err instanceof Deno.errors.AddrInUse ||
    (err instanceof Error && /address already in use|EADDRINUSE/i.test(err.message));
}

/**
 * Runs `start` on `count` freshly reserved ports; while it fails because a port is taken
 * (another program bound it first), releases them and starts again on other ones. The ports
 * of the start that succeeded stay reserved: the caller releases them once its server is gone.
 */
export async function withReservedPorts<T>(
  count: number,
  start: (ports: number[]) => Promise<T>,
): Promise<{ ports: number[]; value: T }> {
  for (let attempt = 1;; attempt++) {
    const ports = Array.from({ length: count }, () => reservePort());
    try {
      return { ports, value: await start(ports) };
    } catch (err) {
      for (const p of ports) releasePort(p);
      if (!addressInUse(err) || attempt >= START_ATTEMPTS) throw err;
    }
  }
}
