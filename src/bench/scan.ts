// Cheap reads of single fields from a packet's JSON text, without JSON.parse:
// the load tool reads a few envelope fields of every packet it receives, and
// must not become the bottleneck. Fields are found by key, so key order and
// spaces after the colon do not matter.

/** Packs a (stream, sequence) pair into one number: the tool's message tag. */
export function packTag(stream: number, seq: number): number {
  return stream * TAG_SPAN + seq;
}
/** Stream index of a packed tag. */
export function tagStream(tag: number): number {
  return Math.floor(tag / TAG_SPAN);
}
/** Sequence number of a packed tag. */
export function tagSeq(tag: number): number {
  return tag % TAG_SPAN;
}
const TAG_SPAN = 2 ** 32;

const QUOTE = 34; // "
const COLON = 58; // :
const DOT = 46; // .
const ZERO = 48;
const NINE = 57;
const BACKSLASH = 92;

/** Index of the first character of the value of `"key":`, or -1. */
function valueAt(p: string, key: string): number {
  const needle = `"${key}"`;
  let at = p.indexOf(needle);
  while (at !== -1) {
    const i = skipSpace(p, at + needle.length);
    // A string equal to the key is a value, not a key: keep looking.
    if (p.charCodeAt(i) === COLON) return skipSpace(p, i + 1);
    at = p.indexOf(needle, i);
  }
  return -1;
}

function skipSpace(p: string, i: number): number {
  let c = p.charCodeAt(i);
  while (c === 32 || c === 9 || c === 10 || c === 13) c = p.charCodeAt(++i);
  return i;
}

/** Value of the first integer field `key`, or -1 if it is absent or not an integer. */
export function intField(p: string, key: string): number {
  const at = valueAt(p, key);
  if (at === -1) return -1;
  let i = at;
  let n = 0;
  let c = p.charCodeAt(i);
  if (c < ZERO || c > NINE) return -1;
  while (c >= ZERO && c <= NINE) {
    n = n * 10 + (c - ZERO);
    c = p.charCodeAt(++i);
  }
  return n;
}

/** Value of the first string field `key`, or undefined if absent or not a string. */
export function stringField(p: string, key: string): string | undefined {
  const at = valueAt(p, key);
  if (at === -1 || p.charCodeAt(at) !== QUOTE) return undefined;
  const end = p.indexOf('"', at + 1);
  if (end === -1) return undefined;
  const raw = p.slice(at + 1, end);
  // Rare (the tool's ids and jids need no escapes): let JSON.parse decode them.
  return raw.includes("\\") ? stringWithEscapes(p, at) : raw;
}

function stringWithEscapes(p: string, at: number): string | undefined {
  let i = at + 1;
  while (i < p.length) {
    const c = p.charCodeAt(i);
    if (c === BACKSLASH) i += 2;
    else if (c === QUOTE) break;
    else i++;
  }
  try {
    return JSON.parse(p.slice(at, i + 1)) as string;
  } catch {
    return undefined;
  }
}

/**
 * Tag held at the start of the string field `key` ("<stream>.<seq>" and
 * anything after), or -1 if the field is absent or does not start with one.
 */
export function tagField(p: string, key: string): number {
  const at = valueAt(p, key);
  return at === -1 || p.charCodeAt(at) !== QUOTE ? -1 : readTag(p, at + 1);
}

/** Tag at the start of a plain string, or -1. */
export function tagPrefix(text: string): number {
  return readTag(text, 0);
}

function readTag(p: string, i: number): number {
  let stream = 0;
  let c = p.charCodeAt(i);
  if (c < ZERO || c > NINE) return -1;
  while (c >= ZERO && c <= NINE) {
    stream = stream * 10 + (c - ZERO);
    c = p.charCodeAt(++i);
  }
  if (c !== DOT) return -1;
  c = p.charCodeAt(++i);
  if (c < ZERO || c > NINE) return -1;
  let seq = 0;
  while (c >= ZERO && c <= NINE) {
    seq = seq * 10 + (c - ZERO);
    c = p.charCodeAt(++i);
  }
  return seq >= TAG_SPAN ? -1 : packTag(stream, seq);
}
