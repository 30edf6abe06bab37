// `sara bench` and `sara makeconn` as commands: usage errors, and short runs
// against a fake server.

import assert from "node:assert/strict";
import { benchCommand } from "../../src/cli/bench.ts";
import { makeconnCommand } from "../../src/cli/makeconn.ts";
import { intField } from "../../src/bench/scan.ts";
import { portsPerSourceAddress } from "../../src/bench/system.ts";
import { FakeServer } from "./fake_server.ts";
import { startTestServer } from "../helpers/server.ts";

/** Runs `sara bench ... --json` with its JSON line kept from the test output; returns both. */
async function benchJson(args: string[]) {
  const lines: string[] = [];
  const print = console.log;
  console.log = (text: string) => void lines.push(text);
  try {
    const code = await benchCommand([...args, "--json"]);
    return { code, result: JSON.parse(lines.at(-1)!) as { ok: boolean; errors: string[] } };
  } finally {
    console.log = print;
  }
}

Deno.test("bench and makeconn refuse a server that is not on loopback (exit 2)", async () => {
  assert.equal(await benchCommand(["p2p", "--raddr", "192.168.1.1:4222"]), 2);
  assert.equal(await makeconnCommand(["--raddr", "192.168.1.1:4222"]), 2);
});

Deno.test("bench refuses an unknown scenario, none, and a cluster of one server (exit 2)", async () => {
  assert.equal(await benchCommand(["nope"]), 2);
  assert.equal(await benchCommand([]), 2);
  assert.equal(await benchCommand(["cluster", "-a", "127.0.0.1:4222"]), 2);
});

Deno.test("bench p2p passes its checks against a server that loses nothing", async () => {
  const server = new FakeServer();
  try {
    const args = ["p2p", "-a", `127.0.0.1:${server.port}`, "-p", "2", "-d", "0.3"];
    const { code, result } = await benchJson([...args, "--warmup", "0"]);
    assert.deepEqual([code, result.errors], [0, []]);
  } finally {
    await server.close();
  }
});

Deno.test("bench p2p fails its checks when the server drops an acked message", async () => {
  const server = new FakeServer({ drop: new Set(["1.5"]) });
  try {
    const args = ["p2p", "-a", `127.0.0.1:${server.port}`, "-p", "2", "-d", "0.3"];
    const { code, result } = await benchJson([...args, "--warmup", "0", "--drain", "0.2"]);
    assert.equal(code, 1);
    assert.match(result.errors[0] ?? "", /^1 acked messages never received/, result.errors[0]);
  } finally {
    await server.close();
  }
});

Deno.test("bench p2p --devices 3 passes only when every session of a recipient gets every message", async () => {
  const args = ["p2p", "-p", "2", "-d", "0.3", "--warmup", "0", "--drain", "1", "--devices", "3"];
  {
    await using srv = await startTestServer({ multi_login: true, rate_limit: 100_000 });
    const { code, result } = await benchJson([...args, "-a", `127.0.0.1:${srv.port}`]);
    assert.deepEqual([code, result.errors], [0, []]);
  }
  // Every device logged in, but only the newest gets the messages: the others' copies are missed.
  const server = new FakeServer({ newestDeviceOnly: true });
  try {
    const { code, result } = await benchJson([...args, "-a", `127.0.0.1:${server.port}`]);
    assert.equal(code, 1);
    assert.match(result.errors.join("; "), /^\d+ acked messages never received/, result.errors[0]);
  } finally {
    await server.close();
  }
});

Deno.test("bench conns fails before connecting when the source addresses have too few ports", async () => {
  const server = new FakeServer();
  try {
    const n = String(portsPerSourceAddress() + 1);
    const args = ["conns", "-a", `127.0.0.1:${server.port}`, "-n", n, "-l", "127.0.0.2", "--json"];
    assert.equal(await benchCommand([...args, "--pid", String(Deno.pid)]), 1);
    assert.equal(server.remotes.length, 0);
  } finally {
    await server.close();
  }
});

Deno.test("makeconn logs in N connections and sends messages with -mg and -ms", async () => {
  const server = new FakeServer();
  try {
    const code = await makeconnCommand([
      "-t",
      "4",
      "-a",
      `127.0.0.1:${server.port}`,
      "-mg",
      "0.1",
      "-ms=1",
      "-b",
      "0.1",
      "-d",
      "0.5",
    ]);
    assert.equal(code, 0);
    const logins = server.packets.filter((p) => intField(p, "type") === 0);
    const messages = server.packets.filter((p) => intField(p, "type") === 1);
    assert.equal(logins.length, 4);
    assert.ok(messages.length > 0);
    assert.ok(messages.every((p) => p.length > 1024));
  } finally {
    await server.close();
  }
});
