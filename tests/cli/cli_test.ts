// The `sara` command line, run as a child process: help, version, setup,
// config errors, and a full run stopped by `sara stop`.

import assert from "node:assert/strict";
import { DEFAULTS } from "../../src/config/config.ts";
import { SaraProcess } from "../helpers/process.ts";
import { TestClient } from "../helpers/client.ts";

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

Deno.test("sara setup writes every default key and refuses to overwrite without --force", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/etc/conf.json`;
    assert.equal((await SaraProcess.run(["setup", "-o", path])).code, 0);
    assert.deepEqual(JSON.parse(await Deno.readTextFile(path)), DEFAULTS);
    await Deno.writeTextFile(path, "{}");
    const again = await SaraProcess.run(["setup", "-o", path]);
    assert.notEqual(again.code, 0);
    assert.match(again.out, /already exists.*--force/);
    assert.equal(await Deno.readTextFile(path), "{}");
    assert.equal((await SaraProcess.run(["setup", "-o", path, "--force"])).code, 0);
    assert.deepEqual(JSON.parse(await Deno.readTextFile(path)), DEFAULTS);
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
