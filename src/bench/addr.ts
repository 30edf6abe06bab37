// Endpoints of the load tool: parses host:port lists and refuses anything but
// loopback, so that a benchmark can never be pointed at another machine.

/** A TCP address the tool connects to. */
export interface Endpoint {
  host: string;
  port: number;
}

/** True for 127.0.0.0/8, ::1 and localhost. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "");
  if (h === "localhost" || h === "::1") return true;
  const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(h);
  return m !== null && m.slice(1).every((x) => Number(x) <= 255);
}

/**
 * Parses `host:port` (or `[::1]:port`, or a bare port) into an endpoint.
 * Throws a RangeError for a malformed address or one that is not loopback.
 */
export function parseEndpoint(text: string, defaultHost = "127.0.0.1"): Endpoint {
  const s = text.trim();
  let host = defaultHost;
  let portText = s;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(s);
  if (v6) {
    host = v6[1]!;
    portText = v6[2]!;
  } else if (s.includes(":")) {
    const at = s.lastIndexOf(":");
    host = s.slice(0, at);
    portText = s.slice(at + 1);
  }
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 1 || port > 65535) {
    throw new RangeError(`Cannot parse address "${text}": expected host:port`);
  }
  if (!isLoopback(host)) {
    throw new RangeError(
      `Refusing address "${text}": the load tool targets loopback addresses only`,
    );
  }
  return { host: host === "localhost" ? "127.0.0.1" : host, port };
}

/** Parses a comma-separated list of endpoints (at least one). */
export function parseEndpoints(text: string): Endpoint[] {
  const parts = text.split(",").filter((p) => p.trim() !== "");
  if (parts.length === 0) throw new RangeError("Cannot parse address list: it is empty");
  return parts.map((p) => parseEndpoint(p));
}

/** Formats an endpoint as host:port. */
export function formatEndpoint(e: Endpoint): string {
  return e.host.includes(":") ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}

/**
 * Source addresses for `total` connections. An explicit comma-separated list
 * is validated (IPv4 loopback only, since those are what a host can bind
 * freely); without one, as many 127.0.0.x as the ephemeral port range needs,
 * so that N beyond one address's ports still connects. An empty array means
 * "let the kernel choose".
 */
export function sourceAddresses(list: string, total: number, portsPerAddress: number): string[] {
  if (list.trim() !== "") {
    return list.split(",").map((a) => a.trim()).filter((a) => a !== "").map((a) => {
      if (!/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(a) || !isLoopback(a)) {
        throw new RangeError(`Refusing source address "${a}": use 127.x.y.z addresses`);
      }
      return a;
    });
  }
  const needed = Math.ceil(total / Math.max(1, portsPerAddress));
  if (needed <= 1) return [];
  if (needed > 254) throw new RangeError(`Too many connections for 127.0.0.1-254: ${total}`);
  return Array.from({ length: needed }, (_, i) => `127.0.0.${i + 1}`);
}
