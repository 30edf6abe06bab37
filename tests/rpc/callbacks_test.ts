// The callback client (docs/protocol.md §7) against a real HTTP backend: exact form
// encoding, answer parsing, failures (down, slow, HTML, garbage, HTTP errors),
// keep-alive, bounded concurrency, and secrets kept out of the log.

import assert from "node:assert/strict";
import { CallbackError, Callbacks, parseAnswer } from "../../src/callbacks.ts";
import { ConfigError } from "../../src/errors.ts";
import { answer, CallbackServer, deadUrl } from "../helpers/callback_server.ts";
import { CapturedLog } from "../helpers/log_capture.ts";

const SECRET = "tok-must-never-be-logged";

function client(
  url: string,
  log: CapturedLog,
  extra: { concurrency?: number; maxQueued?: number } = {},
) {
  return new Callbacks({ url, timeoutMs: 500, log: log.log, ...extra });
}

Deno.test("a call is one form-encoded POST whose only field body holds sn, service, method, params", async () => {
  using log = new CapturedLog();
  await using backend = CallbackServer.start();
  const cb = client(backend.url, log);
  try {
    const params = { uid: "bob", token: "a b&c=d+é" };
    const got = await cb.call("emsg_auth", "auth", params);
    assert.deepEqual(got, { success: true, entity: null });
    const [call] = backend.calls;
    assert.equal(call!.httpMethod, "POST");
    assert.equal(call!.contentType, "application/x-www-form-urlencoded");
    assert.deepEqual(call!.fields, ["body"]);
    const req = call!.request;
    assert.deepEqual(Object.keys(req), ["sn", "service", "method", "params"]);
    assert.equal(typeof req.sn, "string");
    assert.ok(req.sn.length > 0);
    assert.deepEqual(req.params, params);
    // Byte for byte what a form encoder makes of that JSON.
    assert.equal(call!.raw, new URLSearchParams({ body: JSON.stringify(req) }).toString());
  } finally {
    cb.close();
  }
});

Deno.test("every call gets its own sn", async () => {
  using log = new CapturedLog();
  await using backend = CallbackServer.start();
  const cb = client(backend.url, log);
  try {
    await Promise.all([1, 2, 3].map(() => cb.call("s", "m", {})));
    assert.equal(new Set(backend.calls.map((c) => c.request.sn)).size, 3);
  } finally {
    cb.close();
  }
});

Deno.test("success is read as a boolean or as the strings true and false", () => {
  assert.deepEqual(parseAnswer('{"success":true,"entity":{"a":1}}'), {
    success: true,
    entity: { a: 1 },
  });
  assert.equal(parseAnswer('{"success":"true"}').success, true);
  assert.equal(parseAnswer('{"success":false}').success, false);
  assert.equal(parseAnswer('{"success":"false"}').success, false);
  for (const bad of ['{"success":1}', '{"success":"yes"}', "{}", "[true]", "true", "<html>"]) {
    assert.throws(() => parseAnswer(bad), CallbackError, bad);
  }
});

Deno.test("answers over HTTP with success as a string are understood", async () => {
  using log = new CapturedLog();
  await using backend = CallbackServer.start();
  const cb = client(backend.url, log);
  try {
    backend.responder = (req) => answer(req, "false");
    assert.equal((await cb.call("s", "m", {})).success, false);
    backend.responder = (req) => answer(req, "true", { users: ["a"] });
    assert.deepEqual(await cb.call("s", "m", {}), { success: true, entity: { users: ["a"] } });
  } finally {
    cb.close();
  }
});

Deno.test("a backend answering HTML, garbage or HTTP 500 fails the call with a logged reason", async () => {
  using log = new CapturedLog();
  await using backend = CallbackServer.start();
  const cb = client(backend.url, log);
  try {
    const cases: [() => Response, RegExp][] = [
      [() => new Response("<html><body>502 Bad Gateway</body></html>"), /not JSON/],
      [() => new Response("\x00\xff garbage"), /not JSON/],
      [() => Response.json({ ok: 1 }), /no boolean success/],
      [() => new Response("oops", { status: 500 }), /HTTP 500/],
    ];
    for (const [i, [respond, reason]] of cases.entries()) {
      backend.responder = respond;
      // A distinct method per case: repeated warnings of one method are rate limited.
      await assert.rejects(cb.call("svc", `m${i}`, { token: SECRET }), (err: Error) => {
        assert.ok(err instanceof CallbackError);
        assert.match(err.message, reason);
        return true;
      });
      assert.match(log.text(), new RegExp(`callback svc\\.m${i} failed: .*${reason.source}`));
    }
    assert.ok(!log.text().includes(SECRET));
  } finally {
    cb.close();
  }
});

