// Packet helpers: JIDs, parsing, stamping and the answers the server builds.

import assert from "node:assert/strict";
import {
  bareJid,
  loginError,
  loginOk,
  MAX_DEPTH,
  nestsDeeper,
  notice,
  parsePacket,
  serverAck,
  stampCt,
  stampPacket,
} from "../../src/protocol/packet.ts";

Deno.test("bareJid() strips the resource and refuses malformed JIDs", () => {
  assert.equal(bareJid("a@d"), "a@d");
  assert.equal(bareJid("a@d/phone"), "a@d");
  assert.equal(bareJid("a@d/"), "a@d");
  for (const bad of ["a", "@d", "a@", "a@b@c", "a b@d", "a@d/x y", 5, null, undefined]) {
    assert.equal(bareJid(bad), null, String(bad));
  }
});

Deno.test("parsePacket() returns null for non-JSON, non-objects and a missing envelope", () => {
  for (const bad of ["", "x", "[]", "1", "null", '{"envelope":1}', '{"envelope":[]}', "{}"]) {
    assert.equal(parsePacket(bad), null, bad);
  }
  assert.deepEqual(parsePacket('{"envelope":{"id":"1"}}'), { envelope: { id: "1" } });
});

Deno.test("parsePacket() refuses nesting deeper than MAX_DEPTH, counting only outside strings", () => {
  const deep = "[".repeat(3000) + "]".repeat(3000);
  assert.equal(parsePacket(`{"envelope":{"id":"1"},"p":${deep}}`), null);
  const ok = "[".repeat(MAX_DEPTH - 2) + "]".repeat(MAX_DEPTH - 2) + " ".repeat(5000);
  assert.notEqual(parsePacket(`{"envelope":{"id":"1"},"p":${ok}}`), null);
  const inString = JSON.stringify("[{".repeat(5000));
  assert.notEqual(parsePacket(`{"envelope":{"id":"1"},"p":${inString}}`), null);
  // Opening brackets of both kinds count together.
  const mixed = '{"a":['.repeat(300) + "1" + "]}".repeat(300);
  assert.equal(nestsDeeper(mixed, MAX_DEPTH), true);
  assert.equal(nestsDeeper(mixed, 600), false);
  // An escaped backslash ends before the closing quote; an escaped quote does not.
  assert.equal(nestsDeeper(String.raw`{"a":"\\",[[1]]}`, 2), true);
  assert.equal(nestsDeeper(String.raw`{"a":"\",[[1]]"}`, 2), false);
});

Deno.test("stampPacket() sets ct as a string and keeps every other field in order", () => {
  const text = '{"envelope":{"id":"1","ct":5,"x":[1]},"payload":{"a":"b"},"z":0}';
  assert.equal(
    stampPacket(text, parsePacket(text)!.envelope, 1234),
    '{"envelope":{"id":"1","ct":"1234","x":[1]},"payload":{"a":"b"},"z":0}',
  );
});

Deno.test("stampPacket() keeps every byte outside the envelope, big numbers and odd spacing included", () => {
  const text = ' { "payload" : {"n": 12345678901234567890123, "f": 1.000000000000000000001, ' +
    '"s":"}\\"{"} , "envelope" : { "id" : "1" } , "z": [ {"a":1} ] } ';
  const out = stampPacket(text, parsePacket(text)!.envelope, 7)!;
  assert.equal(
    out,
    ' { "payload" : {"n": 12345678901234567890123, "f": 1.000000000000000000001, ' +
      '"s":"}\\"{"} , "envelope" : {"id":"1","ct":"7"} , "z": [ {"a":1} ] } ',
  );
  // An escaped key that JSON reads as "envelope" is found too.
  const escaped = '{"env\\u0065lope":{"id":"2"},"p":1}';
  assert.equal(
    stampPacket(escaped, parsePacket(escaped)!.envelope, 1),
    '{"env\\u0065lope":{"id":"2","ct":"1"},"p":1}',
  );
});

