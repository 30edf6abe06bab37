// The RPC handler as a pure function (docs/protocol.md §6), called with `new Request()`:
// the three request forms on both paths, CORS, tokens, every errCode, and the
// body limit read with bounded memory.

import assert from "node:assert/strict";
import { RpcCode, RpcError } from "../../src/errors.ts";
import { rpcHandler } from "../../src/rpc/http.ts";
import type { ServiceTable } from "../../src/rpc/services.ts";
import { type Logger, silentLogger } from "../../src/log.ts";
import { CapturedLog } from "../helpers/log_capture.ts";

const TOKEN = "s3cr3t-token";
const MAX = 4096;

/** A table whose methods echo what they got, or fail as asked. */
function table(seen: unknown[]): ServiceTable {
  return {
    echo: {
      access: "token",
      methods: {
        call: ({ params }) => {
          seen.push(params);
          return Promise.resolve({ success: true, entity: { params } });
        },
        no: () => Promise.resolve({ success: false }),
        bad: () => Promise.reject(new RpcError(RpcCode.badParams, "x must be a number")),
        boom: () => Promise.reject(new Error("disk on fire")),
      },
    },
    pushy: {
      access: "push",
      methods: { go: () => Promise.resolve({ success: true, entity: "pushed" }) },
    },
  };
}

function handler(accesstoken = TOKEN, log: Logger = silentLogger()) {
  const seen: unknown[] = [];
  return {
    seen,
    handle: rpcHandler({ services: table(seen), accesstoken, maxBody: MAX, log }),
  };
}

const call = (extra: Record<string, unknown> = {}) => ({
  sn: "sn-1",
  service: "echo",
  method: "call",
  params: { x: 1, s: "a b+c&d=é" },
  token: TOKEN,
  ...extra,
});

async function json(res: Response) {
  assert.equal(res.headers.get("content-type"), "application/json");
  assert.equal(res.headers.get("access-control-allow-origin"), "*");
  return await res.json();
}

async function errCode(res: Response): Promise<[string, string]> {
  assert.equal(res.status, 200);
  const body = await json(res);
  assert.equal(body.success, false);
  return [body.entity.errCode, body.entity.reason];
}

const post = (path: string, body: BodyInit, headers?: HeadersInit) =>
  new Request(`http://h${path}`, { method: "POST", body, headers });

Deno.test("the request is read from a form field, a GET query or a raw JSON body, at /api/ and /", async () => {
  const { handle, seen } = handler();
  const text = JSON.stringify(call());
  const requests = (path: string) => [
    post(path, new URLSearchParams({ body: text })),
    new Request(`http://h${path}?${new URLSearchParams({ body: text })}`),
    post(path, text, { "content-type": "application/json" }),
    // curl -d '{...}' sends raw JSON labelled as a form.
    post(path, text, { "content-type": "application/x-www-form-urlencoded" }),
    // Some SDKs send the form without any content type.
    post(path, `body=${encodeURIComponent(text)}`, { "content-type": "text/plain" }),
    // Go's FormValue also read the query of a POST.
    post(`${path}?${new URLSearchParams({ body: text })}`, ""),
  ];
  for (const path of ["/api/", "/", "/api"]) {
    for (const req of requests(path)) {
      const res = await handle(req);
      assert.equal(res.status, 200);
      assert.deepEqual(await json(res), {
        sn: "sn-1",
        success: true,
        entity: { params: { x: 1, s: "a b+c&d=é" } },
      });
    }
  }
  assert.equal(seen.length, 18);
});

Deno.test("sn is echoed as sent, and is empty when the request has none", async () => {
  const { handle } = handler();
  for (const [sn, echoed] of [[42, 42], ["x", "x"], [undefined, ""], [{ a: 1 }, ""]]) {
    const res = await handle(post("/api/", JSON.stringify(call({ sn }))));
    assert.equal((await json(res)).sn, echoed);
  }
});

Deno.test("an OPTIONS preflight is allowed for any origin", async () => {
  const { handle } = handler();
  const res = await handle(
    new Request("http://h/api/", {
      method: "OPTIONS",
      headers: { "access-control-request-headers": "content-type, x-requested-with" },
    }),
  );
  assert.equal(res.status, 204);
  assert.equal(res.headers.get("access-control-allow-origin"), "*");
  assert.match(res.headers.get("access-control-allow-methods")!, /POST/);
  assert.equal(res.headers.get("access-control-allow-headers"), "content-type, x-requested-with");
});

Deno.test("a plain GET / without body redirects to /console/", async () => {
  const { handle } = handler();
  const res = await handle(new Request("http://h/"));
  assert.equal(res.status, 302);
  assert.equal(res.headers.get("location"), "/console/");
});

Deno.test("a missing body or one that is not a JSON object answers errCode 1000", async () => {
  const { handle } = handler();
  const cases = [
    new Request("http://h/api/"),
    post("/api/", ""),
    post("/", new URLSearchParams({ other: "x" })),
    post("/api/", new URLSearchParams({ body: "" })),
    post("/api/", new URLSearchParams({ body: "{not json" })),
    post("/api/", "<html>"),
    post("/api/", "[1,2]", { "content-type": "application/json" }),
    new Request(`http://h/api/?body=${encodeURIComponent('"just a string"')}`),
  ];
  for (const req of cases) assert.equal((await errCode(await handle(req)))[0], "1000");
});

