// Redelivery after a crash (issue 6.2, docs/protocol.md §12): a real `sara` process is
// SIGKILLed; what it acked to senders comes back, in order, after a restart on
// the same data dir.

import assert from "node:assert/strict";
import { SaraProcess } from "../helpers/process.ts";
import { TestClient } from "../helpers/client.ts";

type Delay = { total: number; packets?: { envelope: { id: string } }[] };
const delayIds = (answer: { json: Record<string, unknown> }) =>
  ((answer.json.delay as Delay).packets ?? []).map((p) => p.envelope.id);

/** A node in its own directory, restartable on the same store. */
class Node {
  proc: SaraProcess | null = null;
  constructor(readonly dir: string) {}

  static async create(): Promise<Node> {
    const dir = await Deno.makeTempDir({ prefix: "sara-kill-" });
    const conf = {
      bind: "127.0.0.1",
      port: 0,
      rpcport: 0,
      nodeaddr: "127.0.0.1:0",
      enable_ws: false,
      datadir: `${dir}/data`,
      logfile: "",
      pidfile: `${dir}/sara.pid`,
      loglevel: 2,
    };
    await Deno.writeTextFile(`${dir}/conf.json`, JSON.stringify(conf));
    return new Node(dir);
  }

  /** Starts the process; resolves to its TCP port. */
  async start(): Promise<number> {
    this.proc = SaraProcess.start(["-c", `${this.dir}/conf.json`]);
    return await this.proc.port("tcp");
  }

  async kill(): Promise<void> {
    const p = this.proc!;
    p.kill("SIGKILL");
    const status = await p.status;
    assert.equal(status.signal, "SIGKILL");
    await p[Symbol.asyncDispose]();
    this.proc = null;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.proc?.[Symbol.asyncDispose]();
    await Deno.remove(this.dir, { recursive: true });
  }
}

Deno.test("messages acked to the sender survive a SIGKILL of the server and arrive at the next login in order", async () => {
  await using node = await Node.create();
  const port = await node.start();
  const ids: string[] = [];
  {
    await using a = (await TestClient.login(port, "a@d")).client;
    for (let i = 0; i < 200; i++) ids.push(await a.chat("b@d", `m${i}`, { ack: 1 }));
    for (let i = 0; i < 200; i++) assert.equal((await a.nextPacket()).json.envelope.type, 3);
    // Killed at once after the last ack: nothing gets a chance to flush.
    await node.kill();
  }
  const port2 = await node.start();
  await using b = await TestClient.connect(port2);
  assert.deepEqual(delayIds(await b.login("b@d")), ids);
});

Deno.test("a message delivered online but not acked by its recipient comes back after a SIGKILL", async () => {
  await using node = await Node.create();
  const port = await node.start();
  let id: string;
  {
    await using a = (await TestClient.login(port, "a@d")).client;
    await using b = (await TestClient.login(port, "b@d")).client;
    id = await a.chat("b@d", "seen, not acked", { ack: 1 });
    assert.equal((await b.nextPacket()).json.envelope.id, id);
    assert.deepEqual([(await a.nextPacket()).json.envelope.type], [3]);
    await node.kill();
  }
  const port2 = await node.start();
  await using b2 = await TestClient.connect(port2);
  assert.deepEqual(delayIds(await b2.login("b@d")), [id]);
});

Deno.test("messages the recipient acked before a SIGKILL and saw acked at a later login stay gone", async () => {
  await using node = await Node.create();
  const port = await node.start();
  {
    await using a = (await TestClient.login(port, "a@d")).client;
    const b = (await TestClient.login(port, "b@d")).client;
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push(await a.chat("b@d", `m${i}`, { ack: 1 }));
    for (let i = 0; i < 20; i++) {
      const got = (await b.nextPacket()).json.envelope.id;
      assert.equal(got, ids[i]);
      await b.ack(got);
    }
    for (let i = 0; i < 20; i++) assert.equal((await a.nextPacket()).json.envelope.type, 3);
    await b.close();
    // A login answers only once earlier acks are through the store.
    await using b2 = await TestClient.connect(port);
    assert.deepEqual((await b2.login("b@d")).json.delay, { total: 0 });
    await node.kill();
  }
  const port2 = await node.start();
  await using b3 = await TestClient.connect(port2);
  assert.deepEqual((await b3.login("b@d")).json.delay, { total: 0 });
});
