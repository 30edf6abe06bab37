// Packet shapes of docs/protocol.md §2 and the answers the server builds. Pure: no I/O.
// Forwarded packets keep every field as sent; only `ct` is stamped.

import { memberSpan } from "./json_text.ts";

/** The envelope as it arrives: fields are checked before use, unknown ones kept. */
export interface Envelope {
  id?: unknown;
  type?: unknown;
  from?: unknown;
  to?: unknown;
  ack?: unknown;
  ct?: unknown;
  gid?: unknown;
  jid?: unknown;
  pwd?: unknown;
  [key: string]: unknown;
}

/** A packet as it arrives; `payload` is opaque and never looked into. */
export interface Packet {
  envelope: Envelope;
  [key: string]: unknown;
}

/** Message types the server treats specially (docs/protocol.md §2). */
export const Type = { open: 0, chat: 1, group: 2, state: 3, system: 4 } as const;

/** `to` of a client ack. */
export const SERVER_ACK = "server_ack";
/** Protocol version stamped on server-built packets. */
export const VSN = "0.0.1";

const JID_RE = /^[^@/\s]+@[^@/\s]+(\/\S*)?$/;

/** The JID without its resource, or null when it is not a JID. */
export function bareJid(jid: unknown): string | null {
  if (typeof jid !== "string" || !JID_RE.test(jid)) return null;
  const slash = jid.indexOf("/");
  return slash === -1 ? jid : jid.slice(0, slash);
}

/** The resource of a JID that bareJid accepted ("" without one). */
export function resourceOf(jid: string): string {
  const slash = jid.indexOf("/");
  return slash === -1 ? "" : jid.slice(slash + 1);
}

/** `user` of `user@domain`. */
export function userOf(bare: string): string {
  return bare.slice(0, bare.indexOf("@"));
}

/** `domain` of `user@domain`. */
export function domainOf(bare: string): string {
  return bare.slice(bare.indexOf("@") + 1);
}

/** Types are 31-bit: what an SDK's int holds. */
export const MAX_TYPE = 2 ** 31 - 1;

/**
 * `envelope.type` as an integer in 0..MAX_TYPE; SDKs send numbers, some old
 * ones digit strings. Null for anything else.
 */
export function typeOf(t: unknown): number | null {
  const n = typeof t === "number" ? t : typeof t === "string" && /^\d+$/.test(t) ? Number(t) : NaN;
  return Number.isInteger(n) && n >= 0 && n <= MAX_TYPE ? n : null;
}

/** Nesting deeper than this is refused: no client needs it, and it costs CPU to parse. */
export const MAX_DEPTH = 512;

/** True when `text` nests arrays/objects deeper than `max` (strings skipped). */
export function nestsDeeper(text: string, max: number): boolean {
  // Nesting deeper than `max` needs more than `max` opening brackets (so more
  // than `max` characters): the length settles most packets, counting them
  // with the native indexOf nearly all the others, without the scan.
  if (text.length <= max) return false;
  if (count(text, "{", max) + count(text, "[", max) <= max) return false;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
  return false;
}

/** Occurrences of `ch` in `text`, counted up to `max + 1`. */
function count(text: string, ch: string, max: number): number {
  let n = 0;
  for (let i = text.indexOf(ch); i !== -1 && n <= max; i = text.indexOf(ch, i + 1)) n++;
  return n;
}

/**
 * Parses a packet; null when it is not a JSON object with an object
 * `envelope`, or when it nests deeper than MAX_DEPTH.
 */
export function parsePacket(text: string): Packet | null {
  // Every packet: a short one may still nest too deep for the serialiser of a peer.
  if (nestsDeeper(text, MAX_DEPTH)) return null;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  const env = (value as Record<string, unknown>).envelope;
  if (typeof env !== "object" || env === null || Array.isArray(env)) return null;
  return value as Packet;
}

/**
 * `text` (a packet parsePacket accepted) with its envelope replaced by
 * `envelope` stamped with `ct`. Every byte outside the envelope stays as
 * received: payload numbers beyond 2^53 or with many digits are forwarded
 * exactly, where parsing and serialising again would round them. Null if
 * the envelope cannot be serialised.
 */
export function stampPacket(text: string, envelope: Envelope, ct: number): string | null {
  const span = memberSpan(text, "envelope");
  if (span === null) return null;
  let json: string;
  try {
    json = JSON.stringify({ ...envelope, ct: String(ct) });
  } catch {
    return null;
  }
  return text.slice(0, span[0]) + json + text.slice(span[1]);
}

const ENVELOPE_FIRST = '{"envelope":';

/**
 * stampPacket() of a packet stamped with `ct` only, `envelope` being its
 * parsed envelope: the same bytes, made cheaply for what SDKs send, a
 * compact envelope first and no `ct`. Such an envelope serialises back to
 * its own bytes, so `"ct"` is spliced in before its closing brace without
 * walking the rest of the packet: no later key can be another "envelope"
 * when the rest holds neither that word nor a \u escape.
 */
export function stampCt(text: string, envelope: Envelope, ct: number): string | null {
  if (envelope.ct === undefined && text.startsWith(ENVELOPE_FIRST)) {
    let json: string;
    try {
      json = JSON.stringify(envelope);
    } catch {
      return null;
    }
    const at = ENVELOPE_FIRST.length + json.length - 1;
    if (
      text.startsWith(json, ENVELOPE_FIRST.length) && text.indexOf("envelope", at) === -1 &&
      text.indexOf("\\u", at) === -1
    ) {
      return text.slice(0, at) + (json.length > 2 ? ',"ct":"' : '"ct":"') + ct + '"' +
        text.slice(at);
    }
  }
  return stampPacket(text, envelope, ct);
}

/** A fresh packet id for server-made packets. */
export function newId(): string {
  return crypto.randomUUID();
}

/** Server ack (docs/protocol.md §4). */
export function serverAck(id: string, ct: number): string {
  return `{"envelope":{"id":${JSON.stringify(id)},"type":3,"ct":"${ct}"},"vsn":"${VSN}"}`;
}

/** A `sys_notify` notice (docs/protocol.md §2). */
export function notice(id: string | undefined, reason: string): string {
  return JSON.stringify({
    envelope: { id: id ?? newId(), type: 4 },
    entity: { result: "sys_notify", reason },
    vsn: VSN,
  });
}

/** Failed login answer (docs/protocol.md §3). */
export function loginError(id: string | undefined, reason: string): string {
  return JSON.stringify({
    envelope: { id: id ?? newId(), type: 0 },
    entity: { result: "error", reason },
  });
}

/**
 * Successful login answer. `stored` are packets already serialised: they are
 * spliced in as they are, not parsed again.
 */
export function loginOk(id: string, stored: readonly string[]): string {
  const delay = stored.length === 0
    ? `{"total":0}`
    : `{"total":${stored.length},"packets":[${stored.join(",")}]}`;
  return `{"envelope":{"id":${
    JSON.stringify(id)
  },"type":0},"entity":{"result":"ok"},"delay":${delay},"vsn":"${VSN}"}`;
}
