// The `sara` command line, run as a child process: help, version, setup,
// config errors, and a full run stopped by `sara stop`.

import assert from "node:assert/strict";
import { DEFAULTS } from "../../src/config/config.ts";
import { SaraProcess } from "../helpers/process.ts";
import { TestClient } from "../helpers/client.ts";
import { reservePort } from "../helpers/ports.ts";

Deno.test("sara -h lists the commands and global options like Go sara", async () => {
  const { code, out } = await SaraProcess.run(["-h"]);
  assert.equal(code, 0);
  for (
    const word of ["version", "stop", "setup", "makeconn", "pprof", "--config value, -c value"]
  ) {
    assert.ok(out.includes(word), word);
  }
});

Deno.test("sara version prints the version", async () => {
  const { code, out } = await SaraProcess.run(["version"]);
  assert.equal(code, 0);
  assert.match(out, /^sara version \d+\.\d+\.\d+/);
});

/** A written config with its two secrets checked (64 hex digits) and put back to the defaults. */
function withoutSecrets(text: string): Record<string, unknown> {
  const c = JSON.parse(text);
  assert.match(c.accesstoken, /^[0-9a-f]{64}$/);
  assert.match(c.auth_secret, /^[0-9a-f]{64}$/);
  return { ...c, accesstoken: DEFAULTS.accesstoken, auth_secret: DEFAULTS.auth_secret };
}

