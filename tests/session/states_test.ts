// Session states and close reasons: the transition table refuses every
// change it does not list, and every way a session ends is logged once and
// counted in /metrics under its reason.

import assert from "node:assert/strict";
import { checkStep, type State, STEPS } from "../../src/session/session.ts";
import { Close, CLOSE_REASONS } from "../../src/session/close_reason.ts";
import { TestClient } from "../helpers/client.ts";
import { CapturedLog } from "../helpers/log_capture.ts";
import { startTestServer } from "../helpers/server.ts";
import { Scrape } from "../metrics/_prom.ts";

const STATES = Object.keys(STEPS) as State[];

Deno.test("the transition table allows exactly the changes it lists and refuses every other", () => {
  for (const from of STATES) {
    for (const to of STATES) {
      if (STEPS[from].includes(to)) checkStep(from, to);
      else assert.throws(() => checkStep(from, to), /impossible/, `${from} -> ${to}`);
    }
  }
});

Deno.test("every state is reachable from awaiting_login and every state but closed can close", () => {
  const seen = new Set<State>(["awaiting_login"]);
  const todo: State[] = ["awaiting_login"];
  while (todo.length > 0) {
    for (const next of STEPS[todo.pop()!]) {
      if (!seen.has(next)) todo.push(next), seen.add(next);
    }
  }
  assert.deepEqual([...seen].sort(), [...STATES].sort());
  for (const s of STATES) {
    if (s !== "closed") assert.ok(STEPS[s].includes("closed"), `${s} can close`);
  }
  assert.deepEqual(STEPS.closed, []);
});

Deno.test("close reasons have distinct codes and reasons", () => {
  const all = Object.values(Close);
  assert.equal(new Set(all.map((r) => r.code)).size, all.length);
  assert.equal(new Set(CLOSE_REASONS).size, all.length);
});

Deno.test("each way a session ends is counted in /metrics by reason and logged once", async () => {
  using captured = new CapturedLog();
  await using srv = await startTestServer({}, { log: captured.log });
  const before = await Scrape.of(srv.rpcPort);
  const count = (s: Scrape, reason: string) => s.get("sara_sessions_closed_total", { reason }, 0);

  // login_failed: a login packet of the wrong type.
  const bad = await TestClient.connect(srv.port);
  await bad.send({ envelope: { id: "l1", type: 1, jid: "x@d" } });
  await bad.closedByServer();
  // replaced: the same user logs in again.
  const first = (await TestClient.login(srv.port, "a@d")).client;
  const second = (await TestClient.login(srv.port, "a@d")).client;
  await first.closedByServer();
  // bad_packet: garbage after the login.
  const garbage = (await TestClient.login(srv.port, "g@d")).client;
  await garbage.sendRaw("not json\x01");
  await garbage.closedByServer();
  // connection_closed: the client hangs up.
  await second.close();

  const want: Record<string, number> = {
    login_failed: 1,
    replaced: 1,
    bad_packet: 1,
    connection_closed: 1,
  };
  let after = await Scrape.of(srv.rpcPort);
  for (
    let i = 0;
    i < 50 && count(after, "connection_closed") < count(before, "connection_closed") + 1;
    i++
  ) {
    await new Promise((r) => setTimeout(r, 20));
    after = await Scrape.of(srv.rpcPort);
  }
  for (const [reason, n] of Object.entries(want)) {
    assert.equal(count(after, reason) - count(before, reason), n, reason);
  }
  assert.equal(count(after, "internal_error"), 0);
  const text = captured.text();
  for (const reason of Object.keys(want)) {
    assert.equal(text.split(`session closed: ${reason}`).length - 1, 1, `${reason} in:\n${text}`);
  }
  assert.match(text, /session closed: login_failed \(fail_type\)/);
});
