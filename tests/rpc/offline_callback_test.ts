// The user_message.offline callback (docs/protocol.md §4, §7): made after a message was
// stored for an offline user, with the packet and `total`; its failure loses
// nothing.

import assert from "node:assert/strict";
import { startTestServer } from "../helpers/server.ts";
import { TestClient } from "../helpers/client.ts";
import { answer, CallbackServer, deadUrl } from "../helpers/callback_server.ts";
import { depthAfter } from "../../src/store/inbox_writer.ts";

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

/** What the backend saw of one offline call. */
interface Seen {
  user: string;
  id: string;
  total: number;
}

/**
 * A backend that records the offline calls and holds the first call of each
 * of `users` until the first calls of all of them arrived: serialising every
 * user behind one another would stall it. Counts the calls one user had in
 * flight at once.
 */
function orderWatchingBackend(users: string[]) {
  const backend = CallbackServer.start();
  const seen: Seen[] = [];
  const inFlight = new Map<string, number>();
  const firsts = new Set<string>();
  let mostInFlightForOneUser = 0;
  let allFirstsAtOnce = false;
  let wakeFirsts = () => {};
  const allFirsts = new Promise<void>((r) => (wakeFirsts = r));
  backend.responder = async (req) => {
    const env = req.params.envelope as { to: string; id: string };
    const user = env.to.split("/")[0]!;
    seen.push({ user, id: env.id, total: Number(req.params.total) });
    const n = (inFlight.get(user) ?? 0) + 1;
    inFlight.set(user, n);
    mostInFlightForOneUser = Math.max(mostInFlightForOneUser, n);
    try {
      if (!firsts.has(user)) {
        firsts.add(user);
        if (users.every((u) => firsts.has(u))) {
          allFirstsAtOnce = true;
          wakeFirsts();
        }
        await Promise.race([allFirsts, backend.sleep(3000)]);
      }
      await backend.sleep(2);
      return answer(req, true);
    } finally {
      inFlight.set(user, inFlight.get(user)! - 1);
    }
  };
  return {
    backend,
    seen,
    get mostInFlightForOneUser() {
      return mostInFlightForOneUser;
    },
    get allFirstsAtOnce() {
      return allFirstsAtOnce;
    },
  };
}

Deno.test("offline callbacks of a burst count total up message by message and reach the backend in send order per user, users in parallel", async () => {
  const users = ["b1@d", "b2@d", "b3@d"];
  const watch = orderWatchingBackend(users);
  await using _backend = watch.backend;
  await using srv = await startTestServer({
    enable_offline_callback: true,
    callback: watch.backend.url,
  });
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  const sent = new Map<string, string[]>(users.map((u) => [u, []]));
  // Two rounds: the second lands on inboxes that already hold the first.
  for (const round of [3, 4]) {
    const ids: string[] = [];
    for (let i = 0; i < round; i++) {
      for (const u of users) {
        const id = await a.chat(u, `m${i}`, { ack: 1 });
        sent.get(u)!.push(id);
        ids.push(id);
      }
    }
    for (const _ of ids) await a.nextPacket();
    await watch.backend.waitFor("user_message.offline", [...sent.values()][0]!.length * 3);
  }
  for (const u of users) {
    const mine = watch.seen.filter((s) => s.user === u);
    assert.deepEqual(mine.map((s) => s.id), sent.get(u), `${u}: send order`);
    assert.deepEqual(mine.map((s) => s.total), [1, 2, 3, 4, 5, 6, 7], `${u}: totals`);
  }
  assert.equal(watch.mostInFlightForOneUser, 1);
  assert.ok(watch.allFirstsAtOnce, "the users' first calls were not in flight together");
});

Deno.test("with offline_max capping a burst, total counts up in send order and ends at the cap, never above", async () => {
  const watch = orderWatchingBackend(["b@d"]);
  await using _backend = watch.backend;
  await using srv = await startTestServer({
    enable_offline_callback: true,
    callback: watch.backend.url,
    offline_max: 3,
  });
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) ids.push(await a.chat("b@d", `m${i}`, { ack: 1 }));
  for (const _ of ids) await a.nextPacket();
  await watch.backend.waitFor("user_message.offline", 5);
  assert.deepEqual(watch.seen.map((s) => s.id), ids);
  const totals = watch.seen.map((s) => s.total);
  assert.deepEqual(totals, [...totals].sort((x, y) => x - y), `not counting up: ${totals}`);
  assert.equal(totals.at(-1), 3);
  assert.ok(totals.every((t) => t >= 1 && t <= 3), `${totals}`);
});

Deno.test("depthAfter counts a batch's entries up to the depth it left, and up to the cap when the cap trimmed", () => {
  // 2 waiting, a batch of 3: 3, 4, 5.
  assert.deepEqual([1, 2, 3].map((n) => depthAfter(5, n, 3 - n)), [3, 4, 5]);
  // A batch of 5 into an empty inbox capped at 3: 1, 2, 3, 3, 3.
  assert.deepEqual([1, 2, 3, 4, 5].map((n) => depthAfter(3, n, 5 - n)), [1, 2, 3, 3, 3]);
  // Nothing kept (blocked, policy): no depth to tell.
  assert.deepEqual([1, 2].map((n) => depthAfter(0, n, 2 - n)), [0, 0]);
});
