// TLS listener (docs/protocol.md §1): server-auth TLS around the stream framing, so each
// accepted socket is a StreamConn exactly like TCP. Also loads the PEM pair
// that WSS shares.

import type { Admission } from "../session/conn.ts";
import { type BindOptions, type Listener, listenError } from "../listener.ts";
import { acceptLoop } from "./tcp.ts";
import { STREAM_FRAMING } from "../protocol/framing.ts";
import type { AcceptGuard } from "./accept_guard.ts";

/** Where the PEM certificate chain and private key live (`certfile`, `keyfile`). */
export interface TlsFiles {
  certfile: string;
  keyfile: string;
}

/**
 * Reads and sanity-checks the PEM pair for listener `name`. Throws an error
 * naming the listener, the address and the file at fault, so that a bad path
 * or a swapped pair stops startup before anything listens.
 */
export function readCertPair(
  name: string,
  opts: BindOptions,
  files: TlsFiles,
): Deno.TlsCertifiedKeyPem {
  const cert = readPem(name, opts, files.certfile);
  const key = readPem(name, opts, files.keyfile);
  if (!cert.includes("-----BEGIN CERTIFICATE-----")) {
    throw listenError(name, opts, "no PEM certificate in certfile", files.certfile);
  }
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key)) {
    throw listenError(name, opts, "no PEM private key in keyfile", files.keyfile);
  }
  return { cert, key };
}

/** Starts the TLS listener; throws a clear message when the files or the port are unusable. */
export function startTls(
  node: Admission,
  opts: BindOptions,
  files: TlsFiles,
  guard: AcceptGuard,
): Listener {
  const pair = readCertPair("tls", opts, files);
  let listener: Deno.TlsListener;
  try {
    listener = Deno.listenTls({ hostname: opts.hostname, port: opts.port, ...pair });
  } catch (err) {
    throw listenError("tls", opts, err, pairAtFault(err, files));
  }
  // accept() does not wait for the handshake: it runs inside the first read,
  // so a client that never completes it holds its session only until the
  // login_timeout sweep closes it, and never stalls the accept loop.
  const accepting = acceptLoop(node, "tls", listener, STREAM_FRAMING, guard, (s) => s);
  return {
    name: "tls",
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      listener.close();
      await accepting;
    },
  };
}

/**
 * The files to name when listening failed: none for an address problem (port
 * in use, not ours, privileged), else both, since the TLS stack refused the
 * pair (unparsable, or a key that does not fit the certificate).
 */
export function pairAtFault(err: unknown, files: TlsFiles): string | undefined {
  const address = err instanceof Deno.errors.AddrInUse ||
    err instanceof Deno.errors.AddrNotAvailable ||
    err instanceof Deno.errors.PermissionDenied;
  return address ? undefined : `certfile ${files.certfile}, keyfile ${files.keyfile}`;
}

function readPem(name: string, opts: BindOptions, path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (err) {
    throw listenError(name, opts, err, path);
  }
}
