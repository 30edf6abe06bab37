// Finding values inside JSON text without parsing it again: the server
// forwards the bytes a sender wrote (SECURITY.md, input rules), so it slices
// them out of the text rather than serialising a parsed copy, which would
// round numbers beyond 2^53. Pure; every function expects text that
// JSON.parse accepted.

/** Start and end of the value of the last top-level member `key` of a JSON object. */
export function memberSpan(text: string, key: string): [number, number] | null {
  let span: [number, number] | null = null;
  let i = skipWs(text, 0);
  if (text.charCodeAt(i) !== 0x7b) return null; // not an object
  i++;
  for (;;) {
    i = skipWs(text, i);
    if (i >= text.length || text.charCodeAt(i) !== 0x22) return span; // "}"
    const keyEnd = stringEnd(text, i);
    const k = text.slice(i, keyEnd);
    const start = skipWs(text, skipWs(text, keyEnd) + 1);
    const end = valueEnd(text, start);
    // The last one wins, as in JSON.parse; an escaped key is read as JSON reads it.
    if (k.includes("\\") ? JSON.parse(k) === key : k.slice(1, -1) === key) span = [start, end];
    i = skipWs(text, end) + 1; // past "," (or the final "}")
  }
}

/** The text of the last top-level member `key` of a JSON object, or null. */
export function memberText(text: string, key: string): string | null {
  const span = memberSpan(text, key);
  return span && text.slice(span[0], span[1]);
}

/** The text of each element of a JSON array, in order; null when `text` is not an array. */
export function elementTexts(text: string): string[] | null {
  let i = skipWs(text, 0);
  if (text.charCodeAt(i) !== 0x5b) return null;
  const out: string[] = [];
  for (i = skipWs(text, i + 1); i < text.length && text.charCodeAt(i) !== 0x5d;) {
    const end = valueEnd(text, i);
    out.push(text.slice(i, end));
    i = skipWs(text, end);
    if (text.charCodeAt(i) === 0x2c) i = skipWs(text, i + 1);
  }
  return out;
}

function skipWs(text: string, i: number): number {
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
  }
  return i;
}

/** Index after the string starting at `i` (its opening quote). */
function stringEnd(text: string, i: number): number {
  // The native indexOf jumps to each quote; a quote after an odd run of
  // backslashes is escaped.
  for (let q = text.indexOf('"', i + 1); q !== -1; q = text.indexOf('"', q + 1)) {
    let b = q;
    while (text.charCodeAt(b - 1) === 0x5c) b--;
    if ((q - b) % 2 === 0) return q + 1;
  }
  return text.length;
}

/** Index after the JSON value starting at `i`. */
function valueEnd(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if (c === 0x22) return stringEnd(text, i);
  if (c === 0x7b || c === 0x5b) {
    let depth = 0;
    for (; i < text.length; i++) {
      const d = text.charCodeAt(i);
      if (d === 0x22) i = stringEnd(text, i) - 1;
      else if (d === 0x7b || d === 0x5b) depth++;
      else if ((d === 0x7d || d === 0x5d) && --depth === 0) return i + 1;
    }
    return i;
  }
  for (; i < text.length; i++) {
    const d = text.charCodeAt(i);
    if (
      d === 0x2c || d === 0x7d || d === 0x5d || d === 0x20 || d === 0x0a || d === 0x0d || d === 0x09
    ) break;
  }
  return i;
}
