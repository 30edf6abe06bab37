// The push API (docs/protocol.md §6): packets a backend hands in over HTTP RPC or
// Thrift are checked like a client's and routed through the same path, so
// each is delivered or stored exactly as if its `from` had sent it.

import type { NoticeReason } from "../errors.ts";
import { errMsg, type Logger } from "../log.ts";
import { bareJid, parsePacket, SERVER_ACK, Type, typeOf } from "../protocol/packet.ts";
import { routeChat, type Routed, routeGroup, type Routing } from "../session/messages.ts";

/** What the push API works with: the routing every session uses, and a logger. */
export interface PushDeps extends Routing {
  readonly log: Logger;
}

/** One refused packet of a push call: its position and a notice reason (docs/protocol.md §2). */
export interface Rejected {
  index: number;
  reason: NoticeReason;
}

/** What a push call did: the entity of its RPC answer. */
export interface PushResult {
  accepted: number;
  rejected: Rejected[];
}

/**
 * Routes `contents` (packet JSON texts; anything else is refused) in order. A packet counts
 * as accepted once the server has taken responsibility for it (the moment a
 * client would get its server ack); a bad one never stops the others.
 */
export async function pushPackets(
  core: PushDeps,
  contents: readonly unknown[],
): Promise<PushResult> {
  const rejected: Rejected[] = [];
  const taken: { index: number; safe: Promise<unknown> }[] = [];
  for (const [index, content] of contents.entries()) {
    let r: Routed | NoticeReason;
    try {
      r = await route(core, content);
    } catch (err) {
      core.log.error(`push: cannot route packet ${index}: ${errMsg(err)}`);
      r = "store_error";
    }
    if (typeof r === "string") rejected.push({ index, reason: r });
    else taken.push({ index, safe: r.safe });
  }
  const settled = await Promise.allSettled(taken.map((t) => t.safe));
  for (const [i, s] of settled.entries()) {
    if (s.status === "rejected") rejected.push({ index: taken[i]!.index, reason: "store_error" });
  }
  rejected.sort((a, b) => a.index - b.index);
  return { accepted: contents.length - rejected.length, rejected };
}

/** Checks one pushed packet and hands it to the router; group lookups are awaited for order. */
function route(
  core: Routing,
  content: unknown,
): Routed | NoticeReason | Promise<Routed | NoticeReason> {
  if (typeof content !== "string") return "bad_packet";
  // Checked like a client's packet (nesting included), then forwarded as sent.
  const text = content;
  const p = parsePacket(text);
  if (p === null) return "bad_packet";
  const env = p.envelope;
  const type = typeOf(env.type);
  if (typeof env.id !== "string" || type === null || type === Type.open) return "bad_packet";
  // Acks concern a session's own inbox; nobody may ack for a user from outside.
  if (type === Type.state && env.to === SERVER_ACK) return "bad_packet";
  const sender = bareJid(env.from);
  if (sender === null) return "bad_from";
  if (type === Type.group) return routeGroup(core, sender, text, p, env.id);
  return routeChat(core, sender, text, p, env.id, type);
}
