// Input rules (SECURITY.md) over real sockets: nesting limits on every packet
// and RPC body, no client-made notices, numbers forwarded as sent, types
// bounded to 31 bits, invalid UTF-8 refused, control characters escaped in
// the log, and an RPC body that is not JSON named as such.

import assert from "node:assert/strict";
import { startTestServer } from "../helpers/server.ts";
import { TestClient } from "../helpers/client.ts";
import { rpc } from "../helpers/rpc_client.ts";
import { CapturedLog } from "../helpers/log_capture.ts";

const enc = new TextEncoder();
const reason = (r: { json: Record<string, unknown> }) =>
  (r.json.entity as { reason?: string } | undefined)?.reason;

Deno.test("a short packet (under 4 KiB) nesting 600 deep gets bad_packet and a close, and reaches nobody", async () => {
  await using srv = await startTestServer();
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  const deep = "[".repeat(600) + "]".repeat(600);
  await a.sendRaw(
    `{"envelope":{"id":"m","type":1,"from":"a@d","to":"b@d"},"payload":${deep}}\x01`,
  );
  const rest = await a.closedByServer();
  assert.equal(rest.length, 1);
  assert.ok(rest[0]!.kind === "packet");
  assert.equal(reason(rest[0]!), "bad_packet");
  await b.nothing(200);
});

Deno.test("an RPC body nesting deeper than 512 is refused with its own reason", async () => {
  await using srv = await startTestServer({ accesstoken: "t" });
  const deep = "[".repeat(600) + "]".repeat(600);
  const res = await fetch(`http://127.0.0.1:${srv.rpcPort}/api/`, {
    method: "POST",
    body: `{"sn":1,"service":"emsg_session","method":"counter","token":"t","params":${deep}}`,
  });
  const j = await res.json();
  assert.equal(j.success, false);
  assert.match(j.entity.reason, /nests deeper than 512/);
});

Deno.test("a client packet with entity.result sys_notify gets bad_packet and is not delivered", async () => {
  await using srv = await startTestServer();
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  await a.send({
    envelope: { id: "fake", type: 4, from: "a@d", to: "b@d" },
    entity: { result: "sys_notify", reason: "your account is locked, visit evil.example" },
  });
  const r = await a.nextPacket();
  assert.equal(r.json.envelope.id, "fake");
  assert.equal(reason(r), "bad_packet");
  await b.nothing(200);
});

Deno.test("numbers in a payload reach the recipient exactly as sent, beyond 2^53 and with many digits", async () => {
  await using srv = await startTestServer();
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  const payload = '{"big":12345678901234567890123,"precise":0.1000000000000000055511151231257827,' +
    '"neg":-9007199254740993}';
  await a.sendRaw(
    `{"envelope":{"id":"n1","type":1,"from":"a@d","to":"b@d"},"payload":${payload}}\x01`,
  );
  const got = await b.nextPacket();
  assert.ok(got.text.includes(`"payload":${payload}`), got.text);
  // Stored for an offline user, then delivered at login: the same bytes.
  await a.sendRaw(
    `{"envelope":{"id":"n2","type":1,"from":"a@d","to":"c@d"},"payload":${payload}}\x01`,
  );
  await new Promise((r) => setTimeout(r, 100));
  const { client: c, answer } = await TestClient.login(srv.port, "c@d");
  await using _c = c;
  assert.ok(answer.text.includes(`"payload":${payload}`), answer.text);
});

Deno.test("envelope.type outside 0..2^31 gets fail_type at login and bad_packet after", async () => {
  await using srv = await startTestServer();
  {
    await using c = await TestClient.connect(srv.port);
    await c.sendRaw('{"envelope":{"id":"L","type":9223372036854775808,"jid":"a@d"}}\x01');
    const r = await c.nextPacket();
    assert.deepEqual(r.json.entity, { result: "error", reason: "fail_type" });
  }
  await using b = (await TestClient.login(srv.port, "b@d")).client;
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  for (const type of ["9223372036854775808", "2147483648", "-1"]) {
    await a.sendRaw(`{"envelope":{"id":"t${type}","type":${type},"from":"a@d","to":"b@d"}}\x01`);
    const r = await a.nextPacket();
    assert.equal(r.json.envelope.id, `t${type}`);
    assert.equal(reason(r), "bad_packet");
  }
  await b.nothing(200);
});

