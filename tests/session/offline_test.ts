// Offline storage (docs/protocol.md §3, §4): delay delivery, batch ack, redelivery
// of unacked messages, persistence across restarts.

import assert from "node:assert/strict";
import { startTestServer } from "../helpers/server.ts";
import { TestClient } from "../helpers/client.ts";

type Delay = { total: number; packets?: { envelope: { id: string } }[] };

Deno.test("messages to an offline user arrive in the login answer, oldest first", async () => {
  await using srv = await startTestServer();
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  const ids = [];
  for (let i = 0; i < 5; i++) ids.push(await a.chat("b@d", `m${i}`, { ack: 1 }));
  for (const id of ids) assert.equal((await a.nextPacket()).json.envelope.id, id);
  const { client: b, answer } = await TestClient.login(srv.port, "b@d");
  await using _b = b;
  const delay = answer.json.delay as Delay;
  assert.equal(delay.total, 5);
  assert.deepEqual(delay.packets!.map((p) => p.envelope.id), ids);
});

Deno.test("stored messages stay until the login id is acked", async () => {
  await using srv = await startTestServer();
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  const id = await a.chat("b@d", "keep me", { ack: 1 });
  await a.nextPacket();
  {
    await using b = await TestClient.connect(srv.port);
    const ans = await b.login("b@d");
    assert.equal((ans.json.delay as Delay).total, 1);
  }
  await using b2 = await TestClient.connect(srv.port);
  const again = await b2.login("b@d");
  assert.deepEqual((again.json.delay as Delay).packets!.map((p) => p.envelope.id), [id]);
  await b2.ack(again.json.envelope.id);
  await b2.close();
  await new Promise((r) => setTimeout(r, 50));
  await using b3 = await TestClient.connect(srv.port);
  assert.deepEqual((await b3.login("b@d")).json.delay, { total: 0 });
});

Deno.test("a message delivered online but not acked comes back at the next login", async () => {
  await using srv = await startTestServer();
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  {
    await using b = (await TestClient.login(srv.port, "b@d")).client;
    const id = await a.chat("b@d", "unacked", { ack: 1 });
    assert.equal((await b.nextPacket()).json.envelope.id, id);
    assert.equal((await a.nextPacket()).json.envelope.type, 3); // acked after the write
  }
  await using b2 = await TestClient.connect(srv.port);
  const ans = await b2.login("b@d");
  assert.equal((ans.json.delay as Delay).total, 1);
});

Deno.test("a message acked by its recipient is not delivered again", async () => {
  await using srv = await startTestServer();
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  {
    await using b = (await TestClient.login(srv.port, "b@d")).client;
    const id = await a.chat("b@d", "acked", { ack: 1 });
    await b.nextPacket();
    await b.ack(id);
    await a.nextPacket();
    await new Promise((r) => setTimeout(r, 50));
  }
  await using b2 = await TestClient.connect(srv.port);
  assert.deepEqual((await b2.login("b@d")).json.delay, { total: 0 });
});

Deno.test("offline messages survive a server restart", async () => {
  const datadir = await Deno.makeTempDir({ prefix: "sara-restart-" });
  try {
    const ids: string[] = [];
    {
      await using srv = await startTestServer({ datadir });
      await using a = (await TestClient.login(srv.port, "a@d")).client;
      for (let i = 0; i < 3; i++) ids.push(await a.chat("b@d", `m${i}`, { ack: 1 }));
      for (let i = 0; i < 3; i++) await a.nextPacket();
    }
    await using srv2 = await startTestServer({ datadir });
    await using b = await TestClient.connect(srv2.port);
    const ans = await b.login("b@d");
    assert.deepEqual((ans.json.delay as Delay).packets!.map((p) => p.envelope.id), ids);
  } finally {
    await Deno.remove(datadir, { recursive: true });
  }
});

Deno.test("messages expire after offline_expire", async () => {
  await using srv = await startTestServer({ offline_expire: 1 });
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  await a.chat("b@d", "short-lived", { ack: 1 });
  await a.nextPacket();
  await new Promise((r) => setTimeout(r, 1100));
  await using b = await TestClient.connect(srv.port);
  assert.deepEqual((await b.login("b@d")).json.delay, { total: 0 });
});
