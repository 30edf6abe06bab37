// The per-user session set of multi_login (src/devices.ts): replacement by
// resource, the max_sessions bound, counts.

import assert from "node:assert/strict";
import { Devices } from "../../src/session/devices.ts";

const dev = (jid: string, resource: string, sid: string) => ({ jid, resource, sid });

Deno.test("a session of the same resource is replaced, others stay", () => {
  const d = new Devices<ReturnType<typeof dev>>();
  const phone = dev("b@d", "phone", "1"), desk = dev("b@d", "desk", "2");
  assert.deepEqual(d.attach(phone, 5), []);
  assert.deepEqual(d.attach(desk, 5), []);
  const phone2 = dev("b@d", "phone", "3");
  assert.deepEqual(d.attach(phone2, 5), [phone]);
  assert.deepEqual(d.of("b@d"), [desk, phone2]);
  assert.equal(d.detach(phone), false, "a replaced session is gone already");
  assert.deepEqual([d.sessions, d.users], [2, 1]);
});

Deno.test("beyond max the oldest sessions go; null means no bound here", () => {
  const d = new Devices<ReturnType<typeof dev>>();
  const all = [0, 1, 2].map((i) => dev("b@d", `r${i}`, `${i}`));
  d.attach(all[0]!, 2);
  d.attach(all[1]!, 2);
  assert.deepEqual(d.attach(all[2]!, 2), [all[0]]);
  assert.deepEqual(d.attach(dev("b@d", "r3", "3"), null), []);
  assert.equal(d.sessions, 3);
  assert.equal(d.bySid("b@d", "2"), all[2]);
  assert.equal(d.find("b@d", "r1"), all[1]);
});

Deno.test("users and sessions are counted apart and emptied users vanish", () => {
  const d = new Devices<ReturnType<typeof dev>>();
  const a = dev("a@d", "", "1"), b1 = dev("b@d", "1", "2"), b2 = dev("b@d", "2", "3");
  for (const x of [a, b1, b2]) d.attach(x, 5);
  assert.deepEqual([d.sessions, d.users], [3, 2]);
  d.detach(b1);
  d.detach(b2);
  assert.deepEqual([d.sessions, d.users], [1, 1]);
  assert.equal(d.of("b@d"), undefined);
});
