// Whether a request comes from this machine: protected mode (docs:
// SECURITY.md) answers the RPC, /metrics and /console only for such clients
// while `accesstoken` is empty.

/** True for 127.0.0.0/8, ::1 and IPv4-mapped 127.x addresses. */
export function isLoopback(hostname: string): boolean {
  const h = hostname.startsWith("[") && hostname.endsWith("]") ? hostname.slice(1, -1) : hostname;
  if (h === "::1" || h === "0:0:0:0:0:0:0:1") return true;
  const v4 = h.toLowerCase().startsWith("::ffff:") ? h.slice(7) : h;
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(v4);
  return m !== null && m[1] === "127" && m.slice(2).every((o) => Number(o) <= 255);
}
