// Batches between nodes: the wire form round-trips with packets as they
// were, a batch with broken framing is dropped whole, a malformed message
// inside a well-framed batch is dropped alone, and the handler survives
// garbage (logging each drop) and a throwing callback.

import assert from "node:assert/strict";
import {
  batchHandler,
  decodeBatch,
  encodeBatch,
  type NodeMessage,
} from "../../src/cluster/channel.ts";
import { CapturedLog } from "../helpers/log_capture.ts";
import { quietLog } from "./_redis.ts";

// A packet with quotes, backslashes, a newline escape and non-ASCII text:
// it must come out exactly as it went in.
const PACKET = '{"envelope":{"id":"m1"},"payload":{"t":"a \\"q\\" \\\\ \\n é 😀"}}';
const ENTRY = { user: "b@d", id: "m1", from: "a@d", type: 1, ct: 1, packet: PACKET };

const ALL: NodeMessage[] = [
  { t: "msg", e: ENTRY, a: true, s: false },
  { t: "kick", jid: "a@d", sid: "n01-x-1" },
  { t: "msg", e: { ...ENTRY, id: "m2", packet: "{}" }, a: false, s: true },
  { t: "block", owner: "a@d", jid: "b@d", b: true },
  { t: "block", owner: "a@d", jid: "b@d", b: false, from: "n01", ref: "r1" },
  { t: "applied", ref: "r1" },
  { t: "msg", e: { ...ENTRY, id: "m3", packet: "" }, a: true, s: true },
  { t: "msg", e: { ...ENTRY, id: "m4" }, a: true, s: false, h: { o: "n01", r: "n01-7", l: "x.1" } },
  { t: "msg", e: { ...ENTRY, id: "m5" }, a: true, s: true, r: "phone" },
  { t: "msg", e: { ...ENTRY, id: "m6" }, a: false, s: false, x: "n01-sid-3" },
  { t: "took", r: "n01-7", ok: true },
  { t: "gap", l: "x.1", q: 3 },
  { t: "deaf", o: "n02" },
];

Deno.test("a batch of every kind of node message survives encode and decode unchanged, in order", () => {
  assert.deepEqual(decodeBatch(encodeBatch(ALL)), { messages: ALL, dropped: 0 });
  assert.deepEqual(decodeBatch(encodeBatch([])), { messages: [], dropped: 0 });
});

Deno.test("packets travel as they are: the batch holds each packet's text verbatim, not re-escaped", () => {
  const text = encodeBatch([{ t: "msg", e: ENTRY, a: true, s: false }]);
  assert.ok(text.endsWith(`\n${PACKET}`), text);
});

Deno.test("decodeBatch drops a whole batch whose framing is broken", () => {
  const good = encodeBatch(ALL);
  const bad = [
    "",
    "not json",
    "no newline at all",
    "null\n",
    '{"t":"kick","jid":"a","sid":"b"}\n',
    good.slice(0, -1), // one packet char short
    good + "x", // trailing bytes no header accounts for
    '[{"t":"msg","n":-1}]\n',
    '[{"t":"msg","n":1.5}]\nx',
    '[{"t":"msg","n":"3"}]\nabc',
    '[{"t":"msg","n":10}]\nabc',
  ];
  for (const text of bad) assert.equal(decodeBatch(text), null, text);
});

Deno.test("a malformed message inside a well-framed batch is dropped alone; the others arrive", () => {
  const okMsg = { t: "msg", u: "b@d", i: "m9", f: "a@d", y: 1, c: 5, a: true, s: true, n: 2 };
  const text = JSON.stringify([
    { ...okMsg, i: 7 }, // id not a string: dropped, its packet skipped
    { t: "kick", jid: "a@d" }, // no sid
    null,
    { t: "nope" },
    okMsg,
    { t: "applied", ref: "r" },
    { t: "gap", l: "x.1", q: 0 }, // places count from 1
    { t: "deaf" }, // no node
  ]) + "\nxx{}";
  const got = decodeBatch(text);
  assert.ok(got);
  assert.equal(got.dropped, 6);
  assert.deepEqual(got.messages, [
    {
      t: "msg",
      e: { user: "b@d", id: "m9", from: "a@d", type: 1, ct: 5, packet: "{}" },
      a: true,
      s: true,
    },
    { t: "applied", ref: "r" },
  ]);
});

Deno.test("the batch handler drops garbage, survives a throwing handler and keeps going in order", () => {
  const got: string[] = [];
  const onText = batchHandler("sara:chan:x", quietLog(), (m) => {
    if (m.t !== "kick") return;
    got.push(m.sid);
    if (m.sid === "boom") throw new Error("handler bug");
  });
  onText("garbage");
  onText(encodeBatch([
    { t: "kick", jid: "a@d", sid: "boom" },
    { t: "kick", jid: "a@d", sid: "after" },
  ]));
  onText(encodeBatch([{ t: "kick", jid: "a@d", sid: "next batch" }]));
  assert.deepEqual(got, ["boom", "after", "next batch"]);
});

Deno.test("each malformed batch is dropped with a warning naming its channel, and the batches after it are handled", () => {
  using captured = new CapturedLog();
  const got: string[] = [];
  const onText = batchHandler("sara:chan:x", captured.log, (m) => {
    if (m.t === "kick") got.push(m.sid);
  });
  const kicks = (...sids: string[]) =>
    encodeBatch(sids.map((sid) => ({ t: "kick" as const, jid: "a@d", sid })));
  const broken = [
    "garbage", // bad framing
    kicks("lost", "too").slice(0, -3), // truncated
    '[{"t":"kick","jid":\n', // a header line that is not JSON
    `[${"x".repeat(3 << 19)}\n`, // larger than any batch a node sends
  ];
  for (const [i, text] of broken.entries()) {
    onText(text);
    onText(kicks(`after ${i}`));
  }
  onText('[{"t":"nope"},{"t":"kick","jid":"a@d","sid":"beside an unknown kind"}]\n');
  assert.deepEqual(got, [...broken.map((_, i) => `after ${i}`), "beside an unknown kind"]);
  const warned = (re: RegExp) => captured.text().split("\n").filter((l) => re.test(l)).length;
  assert.equal(warned(/\[WARN\] cluster: malformed batch on sara:chan:x dropped/), broken.length);
  assert.equal(warned(/\[WARN\] cluster: 1 malformed messages on sara:chan:x dropped/), 1);
});
