// Proves the port reservations of ports.ts: a port another live process reserved is never
// handed out, one whose holder died is, and a start that finds its port taken runs again
// on other ports.

import assert from "node:assert/strict";
import { addressInUse, releasePort, reservePort, withReservedPorts } from "./ports.ts";

const PORTS = new URL("./ports.ts", import.meta.url).href;

/** A deno child that reserves `port` through ports.ts and holds it until its stdin closes. */
async function holder(port: number): Promise<Deno.ChildProcess> {
  const code = `import { reservePort } from ${JSON.stringify(PORTS)};
    console.log(reservePort([${port}]));
    for await (const _ of Deno.stdin.readable) { /* hold until stdin closes */ }`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  assert.equal(Number(value?.trim()), port, "the child reserved the port");
  return child;
}

Deno.test("a port that another live process reserved is not handed out until that process is gone", async () => {
  const port = reservePort();
  releasePort(port);
  const child = await holder(port);
  try {
    assert.throws(() => reservePort([port]), /no free port/);
  } finally {
    await child.stdin.close();
    await child.status;
    await child.stdout.cancel().catch(() => {});
  }
  // The dead holder's lock is stale: taken over.
  assert.equal(reservePort([port]), port);
  releasePort(port);
});

Deno.test("reserved ports are distinct until released, and a released port can be reserved again", () => {
  const a = reservePort();
  const b = reservePort();
  try {
    assert.notEqual(a, b);
    assert.throws(() => reservePort([a]), /no free port/);
  } finally {
    releasePort(b);
  }
  releasePort(a);
  assert.equal(reservePort([a]), a);
  releasePort(a);
});

Deno.test("a port some other program listens on is skipped", () => {
  const port = reservePort();
  releasePort(port);
  const l = Deno.listen({ hostname: "127.0.0.1", port });
  try {
    assert.throws(() => reservePort([port]), /no free port/);
  } finally {
    l.close();
  }
});

Deno.test("a start that finds its port taken runs again on other ports; other errors end it", async () => {
  const tried: number[][] = [];
  const { ports, value } = await withReservedPorts(2, (ps) => {
    tried.push(ps);
    if (tried.length === 1) return Promise.reject(new Deno.errors.AddrInUse("taken"));
    return Promise.resolve("up");
  });
  assert.equal(value, "up");
  assert.equal(tried.length, 2);
  assert.deepEqual(ports, tried[1]);
  // The failed start's ports were given back: they can be reserved again.
  for (const p of tried[0]!) releasePort(reservePort([p]));
  for (const p of ports) releasePort(p);
  await assert.rejects(
    withReservedPorts(1, () => Promise.reject(new Error("bad config"))),
    /bad config/,
  );
  assert.ok(addressInUse(new Error("bind: Address already in use")));
});