Deno.test("a backend that is down fails the call, naming the service", async () => {
  using log = new CapturedLog();
  const cb = client(`${deadUrl()}?key=${SECRET}`, log);
  try {
    await assert.rejects(cb.call("emsg_auth", "auth", { token: SECRET }), CallbackError);
    assert.match(log.text(), /callback emsg_auth\.auth failed: .*refused/i);
    assert.ok(!log.text().includes(SECRET), log.text());
  } finally {
    cb.close();
  }
});

Deno.test("a backend slower than the timeout fails the call with a timeout", async () => {
  using log = new CapturedLog();
  await using backend = CallbackServer.start();
  const cb = client(backend.url, log);
  try {
    backend.responder = async (req) => {
      await backend.sleep(5000);
      return answer(req, true);
    };
    await assert.rejects(
      cb.call("emsg_group", "get_user_list", { gid: "g" }),
      /no answer within 500 ms/,
    );
    assert.match(log.text(), /callback emsg_group\.get_user_list failed: no answer within 500 ms/);
  } finally {
    cb.close();
  }
});

Deno.test("calls reuse one keep-alive connection", async () => {
  using log = new CapturedLog();
  await using backend = CallbackServer.start();
  const cb = client(backend.url, log);
  try {
    for (let i = 0; i < 3; i++) await cb.call("s", "m", {});
    assert.equal(new Set(backend.calls.map((c) => c.remotePort)).size, 1);
  } finally {
    cb.close();
  }
});

Deno.test("no more calls than the concurrency limit are in flight; the rest wait their turn", async () => {
  using log = new CapturedLog();
  await using backend = CallbackServer.start();
  const cb = client(backend.url, log, { concurrency: 2 });
  try {
    backend.responder = async (req) => {
      await backend.sleep(30);
      return answer(req, true);
    };
    const results = await Promise.all([1, 2, 3, 4, 5, 6].map(() => cb.call("s", "m", {})));
    assert.equal(results.filter((r) => r.success).length, 6);
    assert.equal(backend.maxInFlight, 2);
  } finally {
    cb.close();
  }
});

Deno.test("notify never rejects and logs a success false answer", async () => {
  using log = new CapturedLog();
  await using backend = CallbackServer.start();
  const cb = client(backend.url, log);
  try {
    backend.responder = (req) => answer(req, false);
    cb.notify("b@d", "user_message", "offline", { total: 1 });
    await backend.waitFor("user_message.offline", 1);
    for (let i = 0; i < 50 && !log.text().includes("success false"); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.match(log.text(), /callback user_message\.offline answered success false/);
  } finally {
    cb.close();
  }
});

Deno.test("notifications beyond maxQueued waiting are dropped with a warning, the others still go", async () => {
  using log = new CapturedLog();
  await using backend = CallbackServer.start();
  const cb = client(backend.url, log, { maxQueued: 2 });
  try {
    let release = () => {};
    const held = new Promise<void>((r) => (release = r));
    backend.responder = async (req) => {
      await held;
      return answer(req, true);
    };
    for (const total of [1, 2, 3]) cb.notify("b@d", "user_message", "offline", { total });
    assert.match(log.text(), /callback user_message\.offline failed: more than 2 calls waiting/);
    await backend.waitFor("user_message.offline", 1);
    release();
    await backend.waitFor("user_message.offline", 2);
    assert.deepEqual(backend.calls.map((c) => c.request.params.total), [1, 2]);
  } finally {
    cb.close();
  }
});

Deno.test("close fails calls in flight at once", async () => {
  using log = new CapturedLog();
  await using backend = CallbackServer.start();
  const cb = client(backend.url, log);
  backend.responder = async (req) => {
    await backend.sleep(5000);
    return answer(req, true);
  };
  const pending = cb.call("s", "m", {});
  await backend.waitFor("s.m", 1);
  cb.close();
  await assert.rejects(pending, /closed/);
  await assert.rejects(cb.call("s", "m", {}), /closed/);
});

Deno.test("a callback URL that is not http(s) is a configuration error", () => {
  using log = new CapturedLog();
  assert.throws(() => client("ftp://x/", log), ConfigError);
  assert.throws(() => client("not a url", log), ConfigError);
});

Deno.test("user and password in the callback URL travel as Basic auth, not in the URL", async () => {
  using log = new CapturedLog();
  let auth: string | null = null;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    auth = req.headers.get("authorization");
    return Response.json({ success: true });
  });
  const cb = client(`http://us%20er:p%40ss@127.0.0.1:${server.addr.port}/`, log);
  try {
    assert.equal((await cb.call("s", "m", {})).success, true);
    assert.equal(auth, `Basic ${btoa("us er:p@ss")}`);
    assert.equal(cb.url, `http://127.0.0.1:${server.addr.port}/`);
  } finally {
    cb.close();
    await server.shutdown();
  }
});
