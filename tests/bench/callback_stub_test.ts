// The group scenario's callback stub answers docs/protocol.md §7 requests.

import assert from "node:assert/strict";
import { startCallbackStub } from "../../src/bench/callback_stub.ts";

async function call(url: string, body: unknown, form = true): Promise<Record<string, unknown>> {
  const json = JSON.stringify(body);
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": form ? "application/x-www-form-urlencoded" : "application/json" },
    body: form ? new URLSearchParams({ body: json }).toString() : json,
  });
  return await res.json();
}

Deno.test("the callback stub answers get_user_list for known groups only", async () => {
  const stub = await startCallbackStub(0, new Map([["g1", ["a", "b"]]]));
  try {
    const known = {
      sn: "1",
      service: "emsg_group",
      method: "get_user_list",
      params: { gid: "g1" },
    };
    assert.deepEqual(await call(stub.url, known), {
      sn: "1",
      success: true,
      entity: { users: ["a", "b"] },
    });
    const unknown = { ...known, sn: "2", params: { gid: "nope" } };
    assert.equal((await call(stub.url, unknown, false)).success, false);
    assert.equal(stub.groupRequests, 2);
  } finally {
    await stub.close();
  }
});

Deno.test("the callback stub accepts auth and offline callbacks", async () => {
  const stub = await startCallbackStub(0, new Map());
  try {
    const auth = {
      sn: "1",
      service: "emsg_auth",
      method: "auth",
      params: { uid: "u", token: "t" },
    };
    assert.equal((await call(stub.url, auth)).success, true);
    const bad = await fetch(stub.url, { method: "POST", body: "not json" });
    assert.equal((await bad.json()).success, false);
  } finally {
    await stub.close();
  }
});
