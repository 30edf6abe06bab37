// Tests of the Thrift push listener: calls through the library client, hand-encoded frames
// over raw TCP (wire compatibility and faults), startup errors and shutdown.

import assert from "node:assert/strict";
import { MAX_FRAME_BYTES, type PushHandler, startThriftPush } from "../../src/rpc/thrift_push.ts";
import { ThriftApplicationError } from "../../src/rpc/thrift/runtime.ts";
import { AcceptGuard } from "../../src/transports/accept_guard.ts";
import { silentLogger } from "../../src/log.ts";
import { thriftProcess, thriftProcessBatch } from "../helpers/thrift_client.ts";

const LICENCE = "licence-that-must-never-be-logged";
const guard = new AcceptGuard(silentLogger(), () => {});
const idleMs = 60_000;

interface Fake {
  handler: PushHandler;
  calls: [string, string, (string | null)[]][];
}

function fakeHandler(answer = "success"): Fake {
  const calls: Fake["calls"] = [];
  return {
    calls,
    handler: (licence, sn, contents) => {
      calls.push([licence, sn, contents]);
      return Promise.resolve(answer);
    },
  };
}

/** Runs `body` against a listener on a free port; checks no log line holds the licence. */
async function withPush(
  handler: PushHandler,
  body: (port: number, logs: string[]) => Promise<void>,
): Promise<void> {
  const logs: string[] = [];
  const push = startThriftPush({
    hostname: "127.0.0.1",
    port: 0,
    handler,
    guard,
    idleMs,
    log: (level, msg) => logs.push(`${level} ${msg}`),
  });
  try {
    await body(push.port, logs);
  } finally {
    await push.close();
  }
  assert.ok(logs.every((line) => !line.includes(LICENCE)), logs.join("\n"));
}

// Hand encoding of the framed binary protocol, independent of the library under test.
const enc = new TextEncoder();

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function i32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, n);
  return b;
}

function str(s: string): Uint8Array {
  const bytes = enc.encode(s);
  return concat(i32(bytes.length), bytes);
}

function fieldHeader(type: number, id: number): Uint8Array {
  return new Uint8Array([type, id >> 8, id & 0xff]);
}

/** A framed strict-binary CALL of `name` whose argument struct holds `fields`. */
function callFrame(name: string, seqid: number, ...fields: Uint8Array[]): Uint8Array {
  const body = concat(i32(0x80010001), str(name), i32(seqid), ...fields, new Uint8Array([0]));
  return concat(i32(body.length), body);
}

function stringField(id: number, value: string): Uint8Array {
  return concat(fieldHeader(11, id), str(value));
}

function stringListField(id: number, values: string[]): Uint8Array {
  return concat(fieldHeader(15, id), new Uint8Array([11]), i32(values.length), ...values.map(str));
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}

/** Reads exactly `n` bytes; null when the peer closes first. */
async function readExactly(conn: Deno.Conn, n: number): Promise<Uint8Array | null> {
  const out = new Uint8Array(n);
  for (let at = 0; at < n;) {
    const got = await conn.read(out.subarray(at));
    if (got === null) return null;
    at += got;
  }
  return out;
}

/** Reads one reply frame and decodes it; fails when the server closes first. */
async function readReply(conn: Deno.Conn): Promise<Reply> {
  const head = await readExactly(conn, 4);
  const body = head && await readExactly(conn, new DataView(head.buffer).getInt32(0));
  assert.ok(body, "the server closed the connection instead of answering");
  return parseReply(body);
}

/** True once the server has closed the connection (EOF or reset). */
async function closedByServer(conn: Deno.Conn): Promise<boolean> {
  try {
    return await conn.read(new Uint8Array(64)) === null;
  } catch (err) {
    return err instanceof Deno.errors.ConnectionReset;
  }
}

/**
 * Runs `body` with a raw TCP connection to the listener. The connection closes itself after
 * 10 s, so a server that never answers or never closes fails the test instead of hanging it.
 */
async function withRawConn(port: number, body: (conn: Deno.Conn) => Promise<void>) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  let open = true;
  const guard = setTimeout(() => {
    open = false;
    conn.close();
  }, 10_000);
  try {
    await body(conn);
  } finally {
    clearTimeout(guard);
    if (open) conn.close();
  }
}

/** A decoded reply: message header and the top-level fields of its struct. */
interface Reply {
  /** Version word: 0x80010000 | message type. */
  versionAndType: number;
  name: string;
  seqid: number;
  /** Field id to value; only string and i32 fields occur in replies of this service. */
  fields: Record<number, string | number>;
  /** Bytes left after the struct's STOP. */
  rest: number;
}

function parseReply(body: Uint8Array): Reply {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const dec = new TextDecoder();
  let at = 0;
  const readI32 = () => (at += 4, view.getInt32(at - 4));
  const readStr = () => {
    const len = readI32();
    at += len;
    return dec.decode(body.subarray(at - len, at));
  };
  const version = readI32();
  const name = readStr();
  const seqid = readI32();
  const fields: Record<number, string | number> = {};
  for (let type = body[at++]; type !== 0; type = body[at++]) {
    const id = view.getInt16(at);
    at += 2;
    fields[id] = type === 11 ? readStr() : readI32();
  }
  return { versionAndType: version >>> 0, name, seqid, fields, rest: body.length - at };
}