Deno.test("an unknown service answers 1003 and an unknown method 1002", async () => {
  const { handle } = handler();
  const ask = async (service: unknown, method: unknown) =>
    await errCode(await handle(post("/api/", JSON.stringify(call({ service, method })))));
  assert.deepEqual(await ask("nope", "call"), ["1003", "unknown service nope"]);
  assert.deepEqual(await ask(undefined, "call"), ["1003", "unknown service undefined"]);
  assert.deepEqual(await ask(7, "call"), ["1003", "unknown service 7"]);
  for (const name of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
    assert.equal((await ask(name, "call"))[0], "1003", name);
    assert.equal((await ask("echo", name))[0], "1002", name);
  }
  assert.deepEqual(await ask("echo", "nope"), ["1002", "unknown method echo.nope"]);
  assert.deepEqual(await ask("echo", undefined), ["1002", "unknown method echo.undefined"]);
});

Deno.test("with accesstoken set a missing or wrong token answers 1003 and is never logged", async () => {
  using log = new CapturedLog();
  const { handle, seen } = handler(TOKEN, log.log);
  for (const token of [undefined, "", "s3cr3t-tokeN", TOKEN + "x", 12, null, [TOKEN]]) {
    const res = await handle(post("/api/", JSON.stringify(call({ token }))));
    assert.deepEqual(await errCode(res), ["1003", "wrong token"]);
  }
  // Checked before the method is looked up: no probing of names without the token.
  const res = await handle(post("/api/", JSON.stringify(call({ method: "nope", token: "x" }))));
  assert.equal((await errCode(res))[0], "1003");
  assert.equal(seen.length, 0);
  assert.ok(!log.text().includes(TOKEN));
});

Deno.test("with accesstoken empty RPC is open but the push service is refused", async () => {
  const { handle } = handler("");
  const res = await handle(post("/api/", JSON.stringify(call({ token: undefined }))));
  assert.equal((await json(res)).success, true);
  const push = await handle(
    post("/api/", JSON.stringify(call({ service: "pushy", method: "go" }))),
  );
  assert.deepEqual(await errCode(push), ["1003", "set accesstoken to enable push"]);
});

Deno.test("the push service needs the token when accesstoken is set", async () => {
  const { handle } = handler(TOKEN);
  const ok = await handle(post("/api/", JSON.stringify(call({ service: "pushy", method: "go" }))));
  assert.deepEqual(await json(ok), { sn: "sn-1", success: true, entity: "pushed" });
  const bad = await handle(
    post("/api/", JSON.stringify(call({ service: "pushy", method: "go", token: "no" }))),
  );
  assert.deepEqual(await errCode(bad), ["1003", "wrong token"]);
});

Deno.test("a method's RpcError becomes its errCode; success false passes through; a crash is 5000", async () => {
  using log = new CapturedLog();
  const { handle } = handler(TOKEN, log.log);
  const bad = await handle(post("/api/", JSON.stringify(call({ method: "bad" }))));
  assert.deepEqual(await errCode(bad), ["1001", "x must be a number"]);
  const no = await handle(post("/api/", JSON.stringify(call({ method: "no" }))));
  assert.deepEqual(await json(no), { sn: "sn-1", success: false });
  const boom = await handle(post("/api/", JSON.stringify(call({ method: "boom" }))));
  assert.deepEqual(await errCode(boom), ["5000", "internal"]);
  assert.match(log.text(), /disk on fire/);
});

/** A body of `total` bytes in 1 KiB chunks that counts how much was pulled. */
function countingBody(total: number) {
  const chunk = new Uint8Array(1024).fill(0x20);
  const state = { pulled: 0 };
  const stream = new ReadableStream<Uint8Array>({
    pull(ctl) {
      if (state.pulled >= total) return ctl.close();
      state.pulled += chunk.length;
      ctl.enqueue(chunk);
    },
  });
  return { stream, state };
}

Deno.test("a 10 MB body gets HTTP 413 after reading no more than the limit and one chunk", async () => {
  const { handle } = handler();
  const { stream, state } = countingBody(10 * 1024 * 1024);
  const res = await handle(post("/api/", stream));
  assert.equal(res.status, 413);
  assert.equal((await json(res)).entity.errCode, "1000");
  assert.ok(state.pulled <= MAX + 2 * 1024, `pulled ${state.pulled} bytes`);
});

Deno.test("a Content-Length over the limit gets 413 without reading the body", async () => {
  const { handle } = handler();
  const { stream, state } = countingBody(10 * 1024 * 1024);
  const req = post("/api/", stream, { "content-length": String(10 * 1024 * 1024) });
  const res = await handle(req);
  assert.equal(res.status, 413);
  await res.body?.cancel();
  assert.ok(state.pulled <= 1024, `pulled ${state.pulled} bytes`);
});

Deno.test("a body of exactly the limit is read and a GET query over it gets 413", async () => {
  const { handle } = handler();
  const text = JSON.stringify(call());
  const exact = text + " ".repeat(MAX - new TextEncoder().encode(text).length);
  assert.equal((await json(await handle(post("/api/", exact)))).success, true);
  const over = await handle(new Request(`http://h/api/?body=${"x".repeat(MAX)}`));
  assert.equal(over.status, 413);
  await over.body?.cancel();
});

Deno.test("other paths get 404 and other methods 405", async () => {
  const { handle } = handler();
  const notFound = await handle(new Request("http://h/favicon.ico"));
  assert.equal(notFound.status, 404);
  await notFound.body?.cancel();
  const put = await handle(new Request("http://h/api/", { method: "PUT", body: "x" }));
  assert.equal(put.status, 405);
  await put.body?.cancel();
});
