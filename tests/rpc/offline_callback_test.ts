// The user_message.offline callback (docs/protocol.md §4, §7): made after a message was
// stored for an offline user, with the packet and `total`; its failure loses
// nothing.

import assert from "node:assert/strict";
import { startTestServer } from "../helpers/server.ts";
import { TestClient } from "../helpers/client.ts";
import { answer, CallbackServer, deadUrl } from "../helpers/callback_server.ts";

type Delay = { total: number; packets?: { envelope: { id: string } }[] };

Deno.test("a message stored for an offline user is posted with the packet and total, after the store", async () => {
  await using backend = CallbackServer.start();
  await using srv = await startTestServer({ enable_offline_callback: true, callback: backend.url });
  const storedAtCall: string[][] = [];
  backend.responder = async (req) => {
    const inbox = await srv.server.core.store.inbox("b@d");
    storedAtCall.push(inbox.map((e) => e.id));
    return answer(req, true);
  };
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  const id1 = await a.chat("b@d", "first", { ack: 1 });
  await a.nextPacket();
  const id2 = await a.chat("b@d/phone", "second", { ack: 1 });
  await a.nextPacket();
  const calls = await backend.waitFor("user_message.offline", 2);
  const [p1, p2] = calls.map((c) => c.request.params as Record<string, unknown>);
  const env1 = p1!.envelope as Record<string, unknown>;
  assert.deepEqual(
    { ...p1, envelope: { ...env1, ct: "?" } },
    {
      envelope: { id: id1, type: 1, from: "a@d", to: "b@d", ack: 1, ct: "?" },
      payload: { content: "first" },
      vsn: "0.0.1",
      total: 1,
    },
  );
  assert.match(String(env1.ct), /^\d+$/);
  assert.equal((p2!.envelope as { id: string }).id, id2);
  assert.equal(p2!.total, 2);
  // The backend was told only once the message was in the inbox.
  assert.deepEqual(storedAtCall, [[id1], [id1, id2]]);
});

Deno.test("no offline callback for a message delivered to an online user", async () => {
  await using backend = CallbackServer.start();
  await using srv = await startTestServer({ enable_offline_callback: true, callback: backend.url });
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  const id = await a.chat("b@d", "hi", { ack: 1 });
  assert.equal((await b.nextPacket()).json.envelope.id, id);
  await b.ack(id);
  await a.nextPacket();
  await a.chat("c@d", "to offline c", { ack: 1 }); // a later call proves the first was not made
  await a.nextPacket();
  const calls = await backend.waitFor("user_message.offline", 1);
  assert.deepEqual(calls.map((c) => (c.request.params.envelope as { to: string }).to), ["c@d"]);
});

Deno.test("without enable_offline_callback nothing is posted", async () => {
  await using backend = CallbackServer.start();
  await using srv = await startTestServer({ enable_auth: true, callback: backend.url });
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  await a.chat("b@d", "hi", { ack: 1 });
  await a.nextPacket();
  // The login of b makes one more auth call, which comes after any offline call a made.
  await using _b = (await TestClient.login(srv.port, "b@d")).client;
  assert.deepEqual(backend.calls.map((c) => c.request.service), ["emsg_auth", "emsg_auth"]);
});

for (
  const [what, setup] of [
    ["down", () => ({ url: deadUrl(), backend: null })],
    ["answering success false", () => {
      const backend = CallbackServer.start();
      backend.responder = (req) => answer(req, false);
      return { url: backend.url, backend };
    }],
    ["answering garbage", () => {
      const backend = CallbackServer.start();
      backend.responder = () => new Response("<html>oops</html>");
      return { url: backend.url, backend };
    }],
  ] as const
) {
  Deno.test(`an offline callback backend ${what} loses no message`, async () => {
    const { url, backend } = setup();
    try {
      await using srv = await startTestServer({ enable_offline_callback: true, callback: url });
      await using a = (await TestClient.login(srv.port, "a@d")).client;
      const ids = [await a.chat("b@d", "1", { ack: 1 }), await a.chat("b@d", "2", { ack: 1 })];
      for (const id of ids) assert.equal((await a.nextPacket()).json.envelope.id, id);
      if (backend) await backend.waitFor("user_message.offline", 2);
      const { client: b, answer: ans } = await TestClient.login(srv.port, "b@d");
      await using _b = b;
      const delay = ans.json.delay as Delay;
      assert.deepEqual(delay.packets!.map((p) => p.envelope.id), ids);
    } finally {
      await backend?.close();
    }
  });
}