Deno.test("invalid UTF-8 over TCP fails a login with fail_packet, and after login gets bad_packet and a close", async () => {
  await using srv = await startTestServer();
  {
    await using c = await TestClient.connect(srv.port);
    // "a\xff@d" and "a\xfe@d" would both have become "a\uFFFD@d".
    await c.sendRaw(
      Uint8Array.of(
        ...enc.encode('{"envelope":{"id":"L","type":0,"jid":"a'),
        0xff,
        ...enc.encode('@d"}}\x01'),
      ),
    );
    const rest = await c.closedByServer();
    assert.ok(rest[0]?.kind === "packet");
    assert.deepEqual(rest[0].json.entity, { result: "error", reason: "fail_packet" });
  }
  await using a = (await TestClient.login(srv.port, "a@d")).client;
  await a.sendRaw(
    Uint8Array.of(
      ...enc.encode('{"envelope":{"id":"m","type":1,"from":"a@d","to":"b@d"},"p":"'),
      0xc3,
      0x28,
      ...enc.encode('"}\x01'),
    ),
  );
  const rest = await a.closedByServer();
  assert.equal(rest.length, 1);
  assert.ok(rest[0]!.kind === "packet");
  assert.equal(reason(rest[0]!), "bad_packet");
});

Deno.test("control characters a client puts in its jid are escaped in the log, text and JSON", async () => {
  for (const logformat of ["text", "json"] as const) {
    using log = new CapturedLog();
    log.log.options.format = logformat;
    await using srv = await startTestServer({}, { log: log.log });
    await using _a = (await TestClient.login(srv.port, "evil\x1b[2J\x07@d")).client;
    const text = log.text();
    // deno-lint-ignore no-control-regex
    assert.ok(!/[\x00-\x09\x0b-\x1f]/.test(text), `raw control character in the ${logformat} log`);
    assert.ok(text.includes("evil\\u001b[2J\\u0007@d"), text);
  }
});

Deno.test("an RPC body that is present but not JSON is answered as not JSON, not as missing", async () => {
  await using srv = await startTestServer();
  const res = await fetch(`http://127.0.0.1:${srv.rpcPort}/api/`, {
    method: "POST",
    body: "hello",
  });
  const j = await res.json();
  assert.equal(j.success, false);
  assert.equal(j.entity.errCode, "1000");
  assert.equal(j.entity.reason, "body is not JSON");
  const form = await rpc(srv.rpcPort, "x", "form");
  assert.equal((form.json.entity as { reason: string }).reason, "body is not a JSON object");
  const none = await (await fetch(`http://127.0.0.1:${srv.rpcPort}/api/`, { method: "POST" }))
    .json();
  assert.equal(none.entity.reason, "body missing");
});

Deno.test("an RPC body or body field that is not UTF-8 is refused, not read with U+FFFD", async () => {
  await using srv = await startTestServer({ accesstoken: "t" });
  const url = `http://127.0.0.1:${srv.rpcPort}/api/`;
  const counter = '{"sn":1,"service":"emsg_session","method":"counter","token":"t","p":"';
  const answer = async (res: Response) => {
    const j = await res.json();
    return [j.success, j.entity.errCode, j.entity.reason];
  };
  const raw = Uint8Array.of(...enc.encode(counter), 0xff, ...enc.encode('"}'));
  assert.deepEqual(await answer(await fetch(url, { method: "POST", body: raw })), [
    false,
    "1000",
    "body is not UTF-8",
  ]);
  const field = "body=" + encodeURIComponent(counter) + "%FF" + encodeURIComponent('"}');
  const notForm = [false, "1000", "form field body is not percent-encoded UTF-8"];
  assert.deepEqual(await answer(await fetch(url, { method: "POST", body: field })), notForm);
  assert.deepEqual(await answer(await fetch(`${url}?${field}`)), notForm);
  // The same request in UTF-8 is served, as a form, as a query and with other fields around it.
  const ok = "x=%zz&body=" + encodeURIComponent(counter + 'é"}');
  assert.equal((await (await fetch(url, { method: "POST", body: ok })).json()).success, true);
  assert.equal((await (await fetch(`${url}?${ok}`)).json()).success, true);
});