Deno.test("process hands licence, sn and the one content to the handler and returns its answer", async () => {
  const fake = fakeHandler("success");
  await withPush(fake.handler, async (port) => {
    const content =
      '{"envelope":{"id":"m1","type":1,"from":"a@x","to":"b@x"},"payload":{"content":"hé"}}';
    assert.equal(await thriftProcess(port, LICENCE, "sn-1", content), "success");
    assert.deepEqual(fake.calls, [[LICENCE, "sn-1", [content]]]);
  });
});

Deno.test("process_batch hands the whole list, in order, to the handler and returns its answer", async () => {
  const fake = fakeHandler("batch done");
  await withPush(fake.handler, async (port) => {
    const contents = ['{"n":1}', "", '{"n":3,"t":"日本"}'];
    assert.equal(await thriftProcessBatch(port, LICENCE, "sn-2", contents), "batch done");
    assert.equal(await thriftProcessBatch(port, LICENCE, "sn-3", []), "batch done");
    assert.deepEqual(fake.calls, [[LICENCE, "sn-2", contents], [LICENCE, "sn-3", []]]);
  });
});

Deno.test("a hand-encoded framed binary call gets a framed REPLY carrying the answer in field 0", async () => {
  const fake = fakeHandler("success");
  await withPush(fake.handler, async (port) => {
    await withRawConn(port, async (conn) => {
      const args = [stringField(1, LICENCE), stringField(2, "s"), stringListField(3, ["a", "b"])];
      await writeAll(conn, callFrame("process_batch", 77, ...args));
      const reply = await readReply(conn);
      assert.deepEqual(reply, {
        versionAndType: 0x80010002,
        name: "process_batch",
        seqid: 77,
        fields: { 0: "success" },
        rest: 0,
      });
      assert.deepEqual(fake.calls, [[LICENCE, "s", ["a", "b"]]]);
    });
  });
});

Deno.test("a content that is not UTF-8 reaches the handler as null, never with its bytes replaced", async () => {
  const fake = fakeHandler("success");
  await withPush(fake.handler, async (port) => {
    await withRawConn(port, async (conn) => {
      const bad = concat(
        enc.encode('{"envelope":{"from":"a'),
        Uint8Array.of(0xff),
        enc.encode('@d"}}'),
      );
      const list = concat(
        fieldHeader(15, 3),
        new Uint8Array([11]),
        i32(2),
        str("ok"),
        concat(i32(bad.length), bad),
      );
      await writeAll(conn, callFrame("process_batch", 5, stringField(1, LICENCE), list));
      assert.deepEqual((await readReply(conn)).fields, { 0: "success" });
      const one = concat(fieldHeader(11, 3), i32(bad.length), bad);
      await writeAll(conn, callFrame("process", 6, stringField(1, LICENCE), one));
      assert.deepEqual((await readReply(conn)).fields, { 0: "success" });
    });
  });
  assert.deepEqual(fake.calls, [[LICENCE, "", ["ok", null]], [LICENCE, "", [null]]]);
});

Deno.test("calls pipelined on one connection are answered in order with their own seqids", async () => {
  const fake = fakeHandler("ok");
  await withPush(fake.handler, async (port) => {
    await withRawConn(port, async (conn) => {
      const first = callFrame("process", 1, stringField(1, LICENCE), stringField(3, "c1"));
      const second = callFrame("process", 2, stringField(1, LICENCE), stringField(3, "c2"));
      await writeAll(conn, concat(first, second));
      assert.equal((await readReply(conn)).seqid, 1);
      assert.equal((await readReply(conn)).seqid, 2);
      assert.deepEqual(fake.calls.map((c) => c[2]), [["c1"], ["c2"]]);
    });
  });
});

Deno.test("garbage on one connection closes only that connection and later calls still work", async () => {
  const fake = fakeHandler("success");
  await withPush(fake.handler, async (port, logs) => {
    const garbage = [
      enc.encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), // announces a frame of ~1.2 GB
      concat(i32(8), new Uint8Array([0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4])), // bad version
      concat(i32(12), i32(0x80010001), i32(100), i32(0)), // name longer than the frame
      callFrame("process_batch", 1, concat(fieldHeader(15, 3), new Uint8Array([8]), i32(1))), // list<i32>
    ];
    // Connected before the garbage arrives: it must survive it.
    await withRawConn(port, async (bystander) => {
      for (const bytes of garbage) {
        await withRawConn(port, async (conn) => {
          await writeAll(conn, bytes);
          assert.ok(await closedByServer(conn));
        });
      }
      await writeAll(bystander, callFrame("process", 5, stringField(3, "after")));
      assert.deepEqual((await readReply(bystander)).fields, { 0: "success" });
    });
    assert.equal(await thriftProcess(port, LICENCE, "sn", "later"), "success");
    assert.equal(logs.filter((l) => l.startsWith("warn thrift push: closing")).length, 4);
    assert.deepEqual(fake.calls.map((c) => c[2]), [["after"], ["later"]]);
  });
});

