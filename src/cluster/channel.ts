// What nodes say to each other over Redis pub/sub (plain PUBLISH to the
// target node's channel): a delivery, a kick of an older login, a blacklist
// change and its confirmation. Decoding checks every field: a bad message is
// dropped, never thrown.

import { errMsg, type Logger } from "../log.ts";
import type { InboxEntry } from "../store/store.ts";

/** One message between nodes; short field names keep every delivery small. */
export type NodeMessage =
  /**
   * Deliver `e`; `a`: the packet asks for acks; `s`: the sender's node stored
   * it already. With multi_login, `r`: for the session of that resource;
   * `x`: a carbon for every session of `e.user` but the sending one, `x`.
   */
  | { t: "msg"; e: InboxEntry; a: boolean; s: boolean; r?: string; x?: string }
  /** Close the session `sid` of `jid`: a newer login replaced it. */
  | { t: "kick"; jid: string; sid: string }
  /**
   * `owner` blocked (b true) or unblocked `jid`; with `from` and `ref`, node
   * `from` waits for an "applied" answer naming `ref`.
   */
  | { t: "block"; owner: string; jid: string; b: boolean; from?: string; ref?: string }
  /** The blacklist change `ref` is in force on the node that answers. */
  | { t: "applied"; ref: string };

/** The wire form of a message. */
export function encodeMessage(m: NodeMessage): string {
  return JSON.stringify(m);
}

/** A message from its wire form; null for anything malformed. */
export function decodeMessage(text: string): NodeMessage | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof v !== "object" || v === null) return null;
  const m = v as Record<string, unknown>;
  switch (m.t) {
    case "msg": {
      if (!isEntry(m.e) || typeof m.a !== "boolean" || typeof m.s !== "boolean") return null;
      if (m.r !== undefined && typeof m.r !== "string") return null;
      if (m.x !== undefined && typeof m.x !== "string") return null;
      const msg: NodeMessage = { t: "msg", e: m.e, a: m.a, s: m.s };
      if (m.r !== undefined) msg.r = m.r;
      if (m.x !== undefined) msg.x = m.x;
      return msg;
    }
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
  }
  return null;
}

function isEntry(e: unknown): e is InboxEntry {
  if (typeof e !== "object" || e === null) return false;
  const x = e as Record<string, unknown>;
  return typeof x.user === "string" && typeof x.id === "string" && typeof x.from === "string" &&
    typeof x.type === "number" && typeof x.ct === "number" && typeof x.packet === "string";
}

/**
 * Wraps `handle` for the subscription: decodes each message and hands it
 * on. Nothing thrown escapes: in an ioredis event handler it would end the
 * process.
 */
export function messageHandler(
  channel: string,
  log: Logger,
  handle: (m: NodeMessage) => void,
): (text: string) => void {
  return (text) => {
    try {
      const m = decodeMessage(text);
      if (m === null) log.warn(`cluster: malformed message on ${channel} dropped`);
      else handle(m);
    } catch (err) {
      log.error(`cluster: handling a message on ${channel} failed: ${errMsg(err)}`);
    }
  };
}