Deno.test("stampCt() stamps the last envelope, and one spelled twice or escaped as stampPacket() does", () => {
  const cases: [string, string][] = [
    [
      '{"envelope":{"id":"1","type":1,"ack":1},"payload":{"n":12345678901234567890123}}',
      '{"envelope":{"id":"1","type":1,"ack":1,"ct":"9"},"payload":{"n":12345678901234567890123}}',
    ],
    ['{"envelope":{}}', '{"envelope":{"ct":"9"}}'],
    ['{"envelope":{"id":"1","ct":5},"p":1}', '{"envelope":{"id":"1","ct":"9"},"p":1}'],
    [
      '{"envelope":{"id":"1"},"envelope":{"id":"1"}}',
      '{"envelope":{"id":"1"},"envelope":{"id":"1","ct":"9"}}',
    ],
    [
      String.raw`{"envelope":{"id":"1"},"env\u0065lope":{"id":"1"}}`,
      String.raw`{"envelope":{"id":"1"},"env\u0065lope":{"id":"1","ct":"9"}}`,
    ],
    // The server checked the last `from`: a first-wins parser must not see the other one.
    [
      '{"envelope":{"from":"victim@d","from":"a@d","id":"1"},"p":1}',
      '{"envelope":{"from":"a@d","id":"1","ct":"9"},"p":1}',
    ],
    [
      String.raw`{"envelope":{"fr\u006fm":"a@d","id":"1"},"p":1}`,
      '{"envelope":{"from":"a@d","id":"1","ct":"9"},"p":1}',
    ],
  ];
  for (const [text, want] of cases) {
    assert.equal(stampCt(text, parsePacket(text)!.envelope, 9), want, text);
  }
});

Deno.test("stampCt() gives stampPacket()'s bytes, over random packets", () => {
  const atoms = [
    '"s"',
    String.raw`"\\"`,
    String.raw`"\""`,
    String.raw`"\u00e9"`,
    '"envelope"',
    '"}{]["',
    "1",
    "-2.5e3",
    "true",
    "null",
    "[]",
    "{}",
    '[1,{"a":[]}]',
  ];
  const keys = ["id", "type", "from", "to", "ct", "ack", "x", "y"];
  const ws = ["", "", "", " ", "\n"];
  let seed = 1;
  const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
  const pick = <T>(xs: T[]) => xs[rnd(xs.length)]!;
  let stamped = 0;
  let compact = 0;
  for (let n = 0; n < 3000; n++) {
    const fields = Array.from({ length: rnd(6) }, () => {
      const w = pick(ws);
      return `${w}"${pick(keys)}"${w}:${w}${pick(atoms)}${w}`;
    });
    const envelope = `"envelope":{${fields.join(",")}}`;
    const others = Array.from(
      { length: rnd(3) },
      () => `"${pick(["p", "q", "envelope"])}":${pick(atoms)}`,
    );
    const members = [...others];
    members.splice(rnd(others.length + 1), 0, envelope);
    const text = `{${members.join(",")}}`;
    const p = parsePacket(text);
    if (p === null) continue; // a later "envelope" that is no object
    assert.equal(stampCt(text, p.envelope, 7), stampPacket(text, p.envelope, 7), text);
    if (text.startsWith('{"envelope":{"') && !text.includes('"ct"')) compact++;
    stamped++;
  }
  assert.ok(stamped > 2000 && compact > 300, `${stamped} stamped, ${compact} compact`);
});

Deno.test("server-built packets have exactly the documented shapes", () => {
  assert.deepEqual(JSON.parse(serverAck("m1", 42)), {
    envelope: { id: "m1", type: 3, ct: "42" },
    vsn: "0.0.1",
  });
  assert.deepEqual(JSON.parse(notice("m2", "bad_to")), {
    envelope: { id: "m2", type: 4 },
    entity: { result: "sys_notify", reason: "bad_to" },
    vsn: "0.0.1",
  });
  assert.deepEqual(JSON.parse(loginError("L", "fail_type")), {
    envelope: { id: "L", type: 0 },
    entity: { result: "error", reason: "fail_type" },
  });
  assert.deepEqual(JSON.parse(loginOk("L", [])).delay, { total: 0 });
  assert.deepEqual(JSON.parse(loginOk("L", ['{"envelope":{"id":"a"}}'])).delay, {
    total: 1,
    packets: [{ envelope: { id: "a" } }],
  });
  assert.match(JSON.parse(notice(undefined, "x")).envelope.id, /^[0-9a-f-]{36}$/);
});
