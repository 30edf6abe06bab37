// Cheap field reads of packet text: key order, spaces, escapes and tags.

import assert from "node:assert/strict";
import {
  intField,
  packTag,
  stringField,
  tagField,
  tagPrefix,
  tagSeq,
  tagStream,
} from "../../src/bench/scan.ts";

Deno.test("intField() finds a field whatever the key order and spaces", () => {
  assert.equal(intField('{"envelope":{"id":"1.2","type":3,"ct":"9"}}', "type"), 3);
  assert.equal(intField('{"envelope": {"ct": "9", "type" : 12, "id": "x"}}', "type"), 12);
  assert.equal(intField('{"envelope":{"id":"a","ack":1}}', "ack"), 1);
});

Deno.test("intField() returns -1 for a missing or non-integer field", () => {
  assert.equal(intField('{"envelope":{"id":"a"}}', "ack"), -1);
  assert.equal(intField('{"envelope":{"ack":"1"}}', "ack"), -1);
});

Deno.test("stringField() skips a string value equal to the key", () => {
  assert.equal(stringField('{"to":"id","id":"m7"}', "id"), "m7");
  assert.equal(stringField('{"gid":"g1","id":"m8"}', "id"), "m8");
});

Deno.test("stringField() decodes escapes and rejects non-strings", () => {
  assert.equal(stringField('{"id":"a\\"b\\\\c"}', "id"), 'a"b\\c');
  assert.equal(stringField('{"id":7}', "id"), undefined);
  assert.equal(stringField('{"x":"y"}', "id"), undefined);
});

Deno.test("tagField() reads stream and sequence from the start of a string", () => {
  const tag = tagField('{"payload":{"content":"12.345.aaaa"}}', "content");
  assert.deepEqual([tagStream(tag), tagSeq(tag)], [12, 345]);
  assert.equal(tagField('{"content":"hello"}', "content"), -1);
  assert.equal(tagField('{"content":"12"}', "content"), -1);
  assert.equal(tagField('{"content":12.3}', "content"), -1);
});

Deno.test("tagPrefix() reads a tag at the start of plain text", () => {
  assert.equal(tagPrefix("3.4"), packTag(3, 4));
  assert.equal(tagPrefix("x3.4"), -1);
});

Deno.test("packTag() round-trips large streams and sequences", () => {
  const tag = packTag(99_999, 4_000_000_000);
  assert.deepEqual([tagStream(tag), tagSeq(tag)], [99_999, 4_000_000_000]);
});