Deno.test("sara setup writes every default key, a random accesstoken and auth_secret, and refuses to overwrite without --force", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/etc/conf.json`;
    assert.equal((await SaraProcess.run(["setup", "-o", path])).code, 0);
    const first = await Deno.readTextFile(path);
    assert.deepEqual(withoutSecrets(first), DEFAULTS);
    await Deno.writeTextFile(path, "{}");
    const again = await SaraProcess.run(["setup", "-o", path]);
    assert.notEqual(again.code, 0);
    assert.match(again.out, /already exists.*--force/);
    assert.equal(await Deno.readTextFile(path), "{}");
    assert.equal((await SaraProcess.run(["setup", "-o", path, "--force"])).code, 0);
    const second = await Deno.readTextFile(path);
    assert.deepEqual(withoutSecrets(second), DEFAULTS);
    assert.notEqual(JSON.parse(second).accesstoken, JSON.parse(first).accesstoken);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sara exits non-zero naming the file when -c points at a missing or broken file", async () => {
  const missing = await SaraProcess.run(["-c", "/nonexistent/x.json"]);
  assert.notEqual(missing.code, 0);
  assert.match(missing.out, /\/nonexistent\/x\.json/);
  const f = await Deno.makeTempFile({ suffix: ".json" });
  try {
    await Deno.writeTextFile(f, '{"port": "4222"}');
    const bad = await SaraProcess.run(["-c", f]);
    assert.notEqual(bad.code, 0);
    assert.ok(bad.out.includes(f));
    assert.match(bad.out, /"port"/);
  } finally {
    await Deno.remove(f);
  }
});

Deno.test("sara refuses a Redis dbaddr it cannot use with a clear message", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const conf = `${dir}/conf.json`;
    await Deno.writeTextFile(conf, JSON.stringify({ dbaddr: "not an address" }));
    const r = await SaraProcess.run(["-c", conf, "--datadir", dir, "--logfile", ""]);
    assert.notEqual(r.code, 0);
    assert.match(r.out, /dbaddr/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sara fails startup naming the address when the Redis of dbaddr is unreachable", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // Reserved: no other test's server can be listening there.
    const addr = `127.0.0.1:${reservePort()}`;
    const conf = `${dir}/conf.json`;
    await Deno.writeTextFile(conf, JSON.stringify({ dbaddr: addr, bind: "127.0.0.1" }));
    const r = await SaraProcess.run(["-c", conf, "--datadir", dir, "--logfile", ""]);
    assert.notEqual(r.code, 0);
    assert.match(r.out, /startup failed: cannot connect to redis:/);
    assert.ok(r.out.includes(addr), r.out);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sara runs from a config with flag overrides, serves TCP, and sara stop ends it cleanly", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const conf = `${dir}/conf.json`;
    const pidfile = `${dir}/sara.pid`;
    await Deno.writeTextFile(
      conf,
      JSON.stringify({ bind: "127.0.0.1", enable_ws: false, logfile: `${dir}/sara.log`, pidfile }),
    );
    await using sara = SaraProcess.start([
      "-c",
      conf,
      "--port",
      "0",
      "--rpcport",
      "0",
      "--nodeaddr",
      "127.0.0.1:0",
      "--nodeid",
      "cli1",
      "--datadir",
      `${dir}/data`,
      "--loglevel",
      "2",
    ]);
    const port = await sara.port("tcp");
    await using a = (await TestClient.login(port, "a@d")).client;
    await using b = (await TestClient.login(port, "b@d")).client;
    const id = await a.chat("b@d", "via the cli", { ack: 1 });
    assert.equal((await b.nextPacket()).json.envelope.id, id);
    assert.equal(Number(await Deno.readTextFile(pidfile)), sara.child.pid);
    const stop = await SaraProcess.run(["stop", "--pidfile", pidfile]);
    assert.equal(stop.code, 0, stop.out);
    assert.equal((await sara.status).code, 0);
    await assert.rejects(Deno.stat(pidfile));
    const log = await Deno.readTextFile(`${dir}/sara.log`);
    assert.match(log, /tcp start on \[127\.0\.0\.1:\d+\]/);
    assert.match(log, /SIGTERM received, stopping/);
    assert.ok(!log.includes('"pwd"') && !log.includes("pwd="), "no password in the log");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sara pprof takes a CPU profile and a heap snapshot of a server started with --debug", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await using sara = SaraProcess.start([
      "--debug",
      "--debug-port",
      "0",
      "--port",
      "0",
      "--rpcport",
      "0",
      "--nodeaddr",
      "127.0.0.1:0",
      "--datadir",
      `${dir}/data`,
      "--logfile",
      "",
      "--pidfile",
      `${dir}/pid`,
    ]);
    await sara.port("tcp");
    const debugPort = Number((await sara.waitFor(/V8 inspector on 127\.0\.0\.1:(\d+)/))[1]);
    const cpu = await SaraProcess.run([
      "pprof",
      "--port",
      String(debugPort),
      "--seconds",
      "1",
      "--out",
      `${dir}/cpu.cpuprofile`,
    ]);
    assert.equal(cpu.code, 0, cpu.out);
    const profile = JSON.parse(await Deno.readTextFile(`${dir}/cpu.cpuprofile`));
    assert.ok(Array.isArray(profile.nodes) && profile.nodes.length > 0);
    const mem = await SaraProcess.run([
      "pprof",
      "--type",
      "mem",
      "--port",
      String(debugPort),
      "--out",
      `${dir}/mem.heapsnapshot`,
    ]);
    assert.equal(mem.code, 0, mem.out);
    const snap = JSON.parse(await Deno.readTextFile(`${dir}/mem.heapsnapshot`));
    assert.ok(snap.snapshot.node_count > 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SIGHUP makes sara reopen its logfile after logrotate moved it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const logfile = `${dir}/sara.log`;
    await using sara = SaraProcess.start([
      "--port",
      "0",
      "--rpcport",
      "0",
      "--nodeaddr",
      "127.0.0.1:0",
      "--datadir",
      `${dir}/data`,
      "--logfile",
      logfile,
      "--pidfile",
      `${dir}/pid`,
    ]);
    const port = await sara.port("tcp");
    await Deno.rename(logfile, `${logfile}.1`);
    sara.kill("SIGHUP");
    await new Promise((r) => setTimeout(r, 300));
    await using _c = (await TestClient.login(port, "hup@d")).client;
    await sara.waitFor(/login.*hup@d/);
    assert.match(await Deno.readTextFile(logfile), /hup@d/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
