// Messages between nodes: the wire form round-trips, malformed input decodes
// to null, and the handler survives garbage and a throwing callback.

import assert from "node:assert/strict";
import {
  decodeMessage,
  encodeMessage,
  messageHandler,
  type NodeMessage,
} from "../../src/cluster/channel.ts";
import { quietLog } from "./_redis.ts";

const ENTRY = { user: "b@d", id: "m1", from: "a@d", type: 1, ct: 1, packet: '{"envelope":{}}' };

Deno.test("every kind of node message survives encode and decode unchanged", () => {
  const all: NodeMessage[] = [
    { t: "msg", e: ENTRY, a: true, s: false },
    { t: "kick", jid: "a@d", sid: "n01-x-1" },
    { t: "block", owner: "a@d", jid: "b@d", b: true },
  ];
  for (const m of all) assert.deepEqual(decodeMessage(encodeMessage(m)), m);
});

Deno.test("decodeMessage returns null for malformed messages", () => {
  const bad = [
    "",
    "not json",
    "null",
    "[]",
    '{"t":"nope"}',
    '{"t":"msg","e":{"user":"b@d"},"a":true,"s":true}',
    JSON.stringify({ t: "msg", e: ENTRY, a: 1, s: true }),
    JSON.stringify({ t: "msg", e: { ...ENTRY, ct: "1" }, a: true, s: true }),
    '{"t":"kick","jid":"a@d"}',
    '{"t":"block","owner":"a@d","jid":"b@d","b":"yes"}',
  ];
  for (const text of bad) assert.equal(decodeMessage(text), null, text);
});

Deno.test("the message handler drops garbage and survives a throwing handler", () => {
  const got: NodeMessage[] = [];
  const onText = messageHandler("sara:chan:x", quietLog(), (m) => {
    got.push(m);
    if (m.t === "kick" && m.sid === "boom") throw new Error("handler bug");
  });
  onText("garbage");
  onText(encodeMessage({ t: "kick", jid: "a@d", sid: "boom" }));
  onText(encodeMessage({ t: "kick", jid: "a@d", sid: "after" }));
  assert.deepEqual(got.map((m) => m.t === "kick" && m.sid), ["boom", "after"]);
});
