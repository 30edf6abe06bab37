// What nodes say to each other over Redis pub/sub (one PUBLISH to the target
// node's channel carries a batch): deliveries, kicks of older logins,
// blacklist changes and their confirmations. Decoding checks every field: a
// bad message is dropped, a batch whose framing is broken is dropped whole,
// and nothing is ever thrown.
//
// Wire form of a batch: a JSON array of headers, a newline, then the packets
// of the "msg" headers back to back, each header giving its packet's length
// (in UTF-16 code units, as JavaScript strings count). Packets are forwarded
// as received: they are never escaped into, nor parsed out of, JSON.

import { errMsg, type Logger } from "../log.ts";
import type { InboxEntry } from "../store/store.ts";

/** One message between nodes. */
export type NodeMessage =
  /**
   * Deliver `e`; `a`: the packet asks for acks; `s`: the sender's node stored
   * it already. With `h`, a hand-off: node `h.o` waits for a "took" answer
   * naming `h.r`; `h.l` names the sending node's lane (one recipient), and
   * `h.q` numbers its packets from 1 (absent from nodes of older versions). With
   * multi_login, `r`: for the session of that resource; `x`: a carbon for
   * every session of `e.user` but the sending one, `x`.
   */
  | { t: "msg"; e: InboxEntry; a: boolean; s: boolean; h?: HandOff; r?: string; x?: string }
  /** Close the session `sid` of `jid`: a newer login replaced it. */
  | { t: "kick"; jid: string; sid: string }
  /**
   * `owner` blocked (b true) or unblocked `jid`; with `from` and `ref`, node
   * `from` waits for an "applied" answer naming `ref`.
   */
  | { t: "block"; owner: string; jid: string; b: boolean; from?: string; ref?: string }
  /** The blacklist change `ref` is in force on the node that answers. */
  | { t: "applied"; ref: string }
  /** The hand-off `r` is safe on the node that answers (ok), or was refused there. */
  | { t: "took"; r: string; ok: boolean }
  /**
   * The hand-offs of the receiver's lane `l` numbered `q` and later are not
   * taken: `q` never came, and what came after it out of turn was dropped.
   */
  | { t: "gap"; l: string; q: number }
  /**
   * Node `o` did not listen on its channel for a while (its subscription
   * dropped): whatever was handed off to it and is still waiting may be lost
   * (not `n`: that names a packet's length in a batch header).
   */
  | { t: "deaf"; o: string };

/** Who waits for a hand-off's answer, under which reference, for which lane, at which place in it. */
export interface HandOff {
  o: string;
  r: string;
  l: string;
  q?: number;
}

/** A decoded batch: its messages in order, and how many bad ones were dropped. */
export interface DecodedBatch {
  messages: NodeMessage[];
  dropped: number;
}

/** The wire form of a batch of messages, in order. */
export function encodeBatch(batch: readonly NodeMessage[]): string {
  const headers: unknown[] = [];
  const packets: string[] = [];
  for (const m of batch) {
    if (m.t !== "msg") {
      headers.push(m);
      continue;
    }
    const e = m.e;
    const h: Record<string, unknown> = {
      t: "msg",
      u: e.user,
      i: e.id,
      f: e.from,
      y: e.type,
      c: e.ct,
      a: m.a,
      s: m.s,
      n: e.packet.length,
    };
    // Set only when present (no spread temporaries: this runs for every forwarded packet).
    if (m.h) {
      h.ho = m.h.o;
      h.hr = m.h.r;
      h.hl = m.h.l;
      h.hq = m.h.q;
    }
    if (m.r !== undefined) h.r = m.r;
    if (m.x !== undefined) h.x = m.x;
    headers.push(h);
    packets.push(e.packet);
  }
  return `${JSON.stringify(headers)}\n${packets.join("")}`;
}

/**
 * A batch from its wire form; null when its framing is broken (not a header
 * array, or packet lengths that do not add up to what follows). A header
 * that frames correctly but is otherwise malformed drops only its message.
 */
