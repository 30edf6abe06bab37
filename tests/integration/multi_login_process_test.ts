// multi_login with real `sara` processes: two nodes read it from conf.json
// and share one Redis (store and registry); a user's devices on both nodes
// get bare-JID packets and carbons, and a same-resource login on the other
// node kicks only that device.

import assert from "node:assert/strict";
import { TestClient } from "../helpers/client.ts";
import { processConfig, SaraProcess } from "../helpers/process.ts";
import { startRedis } from "../helpers/redis.ts";

async function node(nodeid: string, dbaddr: string, dir: string) {
  const conf = processConfig(`${dir}/${nodeid}`, {
    nodeid,
    dbaddr,
    multi_login: true,
    max_sessions: 3,
  });
  await Deno.mkdir(`${dir}/${nodeid}`);
  await Deno.writeTextFile(`${dir}/${nodeid}.json`, JSON.stringify(conf));
  const proc = SaraProcess.start(["-c", `${dir}/${nodeid}.json`]);
  return { proc, tcp: await proc.port("tcp") };
}

Deno.test("multi_login across two sara processes on Redis: fan-out, carbon, kicks", async () => {
  await using redis = await startRedis();
  const dir = await Deno.makeTempDir({ prefix: "sara-multi-" });
  const n1 = await node("m1", redis.addr, dir);
  await using _p1 = n1.proc;
  const n2 = await node("m2", redis.addr, dir);
  await using _p2 = n2.proc;
  try {
    await using aDesk = (await TestClient.login(n1.tcp, "a@d/desk")).client;
    await using aPhone = (await TestClient.login(n2.tcp, "a@d/phone")).client;
    const bPhone = (await TestClient.login(n1.tcp, "b@d/phone")).client;
    await using bDesk = (await TestClient.login(n2.tcp, "b@d/desk")).client;
    // Registration is done before each login answer: every device is known now.
    const id = await aDesk.chat("b@d", "hello", { ack: 1 });
    for (const c of [bPhone, bDesk]) assert.equal((await c.nextPacket()).json.envelope.id, id);
    const carbon = (await aPhone.nextPacket()).json;
    assert.deepEqual([carbon.envelope.id, carbon.envelope.carbon], [id, true]);
    await bDesk.ack(id);
    assert.equal((await aDesk.nextPacket()).json.envelope.id, id);
    // b's phone logs in again on the other node: only the old phone goes.
    await using bPhone2 = (await TestClient.login(n2.tcp, "b@d/phone")).client;
    assert.deepEqual((await bPhone.closedByServer()).map((r) => r.kind), ["kill"]);
    await bPhone.close();
    // max_sessions 3: a third and fourth device of a; the oldest (desk, on m1) goes.
    await using _aTab = (await TestClient.login(n1.tcp, "a@d/tablet")).client;
    await using _aTv = (await TestClient.login(n2.tcp, "a@d/tv")).client;
    assert.deepEqual((await aDesk.closedByServer()).map((r) => r.kind), ["kill"]);
    const id2 = await aPhone.chat("b@d/desk", "desk only", { ack: 1 });
    assert.equal((await bDesk.nextPacket()).json.envelope.id, id2);
    await bPhone2.nothing(300);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
