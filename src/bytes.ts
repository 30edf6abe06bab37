// Byte helpers shared by the transports, the HTTP body reader and tests.

/** One array holding `chunks` in order; the chunk itself when there is only one. */
export function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  let len = 0;
  for (const c of chunks) len += c.length;
  const out = new Uint8Array(len);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

const loose = new TextDecoder();
const strict = new TextDecoder("utf-8", { fatal: true });

/**
 * `bytes` as UTF-8 text, or null when they are not valid UTF-8 (refused,
 * never replaced: two different byte strings must not become one text).
 * The replacing decoder is several times faster than the fatal one; its
 * output is the fatal one's whenever it holds no U+FFFD, which invalid
 * input always produces. Only text with a U+FFFD (invalid, or a real one)
 * is decoded again strictly.
 */
export function decodeUtf8(bytes: Uint8Array): string | null {
  const text = loose.decode(bytes);
  if (text.indexOf("\uFFFD") === -1) return text;
  try {
    return strict.decode(bytes);
  } catch {
    return null;
  }
}
