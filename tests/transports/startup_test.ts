// Starting the WS, TLS and WSS listeners: one INFO line each, and clear, early
// failures (missing or bad PEM files, ports in use) that leave nothing running.

import assert from "node:assert/strict";
import type { Config } from "../../src/config/config.ts";
import { Logger, silentLogger } from "../../src/log.ts";
import { startServer } from "../../src/server.ts";
import { allListenersConfig, makeCerts } from "../helpers/certs.ts";

/** Throws (AddrInUse) unless nothing listens on `port` any more. */
function assertFree(port: number): void {
  Deno.listen({ hostname: "127.0.0.1", port }).close();
}

/**
 * Starts a node that must fail; returns the message after checking that the
 * listeners that had started were closed again (all but the `busy` port).
 */
async function startupError(config: Config, busy?: number): Promise<string> {
  let message = "";
  try {
    const s = await startServer(config, silentLogger());
    await s.stop();
  } catch (err) {
    message = (err as Error).message;
  } finally {
    await Deno.remove(config.datadir, { recursive: true });
  }
  assert.notEqual(message, "", "startup failed");
  for (const port of [config.port, config.wsport, config.tlsport, config.wssport]) {
    if (port !== busy) assertFree(port);
  }
  return message;
}

Deno.test("a missing certfile stops startup naming tls, its address and the file", async () => {
  await using certs = await makeCerts();
  const missing = `${certs.dir}/nope/server.pem`;
  const config = await allListenersConfig(certs, { certfile: missing });
  const msg = await startupError(config);
  assert.ok(msg.startsWith(`tls listener on [127.0.0.1:${config.tlsport}] failed`), msg);
  assert.ok(msg.includes(missing), msg);
});

Deno.test("a certfile that cannot be read stops startup naming it", async () => {
  await using certs = await makeCerts();
  // A directory: unreadable as a file even for root.
  const config = await allListenersConfig(certs, { enable_tls: false, certfile: certs.dir });
  const msg = await startupError(config);
  assert.ok(msg.startsWith(`wss listener on [127.0.0.1:${config.wssport}] failed`), msg);
  assert.ok(msg.includes(`(${certs.dir})`), msg);
});

Deno.test("a keyfile without a private key stops startup naming the keyfile", async () => {
  await using certs = await makeCerts();
  const config = await allListenersConfig(certs, { keyfile: certs.certfile });
  const msg = await startupError(config);
  assert.ok(msg.includes(`tls listener on [127.0.0.1:${config.tlsport}]`), msg);
  assert.ok(msg.includes(`(${certs.certfile}): no PEM private key in keyfile`), msg);
});

Deno.test("a certfile without a certificate stops startup naming the certfile", async () => {
  await using certs = await makeCerts();
  const config = await allListenersConfig(certs, { enable_tls: false, certfile: certs.keyfile });
  const msg = await startupError(config);
  assert.ok(msg.includes(`wss listener on [127.0.0.1:${config.wssport}]`), msg);
  assert.ok(msg.includes(`(${certs.keyfile}): no PEM certificate in certfile`), msg);
});

Deno.test("a key that does not fit the certificate stops startup naming both files", async () => {
  await using certs = await makeCerts();
  await using other = await makeCerts();
  const config = await allListenersConfig(certs, { keyfile: other.keyfile });
  const msg = await startupError(config);
  assert.ok(msg.includes(`tls listener on [127.0.0.1:${config.tlsport}]`), msg);
  assert.ok(msg.includes(`certfile ${certs.certfile}, keyfile ${other.keyfile}`), msg);
});

for (const name of ["ws", "tls", "wss"] as const) {
  Deno.test(`a ${name} port already in use stops startup naming ${name} and the port`, async () => {
    await using certs = await makeCerts();
    const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (busy.addr as Deno.NetAddr).port;
    try {
      const config = await allListenersConfig(certs, { [`${name}port`]: port });
      const msg = await startupError(config, port);
      assert.ok(msg.startsWith(`${name} listener on [127.0.0.1:${port}] failed`), msg);
      assert.ok(!msg.includes(certs.certfile), msg);
    } finally {
      busy.close();
    }
  });
}

Deno.test("each listener started logs one INFO line with its address", async () => {
  await using certs = await makeCerts();
  const config = await allListenersConfig(certs);
  const logfile = `${config.datadir}/sara.log`;
  const log = new Logger({ level: 2, format: "text", file: logfile, stdout: false });
  try {
    const server = await startServer(config, log);
    await server.stop();
    const text = await Deno.readTextFile(logfile);
    for (const [name, port] of [["ws", config.wsport], ["tls", config.tlsport]] as const) {
      const line = `[INFO] ${name} start on [127.0.0.1:${port}]`;
      assert.equal(text.split(line).length - 1, 1, `${line} once in:\n${text}`);
    }
    assert.equal(text.split(`[INFO] wss start on [127.0.0.1:${config.wssport}]`).length, 2);
  } finally {
    log.close();
    await Deno.remove(config.datadir, { recursive: true });
  }
});
