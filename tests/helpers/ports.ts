// Free loopback ports for servers that must know their port before binding
// (child processes, Redis, "port in use" tests). Picked below the kernel's
// ephemeral range, so that the client sockets of tests running in parallel
// cannot take a port between its check and its use.

const LOW = 20000;
const HIGH = 32000;

/** A port on 127.0.0.1 that nothing listens on right now. */
export function freePort(): number {
  for (let i = 0; i < 1000; i++) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW));
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
      return port;
    } catch {
      // Taken: try another.
    }
  }
  throw new Error(`no free port in ${LOW}-${HIGH}`);
}
