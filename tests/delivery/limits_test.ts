// Overload (issue 6.5, docs/protocol.md §2, §11): the per-connection rate limit, the
// connection limit, and a login flood that must not starve logged-in users.

import assert from "node:assert/strict";
import { startTestServer } from "../helpers/server.ts";
import { type Received, TestClient } from "../helpers/client.ts";
import { until } from "./_faulty_store.ts";

const enc = new TextEncoder();

function reasonOf(r: Received): string | undefined {
  return r.kind === "packet" ? (r.json.entity as { reason?: string })?.reason : undefined;
}

Deno.test("packets beyond rate_limit per second are neither routed nor acked, and one rate_limited notice names the first dropped", async () => {
  await using srv = await startTestServer({ rate_limit: 10 });
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  // 30 packets in one write: they arrive within one window.
  const frames = Array.from({ length: 30 }, (_, i) =>
    JSON.stringify({
      envelope: { id: `r${i}`, type: 1, from: "a@d", to: "b@d", ack: 1 },
      payload: { i },
    }) + "\x01").join("");
  await a.sendRaw(enc.encode(frames));
  const acks: string[] = [];
  const limited: string[] = [];
  while (acks.length + limited.length < 11) {
    const p = await a.nextPacket();
    if (p.json.envelope.type === 3) acks.push(p.json.envelope.id);
    else if (reasonOf(p) === "rate_limited") limited.push(p.json.envelope.id);
    else assert.fail(`unexpected ${p.text}`);
  }
  await a.nothing();
  const first10 = Array.from({ length: 10 }, (_, i) => `r${i}`);
  assert.deepEqual(acks.sort(), [...first10].sort());
  assert.deepEqual(limited, ["r10"]);
  const got: string[] = [];
  for (let i = 0; i < 10; i++) got.push((await b.nextPacket()).json.envelope.id);
  assert.deepEqual(got, first10);
  await b.nothing();
  // The connection stays open and works again in the next window.
  await new Promise((r) => setTimeout(r, 1100));
  const id = await a.chat("b@d", "later", { ack: 1 });
  assert.equal((await a.nextPacket()).json.envelope.id, id);
});

Deno.test("a connection beyond max_conns gets server_full and is closed; a freed slot is usable again", async () => {
  await using srv = await startTestServer({ max_conns: 3 });
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  const idle = await TestClient.connect(srv.port); // not logged in: counts too
  await until(() => srv.server.core.sessions.size === 3, "three sessions");
  await using extra = await TestClient.connect(srv.port);
  const before = await extra.closedByServer();
  assert.deepEqual(before.map(reasonOf), ["server_full"]);
  await idle.close();
  await until(() => srv.server.core.sessions.size === 2, "the freed slot");
  await using c = (await TestClient.login(srv.port, "c@d")).client;
  const id = await a.chat("c@d", "room again", { ack: 1 });
  assert.equal((await c.nextPacket()).json.envelope.id, id);
  assert.equal(b.closed, false);
});

Deno.test("a flood of logins does not starve logged-in users", async () => {
  await using srv = await startTestServer();
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  let flooding = true;
  let logins = 0;
  // 100 connections at a time log in and leave, over and over.
  const flooder = async (n: number) => {
    while (flooding) {
      const c = await TestClient.connect(srv.port);
      try {
        await c.login(`flood${n}-${logins}@d`);
        logins++;
      } finally {
        await c.close();
      }
    }
  };
  const flood = Promise.all(Array.from({ length: 100 }, (_, n) => flooder(n)));
  try {
    const startLogins = logins;
    for (let i = 0; i < 200; i++) {
      const id = await a.chat("b@d", `m${i}`, { ack: 1 });
      assert.equal((await b.nextPacket()).json.envelope.id, id);
      await b.ack(id);
      assert.equal((await a.nextPacket()).json.envelope.id, id);
    }
    // The exchange really ran under the flood.
    assert.ok(logins - startLogins > 100, `only ${logins - startLogins} flood logins`);
  } finally {
    flooding = false;
    await flood;
  }
});
