// The install model of docs/operations.md ("Install: npm owns node_modules"),
// proven on a clone of the committed HEAD as a new user gets it: after
// `npm ci`, every documented way of starting sara works with the registries
// unreachable and an empty Deno cache, a client logs in, and `git status`
// stays clean. (`npm test` itself is what CI runs on its fresh clone.)

import assert from "node:assert/strict";
import { SaraProcess } from "../helpers/process.ts";
import { TestClient } from "../helpers/client.ts";
import { reservePort } from "../helpers/ports.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const START_MS = 60_000;
const STOP_MS = 30_000;
const RUN_MS = 300_000;

// Every command runs under `nice`: this test installs and type-checks a whole
// clone while the rest of the suite runs beside it, and must not slow down
// the tests that wait on timers.
const NICE = ["nice", "-n", "15"];

/** Runs a command to completion (niced); its exit code and all output. */
async function run(
  argv: string[],
  cwd: string,
  env: Record<string, string>,
  ms = RUN_MS,
): Promise<{ code: number; out: string }> {
  const child = new Deno.Command(NICE[0]!, {
    args: [...NICE.slice(1), ...argv],
    cwd,
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), ms);
  try {
    const { code, stdout, stderr } = await child.output();
    const dec = new TextDecoder();
    return { code, out: dec.decode(stdout) + dec.decode(stderr) };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The environment of a machine after `npm ci`: no PATH entry into any
 * node_modules (the commands must find the clone's own), the Deno cache in
 * `denoDir`, and every registry behind a proxy address nothing listens on, so
 * that any download fails.
 */
function offlineEnv(denoDir: string): Record<string, string> {
  const dead = `http://127.0.0.1:${reservePort()}`;
  const path = (Deno.env.get("PATH") ?? "").split(":").filter((p) => !p.includes("node_modules"));
  return {
    PATH: path.join(":"),
    HOME: Deno.env.get("HOME") ?? "/root",
    NO_COLOR: "1",
    DENO_DIR: denoDir,
    HTTPS_PROXY: dead,
    HTTP_PROXY: dead,
    https_proxy: dead,
    http_proxy: dead,
    NPM_CONFIG_REGISTRY: `${dead}/`,
    NPM_CONFIG_UPDATE_NOTIFIER: "false",
  };
}

/** Starts sara by `argv` in `clone`, logs a client in, stops it; fails on any step. */
async function startLoginStop(name: string, argv: string[], clone: string, work: string) {
  const dir = await Deno.makeTempDir({ dir: work, prefix: "node-" });
  const conf = {
    bind: "127.0.0.1",
    port: 0,
    wsport: 0,
    rpcport: 0,
    nodeaddr: "127.0.0.1:0",
    datadir: `${dir}/data`,
    logfile: "",
    pidfile: `${dir}/sara.pid`,
    loglevel: 2,
  };
  await Deno.writeTextFile(`${dir}/conf.json`, JSON.stringify(conf));
  const env = offlineEnv(`${dir}/deno-dir`);
  const child = new Deno.Command(NICE[0]!, {
    args: [...NICE.slice(1), ...argv, "-c", `${dir}/conf.json`],
    cwd: clone,
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  await using proc = new SaraProcess(child);
  try {
    const started = await proc.waitFor(/tcp start on \[[^\]]*:(\d+)\]/, START_MS).catch((e) => {
      throw new Error(`${name}: ${e}`);
    });
    const port = Number(started[1]);
    // Throws unless the server answers the login with ok.
    const { client } = await TestClient.login(port, "1@a.a");
    await client.close();
    // Stopped as `sara stop` does, by the pid file: the signal must reach the
    // server, not only the npm or task wrapper around it.
    Deno.kill(await serverPid(conf.pidfile, START_MS), "SIGTERM");
    await proc.waitFor(/\[INFO\] stopped/, STOP_MS).catch((e) => {
      throw new Error(`${name}: ${e}`);
    });
    const status = await proc.status;
    assert.equal(status.code, 0, `${name}: exit ${status.code}\n${proc.output}`);
  } finally {
    // A stop that never reached the server must not leave it running.
    const pid = await serverPid(conf.pidfile, 0).catch(() => 0);
    const cmdline = await Deno.readTextFile(`/proc/${pid}/cmdline`).catch(() => "");
    if (pid > 0 && cmdline.includes(conf.pidfile.replace("sara.pid", "conf.json"))) {
      Deno.kill(pid, "SIGKILL");
    }
  }
  await assertNothingCached(name, env.DENO_DIR!);
}

/** The pid the server wrote to `pidfile` (once it listens), waiting up to `ms` for it. */
async function serverPid(pidfile: string, ms: number): Promise<number> {
  const deadline = Date.now() + ms;
  for (;;) {
    const text = await Deno.readTextFile(pidfile).catch(() => "");
    if (text.trim() !== "") return Number(text);
    if (Date.now() >= deadline) throw new Error(`no pid in ${pidfile} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Deno fetched nothing: its cache holds no npm package and no remote module. */
async function assertNothingCached(name: string, denoDir: string) {
  for (const sub of ["npm", "remote", "deps"]) {
    const entries = await Array.fromAsync(Deno.readDir(`${denoDir}/${sub}`)).catch(() => []);
    assert.deepEqual(entries.map((e) => e.name), [], `${name}: Deno downloaded into ${sub}/`);
  }
}

Deno.test("after npm ci on a clone of HEAD, npm start, npx deno task start and node_modules/.bin/deno task start work offline with an empty Deno cache and changes no file", async () => {
  const work = await Deno.makeTempDir({ prefix: "sara-install-" });
  try {
    const clone = `${work}/sara`;
    const head = (await run(["git", "-C", ROOT, "rev-parse", "HEAD"], ROOT, offlineEnv(work)))
      .out.trim();
    const online = { ...Deno.env.toObject(), NO_COLOR: "1" };
    for (
      const argv of [
        ["git", "clone", "--quiet", "--no-checkout", ROOT, clone],
        ["git", "-C", clone, "checkout", "--quiet", "--detach", head],
      ]
    ) {
      const r = await run(argv, work, online);
      assert.equal(r.code, 0, `${argv.join(" ")}: ${r.out}`);
    }
    // npm ci is the one step that may use the network (or npm's cache).
    const ci = await run(["npm", "ci", "--prefer-offline", "--no-audit", "--no-fund"], clone, {
      ...offlineEnv(`${work}/deno-dir-ci`),
      HTTPS_PROXY: Deno.env.get("HTTPS_PROXY") ?? "",
      HTTP_PROXY: Deno.env.get("HTTP_PROXY") ?? "",
      https_proxy: Deno.env.get("https_proxy") ?? "",
      http_proxy: Deno.env.get("http_proxy") ?? "",
      NPM_CONFIG_REGISTRY: Deno.env.get("NPM_CONFIG_REGISTRY") ?? "https://registry.npmjs.org/",
    });
    assert.equal(ci.code, 0, `npm ci: ${ci.out}`);

    // The proxy does cut the registries off: a fetch through it fails.
    const probe = await run(
      [`${clone}/node_modules/.bin/deno`, "eval", "await fetch('https://registry.npmjs.org/')"],
      clone,
      offlineEnv(`${work}/deno-dir-probe`),
    );
    assert.notEqual(probe.code, 0, `a fetch through the dead proxy succeeded: ${probe.out}`);

    // Settled, not all: a failure must not leave the others writing into `work`.
    const results = await Promise.allSettled([
      startLoginStop("npm start", ["npm", "start", "--"], clone, work),
      startLoginStop("npx deno task start", ["npx", "deno", "task", "start"], clone, work),
      startLoginStop(
        "node_modules/.bin/deno task start",
        [`${clone}/node_modules/.bin/deno`, "task", "start"],
        clone,
        work,
      ),
    ]);
    const failures = results.flatMap((r) => r.status === "rejected" ? [String(r.reason)] : []);
    assert.deepEqual(failures, []);

    const status = await run(["git", "status", "--porcelain"], clone, offlineEnv(work));
    assert.equal(status.code, 0);
    assert.equal(status.out, "", `tracked or new files changed:\n${status.out}`);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});
