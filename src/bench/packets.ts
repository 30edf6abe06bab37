// Packet texts the load tool sends (docs/protocol.md §2-§5), built as strings: ids and
// jids are the tool's own (no characters that need escaping), so templates
// are cheaper than JSON.stringify on the hot path.

/** Login (type 0). */
export function loginPacket(id: string, jid: string, pwd: string): string {
  return `{"envelope":{"id":"${id}","type":0,"jid":"${jid}","pwd":${
    JSON.stringify(pwd)
  }},"vsn":"0.0.1"}`;
}

/** A 1:1 chat message (type 1), asking for a server ack. */
export function chatPacket(id: string, from: string, to: string, content: string): string {
  return `{"envelope":{"id":"${id}","type":1,"from":"${from}","to":"${to}","ack":1},"payload":{"content":"${content}"},"vsn":"0.0.1"}`;
}

/** A group message (type 2) to `gid`. */
export function groupPacket(id: string, from: string, gid: string, content: string): string {
  return `{"envelope":{"id":"${id}","type":2,"from":"${from}","gid":"${gid}","ack":1},"payload":{"content":"${content}"},"vsn":"0.0.1"}`;
}

/** A client ack (type 3 to server_ack) of packet `id`. */
export function ackPacket(id: string, from: string): string {
  return `{"envelope":{"id":"${id}","type":3,"from":"${from}","to":"server_ack"},"vsn":"0.0.1"}`;
}

/** Padding of `n` bytes for message payloads. */
export function padding(n: number): string {
  return "a".repeat(Math.max(0, n));
}
