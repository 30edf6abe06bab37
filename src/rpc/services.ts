// The RPC service table (docs/protocol.md §6): `{service: {access, methods}}`, one
// handler per method. Later services (blacklist, cluster presence) are more
// rows of the same table.

import { RpcCode, RpcError } from "../errors.ts";
import { elementTexts, memberText } from "../protocol/json_text.ts";
import { bareJid } from "../protocol/packet.ts";
import type { Groups } from "../session/groups.ts";
import type { Presence } from "./presence.ts";
import { type PushDeps, pushPackets, type PushResult } from "./push.ts";

/** One call as a method sees it; `params` is unchecked JSON. */
export interface RpcCall {
  sn: string | number;
  params: unknown;
  /**
   * The request JSON as received, `params` included: a method that forwards
   * part of it takes those bytes from here (memberText) rather than
   * serialising the parsed copy again.
   */
  text: string;
  /** The request carried the (non-empty) `accesstoken`: a backend, not a user. */
  trusted: boolean;
  /** The caller connected from this machine (127.0.0.0/8, ::1). */
  loopback: boolean;
  /** The caller's "host:port" ("" for a caller in this process). */
  remote: string;
}

/** A method's answer; `entity` is left out of the reply when undefined. */
export interface RpcResult {
  success: boolean;
  entity?: unknown;
}

/** Answers one call; throws RpcError for what the caller did wrong. */
export type Method = (call: RpcCall) => Promise<RpcResult>;

/**
 * Who may call a service. "token": anyone when `accesstoken` is empty, else
 * only with it; "push": only with `accesstoken`, and never while it is empty
 * (an open push API would let anyone write as any user); "user": with
 * `accesstoken`, or with a user's own login token that the method checks.
 */
export type Access = "token" | "push" | "user";

/** One service: its access rule and its methods by name. */
export interface Service {
  access: Access;
  methods: Record<string, Method>;
}

/** Services by name. */
export type ServiceTable = Record<string, Service>;

/** What the services of this module work on. */
export interface ServiceDeps {
  push: PushDeps;
  groups: Pick<Groups, "reload">;
  presence: Presence;
}

/** The services of a node: groups, sessions and the push API. */
export function coreServices({ push, groups, presence }: ServiceDeps): ServiceTable {
  return {
    emsg_group: {
      access: "token",
      methods: {
        reload: async ({ params }) => {
          const p = paramsObject(params);
          const gid = p.gid, domain = p.domain;
          if (typeof gid !== "string" || gid === "") {
            throw new RpcError(RpcCode.badParams, "gid_not_be_empty");
          }
          if (typeof domain !== "string" || domain === "") {
            throw new RpcError(RpcCode.badParams, "domain_not_be_empty");
          }
          await groups.reload(gid, domain);
          return { success: true };
        },
      },
    },
    emsg_session: {
      access: "token",
      methods: {
        counter: async () => ({ success: true, entity: { counters: await presence.counters() } }),
        isonline: async ({ params }) => {
          const jid = bareJid(paramsObject(params).jid);
          if (jid === null) throw new RpcError(RpcCode.badParams, "jid must be user@domain");
          return { success: await presence.isOnline(jid) };
        },
        sessions: async ({ params }) => {
          const jid = bareJid(paramsObject(params).uid);
          if (jid === null) throw new RpcError(RpcCode.badParams, "uid must be user@domain");
          return { success: true, entity: await presence.sessions(jid) };
        },
        kick: async ({ params }) => {
          const p = paramsObject(params);
          const jid = bareJid(p.uid);
          if (jid === null) throw new RpcError(RpcCode.badParams, "uid must be user@domain");
          if (p.resource !== undefined && typeof p.resource !== "string") {
            throw new RpcError(RpcCode.badParams, "resource must be a string");
          }
          const kicked = await presence.kick(jid, p.resource ?? null);
          return { success: kicked > 0, entity: { kicked } };
        },
      },
    },
    emsg_inf_push: {
      access: "push",
      methods: {
        process: async ({ params, text }) => {
          const content = paramsObject(params).content;
          if (typeof content !== "string" && (typeof content !== "object" || content === null)) {
            throw new RpcError(RpcCode.badParams, "content must be a packet: JSON text or object");
          }
          const sent = typeof content === "string" ? content : paramText(text, "content");
          return pushAnswer(await pushPackets(push, [sent]));
        },
        process_batch: async ({ params, text }) => {
          const contents = paramsObject(params).contents;
          if (!Array.isArray(contents)) {
            throw new RpcError(RpcCode.badParams, "contents must be an array of packets");
          }
          const texts = contents.some(isObject) ? elementTexts(paramText(text, "contents"))! : [];
          const sent = contents.map((c, i) => isObject(c) ? texts[i] : c);
          return pushAnswer(await pushPackets(push, sent));
        },
      },
    },
  };
}

/** `params` as an object; missing params read as `{}`, so each method names what it lacks. */
export function paramsObject(params: unknown): Record<string, unknown> {
  if (params === undefined || params === null) return {};
  if (typeof params !== "object" || Array.isArray(params)) {
    throw new RpcError(RpcCode.badParams, "params must be an object");
  }
  return params as Record<string, unknown>;
}

/**
 * The bytes of `params.<key>` in the request JSON `text`, which JSON.parse
 * read with `params` an object holding `key`: a packet pushed as an object is
 * forwarded as written, numbers beyond 2^53 included (SECURITY.md, input rules).
 */
function paramText(text: string, key: string): string {
  return memberText(memberText(text, "params")!, key)!;
}

function isObject(v: unknown): v is object {
  return typeof v === "object" && v !== null;
}

/** Success only when every packet was accepted; the entity lists the refused ones. */
function pushAnswer(result: PushResult): RpcResult {
  return { success: result.rejected.length === 0, entity: result };
}
