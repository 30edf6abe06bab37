// Seeded fuzzing of the codec (issue 6.5): stream framing split at random
// points, random bytes, and packet parsing of random and mutated text.

import assert from "node:assert/strict";
import { END, HEARTBEAT, StreamDecoder } from "../../src/protocol/framing.ts";
import { bareJid, parsePacket, stampPacket } from "../../src/protocol/packet.ts";
import { deepJson, mutate, Prng, SEED } from "./_prng.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Feeds `data` to `d` in random pieces (empty ones too). */
function feedSplit(rng: Prng, d: StreamDecoder, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) {
    const n = rng.chance(0.1) ? 0 : 1 + rng.int(rng.chance(0.5) ? 8 : 4096);
    // A fresh buffer per read, reused by the caller afterwards as transports do.
    const chunk = data.slice(off, off + n);
    d.push(chunk);
    chunk.fill(0xee);
    off += n;
  }
}

function validPacket(rng: Prng): string {
  return JSON.stringify({
    envelope: { id: rng.text(12), type: rng.int(8), from: "a@d", to: "b@d" },
    payload: { content: rng.text(rng.chance(0.1) ? 5000 : 40) },
    vsn: "0.0.1",
  });
}

Deno.test(`StreamDecoder returns every packet and heartbeat of a random stream however it is split (seed ${SEED})`, () => {
  const rng = new Prng(SEED);
  for (let run = 0; run < 200; run++) {
    const packets: string[] = [];
    let heartbeats = 0;
    const parts: number[] = [];
    const want: string[] = [];
    let wantBeats = 0;
    for (let i = rng.int(30); i > 0; i--) {
      const kind = rng.int(10);
      if (kind === 0) {
        parts.push(HEARTBEAT, END);
        wantBeats++;
      } else if (kind === 1) {
        parts.push(END); // an empty packet: ignored
      } else {
        const p = validPacket(rng);
        want.push(p);
        parts.push(...enc.encode(p), END);
      }
      // Old clients pad with NULs after a packet.
      if (rng.chance(0.2)) { for (let n = rng.int(4); n >= 0; n--) parts.push(0); }
    }
    const d = new StreamDecoder(65536, {
      packet: (b) => packets.push(dec.decode(b)),
      heartbeat: () => heartbeats++,
      oversize: () => assert.fail("oversize on packets within the limit"),
    });
    feedSplit(rng, d, Uint8Array.from(parts));
    assert.deepEqual(packets, want, `run ${run}`);
    assert.equal(heartbeats, wantBeats, `run ${run}`);
    assert.equal(d.pending, 0);
  }
});

Deno.test(`StreamDecoder on random bytes emits only packets within the limit and nothing after oversize (seed ${SEED})`, () => {
  const rng = new Prng(SEED + 1);
  for (let run = 0; run < 300; run++) {
    const max = 1 + rng.int(300);
    let over = false;
    const d = new StreamDecoder(max, {
      packet: (b) => {
        assert.ok(!over, "packet after oversize");
        assert.ok(b.length > 0 && b.length <= max, `packet of ${b.length} > ${max}`);
        assert.ok(!b.includes(END), "packet holds 0x01");
      },
      heartbeat: () => assert.ok(!over, "heartbeat after oversize"),
      oversize: () => {
        assert.ok(!over, "oversize twice");
        over = true;
      },
    });
    // Mostly random bytes, with 0x01 frequent enough to cut packets.
    const data = rng.bytes(rng.int(4000)).map((b) => (b < 20 ? END : b));
    feedSplit(rng, d, data);
    assert.ok(d.pending <= max);
  }
});

Deno.test(`parsePacket, stampPacket and bareJid never throw on random, truncated and mutated text (seed ${SEED})`, () => {
  const rng = new Prng(SEED + 2);
  for (let run = 0; run < 3000; run++) {
    const valid = validPacket(rng);
    // Deep nesting is rare: each such packet costs milliseconds.
    const depth = rng.chance(0.03) ? 1 + rng.int(20000) : 1 + rng.int(50);
    const text = rng.pick([
      () => dec.decode(rng.bytes(rng.int(200))),
      () => valid.slice(0, rng.int(valid.length)),
      () => mutate(rng, valid),
      () => `{"envelope":${deepJson(depth, rng.chance(0.5))}}`,
      () => `{"envelope":{"id":"x","type":1},"payload":${deepJson(depth, false)}}`,
    ])();
    const p = parsePacket(text);
    if (p !== null) {
      assert.equal(typeof p.envelope, "object");
      assert.ok(p.envelope !== null && !Array.isArray(p.envelope));
      const out = stampPacket(text, p.envelope, 1);
      if (out !== null) {
        assert.deepEqual(JSON.parse(out), { ...p, envelope: { ...p.envelope, ct: "1" } });
      }
      const jid = bareJid(p.envelope.from);
      if (jid !== null) assert.match(jid, /^[^@/\s]+@[^@/\s]+$/);
    }
    const jid = bareJid(mutate(rng, "user@domain/res"));
    if (jid !== null) assert.ok(!jid.includes("/"));
  }
});
