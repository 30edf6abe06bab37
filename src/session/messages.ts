// Routing of one client message (docs/protocol.md §4, §5) from a known sender: duplicate
// suppression, `ct` stamping, 1:1 delivery and group fan-out. Shared by
// sessions and the push API, so a pushed packet goes exactly the same way.

import type { NoticeReason } from "../errors.ts";
import type { InboxEntry } from "../store/store.ts";
import type { InboxWriter } from "../store/inbox_writer.ts";
import type { Router } from "../router.ts";
import type { DedupCache } from "./dedup.ts";
import {
  bareJid,
  domainOf,
  newId,
  type Packet,
  resourceOf,
  stampCt,
  stampPacket,
  Type,
  userOf,
} from "../protocol/packet.ts";

/** Resolves a group's member user names (cache, then callback); null when unknown. */
export type GroupResolver = (gid: string, domain: string) => Promise<string[] | null>;

/** What routing one message uses: the same for a session and for the push API. */
export interface Routing {
  readonly dedup: DedupCache;
  /** `carbon` and `multi` only matter with multi_login (a fake may leave them out). */
  readonly router: Pick<Router, "deliver"> & Partial<Pick<Router, "carbon" | "multi">>;
  /**
   * `sent` records a safe message's id for duplicate suppression after a
   * restart; not called when `keepsSent` is false (a fake may leave it out).
   */
  readonly writer: Pick<InboxWriter, "sent"> & Partial<Pick<InboxWriter, "keepsSent">>;
  readonly groups: GroupResolver;
}

/** A message the server took: `safe` resolves once it may be server-acked. */
export interface Routed {
  /** The sender asked for a server ack (always true for groups). */
  ack: boolean;
  /** Accept time, the `ct` of the server ack. */
  ct: number;
  /** Resolves when written or acked by every recipient; rejects with StoreError. */
  safe: Promise<unknown>;
}

/** True when `ack` asks for acknowledgements (SDKs send 1; be lenient on "1"). */
export function wantsAck(ack: unknown): boolean {
  return ack === 1 || ack === "1" || ack === true;
}

/**
 * Routes a 1:1 message (types 1, 3-7 and unknown) from `sender` (bare JID).
 * Synchronous up to the hand-over to the router, so that messages of one
 * sender keep their order. `origin`: the sid of the sending session, whose
 * user's other sessions get a carbon (multi_login).
 */
export function routeChat(
  core: Routing,
  sender: string,
  text: string,
  p: Packet,
  id: string,
  type: number,
  origin?: string,
): Routed | NoticeReason {
  const to = bareJid(p.envelope.to);
  if (!to) return "bad_to";
  const ack = wantsAck(p.envelope.ack);
  const ct = Date.now();
  if (core.dedup.check(sender, id, ct)) return { ack, ct, safe: core.dedup.firstCopy(sender, id) };
  const packet = stampCt(text, p.envelope, ct);
  if (packet === null) return "bad_packet";
  const entry: InboxEntry = { user: to, id, from: sender, type, ct, packet };
  // A full JID names one session, with multi_login only ("" or none: every one).
  const resource = core.router.multi ? resourceOf(p.envelope.to as string) || undefined : undefined;
  const safe = core.router.deliver(entry, ack, resource);
  if (origin !== undefined) {
    core.router.carbon?.(sender, origin, () => carbonOf(text, p, sender, id, type, ct));
  }
  tracked(core, sender, id, ack, safe);
  return { ack, ct, safe };
}

/**
 * Routes a group message (type 2): members come from the cache or the
 * callback; every other member gets its own copy with a fresh id and ack 1
 * (and, with multi_login, every session of the member; `origin` as in
 * routeChat).
 */
export async function routeGroup(
  core: Routing,
  sender: string,
  text: string,
  p: Packet,
  id: string,
  origin?: string,
): Promise<Routed | NoticeReason> {
  const gid = p.envelope.gid;
  if (typeof gid !== "string" || gid === "") return "group_notfound";
  const domain = domainOf(sender);
  const members = await core.groups(gid, domain);
  if (members === null) return "group_notfound";
  const me = userOf(sender);
  if (!members.includes(me)) return "no_permission";
  if (members.length < 2) return "group_too_small";
  const ct = Date.now();
  if (core.dedup.check(sender, id, ct)) {
    return { ack: true, ct, safe: core.dedup.firstCopy(sender, id) };
  }
  const copies: Promise<unknown>[] = [];
  const entries: InboxEntry[] = [];
  for (const m of members) {
    if (m === me) continue;
    const to = `${m}@${domain}`;
    const copyId = newId();
    const envelope = { ...p.envelope, id: copyId, type: Type.group, from: sender, to, gid, ack: 1 };
    const packet = stampPacket(text, envelope, ct);
    if (packet === null) return "bad_packet";
    entries.push({ user: to, id: copyId, from: sender, type: Type.group, ct, packet });
  }
  for (const e of entries) copies.push(core.router.deliver(e, true));
  // The sender's other sessions see the packet as sent, not a member's copy.
  if (origin !== undefined) {
    core.router.carbon?.(sender, origin, () => carbonOf(text, p, sender, id, Type.group, ct));
  }
  const safe = Promise.all(copies);
  tracked(core, sender, id, true, safe);
  return { ack: true, ct, safe };
}

/**
 * The carbon of a packet `sender` sent: its envelope as sent, stamped with
 * `ct` like the recipient's copy, plus `"carbon":true`; the rest of the
 * bytes as received. For the sender's own inbox (never stored).
 */
function carbonOf(
  text: string,
  p: Packet,
  sender: string,
  id: string,
  type: number,
  ct: number,
): InboxEntry | null {
  const packet = stampPacket(text, { ...p.envelope, carbon: true }, ct);
  return packet === null ? null : { user: sender, id, from: sender, type, ct, packet };
}

// Duplicates wait for the first copy. The store remembers the id only once
// the message is safe: a node taking over after a crash must never ack a
// retry of a message that was not kept.
function tracked(core: Routing, sender: string, id: string, ack: boolean, safe: Promise<unknown>) {
  core.dedup.track(sender, id, safe);
  if (ack && core.writer.keepsSent !== false) {
    safe.then(() => core.writer.sent(sender, id), () => {});
  }
}
