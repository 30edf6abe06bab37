// Bounded outbound queues (issue 6.5): a recipient that stops reading is
// closed once `out_queue_bytes` pile up behind its socket, and loses nothing:
// every acked message waits in its inbox for the next login.

import assert from "node:assert/strict";
import { startTestServer } from "../helpers/server.ts";
import { TestClient } from "../helpers/client.ts";
import { until } from "./_faulty_store.ts";

type Delay = { total: number; packets?: { envelope: { id: string } }[] };

const OUT_QUEUE = 256 * 1024;
const PAYLOAD = "x".repeat(8 * 1024);
/** Messages a keeping-up reader may be behind: 16 x 8 KiB, half of OUT_QUEUE. */
const AHEAD = 16;

/**
 * Sends `n` large acked messages from `a` to `to` and waits for every server
 * ack. With `received`, message i waits until the recipient holds i - AHEAD:
 * a reader that keeps up, even when it shares this process's one thread with
 * the server and the sender.
 */
async function sendAcked(
  a: TestClient,
  to: string,
  n: number,
  received?: () => number,
): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    if (received) {
      await until(() => received() >= i - AHEAD, `the recipient's message ${i - AHEAD}`);
    }
    ids.push(await a.chat(to, `${i} ${PAYLOAD}`, { ack: 1 }));
  }
  const acked = new Set<string>();
  while (acked.size < n) {
    const p = await a.nextPacket();
    assert.equal(p.json.envelope.type, 3, p.text.slice(0, 200));
    acked.add(p.json.envelope.id);
  }
  return ids;
}

Deno.test("a recipient that stops reading is closed as a slow consumer and gets every acked message at its next login", async () => {
  // Stored messages come back as separate packets: 10 MB in one login
  // answer would be slow for the test client to reassemble.
  await using srv = await startTestServer({
    out_queue_bytes: OUT_QUEUE,
    offline_delivery: "packets",
    // The ~10 MB backlog below is over the default offline_max_bytes.
    offline_max_bytes: 16 << 20,
  });
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  // b logs in over a raw socket and then never reads again.
  const b = await Deno.connect({ hostname: "127.0.0.1", port: srv.port });
  try {
    const login = { envelope: { id: "lb", type: 0, jid: "b@d", pwd: "p" } };
    await b.write(new TextEncoder().encode(JSON.stringify(login) + "\x01"));
    await until(() => srv.server.core.router.local("b@d") !== undefined, "b's login");
    // About 10 MB: more than the kernel buffers of a socket nobody reads.
    const ids = await sendAcked(a, "b@d", 1200);
    await until(() => srv.server.core.router.local("b@d") === undefined, "the slow consumer close");
    // The server closed b's socket: reading what it holds ends in EOF or a reset.
    const buf = new Uint8Array(1 << 16);
    try {
      while ((await b.read(buf)) !== null) { /* drain */ }
    } catch (err) {
      assert.ok(err instanceof Deno.errors.ConnectionReset, String(err));
    }
    await using b2 = await TestClient.connect(srv.port);
    assert.deepEqual((await b2.login("b@d")).json.delay, { total: 0 });
    const got: string[] = [];
    while (got.length < ids.length) got.push((await b2.nextPacket()).json.envelope.id);
    assert.deepEqual(got, ids);
  } finally {
    b.close();
  }
});

Deno.test("a backlog larger than out_queue_bytes still goes out whole in the login answer", async () => {
  await using srv = await startTestServer({ out_queue_bytes: OUT_QUEUE });
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  // About 1 MB stored: four times the queue limit, in one login answer.
  const ids = await sendAcked(a, "b@d", 120);
  await using b = await TestClient.connect(srv.port);
  const answer = await b.login("b@d");
  assert.deepEqual((answer.json.delay as Delay).packets!.map((p) => p.envelope.id), ids);
});

Deno.test("a recipient that keeps reading is never closed, however much it receives", async () => {
  await using srv = await startTestServer({ out_queue_bytes: OUT_QUEUE });
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  const got: string[] = [];
  const receiving = async () => {
    while (got.length < 600) {
      const p = await b.nextPacket();
      got.push(p.json.envelope.id);
      await b.ack(p.json.envelope.id);
    }
  };
  // Both sides awaited together: a failure of either is this test's, named.
  // Unpaced, the sender can outrun b's reads on this shared thread and b is
  // then rightly closed as a slow consumer (red once in CI).
  const [sent] = await Promise.all([sendAcked(a, "b@d", 600, () => got.length), receiving()]);
  assert.deepEqual(got, sent);
  assert.equal(b.closed, false);
});
