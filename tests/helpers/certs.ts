// Generates a throwaway self-signed certificate for CN=localhost (also valid for
// IP 127.0.0.1) with the openssl command at test time; no key material is
// committed. `await using` removes it.

import type { Config } from "../../src/config/config.ts";
import { reservePort } from "./ports.ts";
import { testConfig } from "./server.ts";

/** A PEM pair on disk, and the certificate text for clients' `caCerts`. */
export interface TestCerts extends AsyncDisposable {
  dir: string;
  certfile: string;
  keyfile: string;
  /** The certificate (PEM): clients trust it as their only CA. */
  cert: string;
}

/** Runs openssl as docs/transports.md tells operators to, plus the names a client checks. */
export async function makeCerts(): Promise<TestCerts> {
  const dir = await Deno.makeTempDir({ prefix: "sara-certs-" });
  const keyfile = `${dir}/server.key`;
  const certfile = `${dir}/server.pem`;
  try {
    await openssl(["genrsa", "-out", keyfile, "2048"]);
    await openssl([
      "req",
      "-new",
      "-x509",
      "-key",
      keyfile,
      "-out",
      certfile,
      "-days",
      "2",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
      // rustls refuses a CA certificate as a server's own certificate.
      "-addext",
      "basicConstraints=critical,CA:FALSE",
      "-addext",
      "extendedKeyUsage=serverAuth",
    ]);
  } catch (err) {
    await Deno.remove(dir, { recursive: true });
    throw err;
  }
  return {
    dir,
    certfile,
    keyfile,
    cert: await Deno.readTextFile(certfile),
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function openssl(args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/**
 * A test config with every listener on (TCP, RPC, Thrift push, WS, TLS, WSS),
 * each on a known port reserved for this test process (kept until it exits),
 * so a test can name the port a stage binds and check it is free again.
 */
export function allListenersConfig(
  certs: TestCerts,
  overrides: Partial<Config> = {},
): Promise<Config> {
  return testConfig({
    port: reservePort(),
    rpcport: reservePort(),
    nodeaddr: `127.0.0.1:${reservePort()}`,
    wsport: reservePort(),
    tlsport: reservePort(),
    wssport: reservePort(),
    enable_ws: true,
    enable_tls: true,
    enable_wss: true,
    certfile: certs.certfile,
    keyfile: certs.keyfile,
    ...overrides,
  });
}