Deno.test("a frame of exactly 1 MiB is served and a header announcing more closes the connection", async () => {
  const fake = fakeHandler("big ok");
  await withPush(fake.handler, async (port) => {
    const overhead = callFrame("process", 1, stringField(3, "")).length;
    const content = "x".repeat(MAX_FRAME_BYTES + 4 - overhead);
    const exact = callFrame("process", 1, stringField(3, content));
    assert.equal(exact.length, MAX_FRAME_BYTES + 4);
    await withRawConn(port, async (conn) => {
      await writeAll(conn, exact);
      assert.deepEqual((await readReply(conn)).fields, { 0: "big ok" });
      await writeAll(conn, i32(MAX_FRAME_BYTES + 1));
      assert.ok(await closedByServer(conn));
    });
    assert.equal(fake.calls.length, 1);
  });
});

Deno.test("an unknown method gets an UNKNOWN_METHOD exception, then the connection closes", async () => {
  const fake = fakeHandler();
  await withPush(fake.handler, async (port, logs) => {
    await withRawConn(port, async (conn) => {
      await writeAll(conn, callFrame("send", 9, stringField(1, LICENCE)));
      const reply = await readReply(conn);
      assert.equal(reply.versionAndType, 0x80010003);
      assert.equal(reply.seqid, 9);
      assert.equal(reply.fields[2], 1);
      assert.ok(await closedByServer(conn));
    });
    assert.deepEqual(fake.calls, []);
    assert.ok(logs.some((l) => l.startsWith("warn thrift push: closing") && l.includes('"send"')));
    assert.equal(await thriftProcess(port, LICENCE, "sn", "c"), "success");
  });
});

Deno.test("a handler failure reaches the caller as INTERNAL_ERROR without its details", async () => {
  const failing: PushHandler = () => Promise.reject(new Error("store is down"));
  await withPush(failing, async (port, logs) => {
    const err = await thriftProcess(port, LICENCE, "sn", "c").catch((e) => e);
    assert.ok(err instanceof ThriftApplicationError);
    assert.equal(err.type, 6);
    assert.ok(!err.message.includes("store is down"));
    assert.ok(logs.some((l) => l === "error thrift push: process failed: store is down"));
  });
});

Deno.test("startThriftPush throws naming thrift push, host and port when the port is taken", async () => {
  await withPush(fakeHandler().handler, (port) => {
    const handler = fakeHandler().handler;
    const taken = () => startThriftPush({ hostname: "127.0.0.1", port, handler, guard, idleMs });
    assert.throws(taken, (err: Error) => {
      assert.match(
        err.message,
        new RegExp(`^thrift push: cannot listen on 127\\.0\\.0\\.1:${port}: `),
      );
      return true;
    });
    return Promise.resolve();
  });
});

Deno.test("close answers the call in progress, then releases the port", async () => {
  let started!: () => void;
  const inHandler = new Promise<void>((resolve) => started = resolve);
  let release!: (answer: string) => void;
  const handler: PushHandler = () => {
    started();
    return new Promise((resolve) => release = resolve);
  };
  const push = startThriftPush({ hostname: "127.0.0.1", port: 0, handler, guard, idleMs });
  const answer = thriftProcess(push.port, LICENCE, "sn", "c");
  await inHandler;
  const closing = push.close();
  release("success");
  assert.equal(await answer, "success");
  await closing;
  await push.close();

  const again = startThriftPush({
    hostname: "127.0.0.1",
    port: push.port,
    handler: fakeHandler().handler,
    guard,
    idleMs,
  });
  assert.equal(again.port, push.port);
  await again.close();
});

Deno.test("close closes connections that clients keep open while idle", async () => {
  const push = startThriftPush({
    hostname: "127.0.0.1",
    port: 0,
    handler: fakeHandler().handler,
    guard,
    idleMs,
  });
  try {
    await withRawConn(push.port, async (conn) => {
      // One answered call proves the listener has accepted this connection.
      await writeAll(conn, callFrame("process", 1, stringField(3, "c")));
      await readReply(conn);
      await push.close();
      assert.ok(await closedByServer(conn));
    });
  } finally {
    await push.close();
  }
});

Deno.test("a connection idle for idleMs is closed, silent from the start or after an answer; a slow handler does not count", async () => {
  const handler: PushHandler = () => new Promise((r) => setTimeout(() => r("slow but fine"), 600));
  const push = startThriftPush({ hostname: "127.0.0.1", port: 0, handler, guard, idleMs: 300 });
  try {
    await Promise.all([
      withRawConn(push.port, async (silent) => assert.ok(await closedByServer(silent))),
      withRawConn(push.port, async (conn) => {
        await writeAll(conn, callFrame("process", 1, stringField(3, "c")));
        assert.deepEqual((await readReply(conn)).fields, { 0: "slow but fine" });
        assert.ok(await closedByServer(conn));
      }),
    ]);
  } finally {
    await push.close();
  }
});
