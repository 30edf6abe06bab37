// Endpoint parsing: loopback only, and source addresses for many connections.

import assert from "node:assert/strict";
import {
  isLoopback,
  parseEndpoint,
  parseEndpoints,
  sourceAddresses,
} from "../../src/bench/addr.ts";

Deno.test("parseEndpoint() accepts loopback host:port forms", () => {
  assert.deepEqual(parseEndpoint("127.0.0.1:4222"), { host: "127.0.0.1", port: 4222 });
  assert.deepEqual(parseEndpoint("localhost:1"), { host: "127.0.0.1", port: 1 });
  assert.deepEqual(parseEndpoint("[::1]:5"), { host: "::1", port: 5 });
  assert.deepEqual(parseEndpoint("4222"), { host: "127.0.0.1", port: 4222 });
  assert.deepEqual(parseEndpoint("127.9.8.7:80"), { host: "127.9.8.7", port: 80 });
});

Deno.test("parseEndpoint() refuses addresses that are not loopback", () => {
  for (const a of ["10.0.0.1:4222", "0.0.0.0:4222", "example.com:80", "128.0.0.1:1"]) {
    assert.throws(() => parseEndpoint(a), /loopback/, a);
  }
  assert.equal(isLoopback("127.0.0.256"), false);
});

Deno.test("parseEndpoint() refuses a malformed port", () => {
  for (const a of ["127.0.0.1:", "127.0.0.1:0", "127.0.0.1:70000", "127.0.0.1:x"]) {
    assert.throws(() => parseEndpoint(a), /host:port/, a);
  }
});

Deno.test("parseEndpoints() splits a comma-separated list", () => {
  assert.deepEqual(parseEndpoints("127.0.0.1:1,127.0.0.1:2").map((e) => e.port), [1, 2]);
  assert.throws(() => parseEndpoints(","), /empty/);
});

Deno.test("sourceAddresses() adds 127.0.0.x only when one address lacks ports", () => {
  assert.deepEqual(sourceAddresses("", 10, 50), []);
  assert.deepEqual(sourceAddresses("", 120, 50), ["127.0.0.1", "127.0.0.2", "127.0.0.3"]);
});

Deno.test("sourceAddresses() validates an explicit list", () => {
  assert.deepEqual(sourceAddresses("127.0.0.2, 127.0.0.3", 10, 50), ["127.0.0.2", "127.0.0.3"]);
  assert.throws(() => sourceAddresses("10.1.1.1", 10, 50), /Refusing source address/);
});
