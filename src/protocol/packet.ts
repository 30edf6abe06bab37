// Packet shapes of PROTOCOL 2 and the answers the server builds. Pure: no I/O.
// Forwarded packets keep every field as sent; only `ct` is stamped.

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

/** Message types the server treats specially (PROTOCOL 2). */
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

/** `envelope.type` as an integer; SDKs send numbers, some old ones digit strings. */
export function typeOf(t: unknown): number | null {
  if (typeof t === "number") return Number.isInteger(t) ? t : null;
  if (typeof t === "string" && /^\d+$/.test(t)) return Number(t);
  return null;
}

/** Nesting deeper than this is refused: no client needs it, and it costs CPU to parse. */
export const MAX_DEPTH = 512;
// Deep nesting needs many bytes: packets shorter than this cannot be costly.
const DEPTH_CHECK_FROM = 4096;

/** True when `text` nests arrays/objects deeper than `max` (strings skipped). */
export function nestsDeeper(text: string, max: number): boolean {
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

/**
 * Parses a packet; null when it is not a JSON object with an object
 * `envelope`, or when it nests deeper than MAX_DEPTH.
 */
export function parsePacket(text: string): Packet | null {
  if (text.length > DEPTH_CHECK_FROM && nestsDeeper(text, MAX_DEPTH)) return null;
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

/** Sets `ct` and serialises; every other field stays as sent. Null if it cannot be serialised. */
export function stampPacket(packet: Packet, ct: number): string | null {
  packet.envelope.ct = String(ct);
  try {
    return JSON.stringify(packet);
  } catch {
    // Nesting too deep for the serialiser: the packet cannot be forwarded.
    return null;
  }
}

const ENVELOPE_FIRST = '{"envelope":{';

/**
 * A serialised packet with `"carbon":true` added to its envelope. A packet
 * whose text starts with its envelope (what SDKs send) gets the field spliced
 * in; any other (or one that names "carbon" already) is parsed and
 * serialised once more.
 */
export function carbonPacket(text: string): string {
  // A client's own "carbon" field would come later and win: parse then.
  if (text.startsWith(ENVELOPE_FIRST) && !text.includes('"carbon"')) {
    const rest = text.slice(ENVELOPE_FIRST.length);
    return `${ENVELOPE_FIRST}"carbon":true${rest.startsWith("}") ? "" : ","}${rest}`;
  }
  const p = JSON.parse(text) as Packet;
  p.envelope.carbon = true;
  return JSON.stringify(p);
}

/** A fresh packet id for server-made packets. */
export function newId(): string {
  return crypto.randomUUID();
}

/** Server ack (PROTOCOL 4). */
export function serverAck(id: string, ct: number): string {
  return `{"envelope":{"id":${JSON.stringify(id)},"type":3,"ct":"${ct}"},"vsn":"${VSN}"}`;
}

/** A `sys_notify` notice (PROTOCOL 2). */
export function notice(id: string | undefined, reason: string): string {
  return JSON.stringify({
    envelope: { id: id ?? newId(), type: 4 },
    entity: { result: "sys_notify", reason },
    vsn: VSN,
  });
}

/** Failed login answer (PROTOCOL 3). */
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