export function decodeBatch(text: string): DecodedBatch | null {
  const nl = text.indexOf("\n");
  if (nl === -1) return null;
  let headers: unknown;
  try {
    headers = JSON.parse(text.slice(0, nl));
  } catch {
    return null;
  }
  if (!Array.isArray(headers)) return null;
  const messages: NodeMessage[] = [];
  let dropped = 0;
  let at = nl + 1;
  for (const h of headers) {
    const n = (h as { n?: unknown } | null)?.n;
    if (n !== undefined) {
      // The length frames the next packet: without a sane one nothing after it can be trusted.
      if (!Number.isSafeInteger(n) || (n as number) < 0 || at + (n as number) > text.length) {
        return null;
      }
      const packet = text.slice(at, at += n as number);
      const m = msgOf(h as Record<string, unknown>, packet);
      if (m) messages.push(m);
      else dropped++;
      continue;
    }
    const m = controlOf(h);
    if (m) messages.push(m);
    else dropped++;
  }
  return at === text.length ? { messages, dropped } : null;
}

function msgOf(h: Record<string, unknown>, packet: string): NodeMessage | null {
  if (
    h.t !== "msg" || typeof h.u !== "string" || typeof h.i !== "string" ||
    typeof h.f !== "string" || typeof h.y !== "number" || typeof h.c !== "number" ||
    typeof h.a !== "boolean" || typeof h.s !== "boolean"
  ) return null;
  const e: InboxEntry = { user: h.u, id: h.i, from: h.f, type: h.y, ct: h.c, packet };
  const m: NodeMessage = { t: "msg", e, a: h.a, s: h.s };
  if (h.r !== undefined) {
    if (typeof h.r !== "string") return null;
    m.r = h.r;
  }
  if (h.x !== undefined) {
    if (typeof h.x !== "string") return null;
    m.x = h.x;
  }
  if (h.ho === undefined && h.hr === undefined && h.hl === undefined) return m;
  if (typeof h.ho !== "string" || typeof h.hr !== "string" || typeof h.hl !== "string") return null;
  m.h = { o: h.ho, r: h.hr, l: h.hl };
  if (h.hq === undefined) return m;
  if (!Number.isSafeInteger(h.hq) || (h.hq as number) < 1) return null;
  m.h.q = h.hq as number;
  return m;
}

function controlOf(v: unknown): NodeMessage | null {
  if (typeof v !== "object" || v === null) return null;
  const m = v as Record<string, unknown>;
  switch (m.t) {
    case "kick":
      return typeof m.jid === "string" && typeof m.sid === "string"
        ? { t: "kick", jid: m.jid, sid: m.sid }
        : null;
    case "block": {
      if (typeof m.owner !== "string" || typeof m.jid !== "string" || typeof m.b !== "boolean") {
        return null;
      }
      const block = { t: "block" as const, owner: m.owner, jid: m.jid, b: m.b };
      if (m.from === undefined && m.ref === undefined) return block;
      return typeof m.from === "string" && typeof m.ref === "string"
        ? { ...block, from: m.from, ref: m.ref }
        : null;
    }
    case "applied":
      return typeof m.ref === "string" ? { t: "applied", ref: m.ref } : null;
    case "took":
      return typeof m.r === "string" && typeof m.ok === "boolean"
        ? { t: "took", r: m.r, ok: m.ok }
        : null;
    case "deaf":
      return typeof m.o === "string" ? { t: "deaf", o: m.o } : null;
    case "gap":
      return typeof m.l === "string" && Number.isSafeInteger(m.q) && (m.q as number) >= 1
        ? { t: "gap", l: m.l, q: m.q as number }
        : null;
  }
  return null;
}

/**
 * Wraps `handle` for the subscription: decodes each batch and hands on its
 * messages in order. Nothing thrown escapes (in an ioredis event handler it
 * would end the process), and one message's failure does not stop the rest.
 */
export function batchHandler(
  channel: string,
  log: Logger,
  handle: (m: NodeMessage) => void,
): (text: string) => void {
  return (text) => {
    const batch = decodeBatch(text);
    if (batch === null) {
      log.warn(`cluster: malformed batch on ${channel} dropped (${text.length} chars)`);
      return;
    }
    if (batch.dropped > 0) {
      log.warn(`cluster: ${batch.dropped} malformed messages on ${channel} dropped`);
    }
    for (const m of batch.messages) {
      try {
        handle(m);
      } catch (err) {
        log.error(`cluster: handling a message on ${channel} failed: ${errMsg(err)}`);
      }
    }
  };
}
