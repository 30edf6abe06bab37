// The login answer's bound (SECURITY.md): at most max_packet x 16 bytes; the
// stored packets that do not fit follow it as packets, in order, each acked
// by itself.

import assert from "node:assert/strict";
import { TestClient } from "../helpers/client.ts";
import { startTestServer } from "../helpers/server.ts";

type Delay = { total: number; packets?: { envelope: { id: string } }[] };

const MAX_PACKET = 1024;
// About 880 bytes a packet: 40 of them are twice what one answer may carry.
const TEXT = "ü".repeat(360);

Deno.test("a login answer stays within max_packet x 16 bytes and the stored packets that do not fit follow it in order", async () => {
  await using srv = await startTestServer({ max_packet: MAX_PACKET });
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  const ids: string[] = [];
  for (let i = 0; i < 40; i++) ids.push(await a.chat("b@d", `${i} ${TEXT}`, { ack: 1 }));
  for (const id of ids) assert.equal((await a.nextPacket()).json.envelope.id, id);

  await using b = await TestClient.connect(srv.port);
  const answer = await b.login("b@d");
  assert.ok(
    new TextEncoder().encode(answer.text).length <= MAX_PACKET * 16,
    `${answer.text.length}`,
  );
  const delay = answer.json.delay as Delay;
  const inAnswer = delay.packets!.map((p) => p.envelope.id);
  assert.equal(delay.total, inAnswer.length);
  assert.ok(inAnswer.length > 0 && inAnswer.length < ids.length, String(inAnswer.length));
  const after: string[] = [];
  while (inAnswer.length + after.length < ids.length) {
    after.push((await b.nextPacket()).json.envelope.id);
  }
  assert.deepEqual([...inAnswer, ...after], ids);
  await b.nothing();

  // The login's ack removes the answer's packets; each later one needs its own.
  await b.ack(answer.json.envelope.id);
  for (const id of after.slice(0, -1)) await b.ack(id);
  const left = async () => (await srv.server.core.store.inbox("b@d")).map((e) => e.id);
  const deadline = Date.now() + 10_000;
  while ((await left()).length > 1 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.deepEqual(await left(), ids.slice(-1));
});
