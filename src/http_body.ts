// Reading an HTTP body with a byte limit, shared by the RPC server and the
// callback client: a body over the limit is cancelled, never buffered whole.

import { concatBytes } from "./bytes.ts";

/**
 * Reads `body` into one buffer; null (and the stream cancelled) as soon as it
 * passes `limit` bytes, so memory stays bounded by the limit plus one chunk.
 */
export async function readLimited(
  body: ReadableStream<Uint8Array> | null,
  limit: number,
): Promise<Uint8Array | null> {
  if (body === null) return new Uint8Array(0);
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > limit) {
        await reader.cancel().catch(() => {});
        return null;
      }
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  return concatBytes(chunks);
}
