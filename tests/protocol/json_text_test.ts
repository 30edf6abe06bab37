// Slicing values out of JSON text: the bytes found are those JSON.parse reads
// for that member or element.

import assert from "node:assert/strict";
import { elementTexts, memberSpan, memberText } from "../../src/protocol/json_text.ts";

Deno.test("memberText() finds the last top-level member, escaped keys and odd spacing included", () => {
  const text = ' { "a" : {"b": [1, "}"]} , "n":12345678901234567890123,"s":"x\\\\" ,"a":[ 2 ] } ';
  assert.equal(memberText(text, "a"), "[ 2 ]");
  assert.equal(memberText(text, "n"), "12345678901234567890123");
  assert.equal(memberText(text, "s"), '"x\\\\"');
  assert.equal(memberText(text, "b"), null); // nested, not top-level
  assert.equal(memberText('{"\\u0063ontent":{"x":1}}', "content"), '{"x":1}');
  assert.equal(memberText("{}", "a"), null);
  assert.equal(memberText("[1]", "a"), null);
  assert.deepEqual(memberSpan('{"envelope":{}}', "envelope"), [12, 14]);
});

Deno.test("elementTexts() gives each element as written, in order", () => {
  assert.deepEqual(elementTexts('[ {"a":"],["} , "x,y",1.50,[[]],null ]'), [
    '{"a":"],["}',
    '"x,y"',
    "1.50",
    "[[]]",
    "null",
  ]);
  assert.deepEqual(elementTexts(" [ ] "), []);
  assert.equal(elementTexts('{"a":1}'), null);
});
