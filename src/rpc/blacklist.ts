// The Erlang emsg_server's blacklist over RPC (docs/protocol.md §10), service
// `emsg_black_list`: a user blocks senders with its own login token, or a
// backend does it with the accesstoken.

import { RpcCode, RpcError } from "../errors.ts";
import { bareJid } from "../protocol/packet.ts";
import type { Authenticator } from "../session/auth.ts";
import type { LoginThrottle } from "../session/login_throttle.ts";
import type { Store } from "../store/store.ts";
import { paramsObject, type RpcCall, type Service } from "./services.ts";

/** Largest page of `fetch`, and its default. */
export const FETCH_LIMIT = 1000;

/** Applies a change to the owner's live session, wherever it is logged in. */
export type BlockNotifier = (owner: string, jid: string, blocked: boolean) => Promise<void>;

/** What the blacklist service works on. */
export interface BlacklistDeps {
  store: Store;
  auth: Authenticator;
  /**
   * True when `auth` accepts anyone (no auth_secret, no auth callback): then
   * there is nothing a user could prove, and only loopback callers (or the
   * accesstoken) may act for a user.
   */
  openLogin: boolean;
  /**
   * The node's throttle of failed logins: a `pwd` refused here counts as a
   * failed login of the owner, so the blacklist is no way around it.
   */
  logins: Pick<LoginThrottle, "delay" | "failed">;
  notify: BlockNotifier;
}

/** The `emsg_black_list` service: append, remove, fetch. */
export function blacklistService(
  { store, auth, openLogin, logins, notify }: BlacklistDeps,
): Service {
  // The owner is `to`; `pwd` is checked like a login of `to` unless the
  // caller is a backend with the accesstoken.
  const owner = async (call: RpcCall, p: Record<string, unknown>): Promise<string> => {
    const to = jidParam(p, "to");
    if (!call.trusted && openLogin && !call.loopback) {
      throw new RpcError(
        RpcCode.refused,
        "blacklist needs the accesstoken, a token signed with auth_secret, or enable_auth",
      );
    }
    if (!call.trusted && !openLogin) {
      if (p.pwd !== undefined && typeof p.pwd !== "string") {
        throw new RpcError(RpcCode.badParams, "pwd must be a string");
      }
      const wait = logins.delay(to, call.remote);
      // Throttled: refused unchecked after the delay, as a login would be.
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (wait > 0 || !(await auth(to, p.pwd as string | undefined))) {
        logins.failed(to, call.remote);
        throw new RpcError(RpcCode.badPwd, "pwd refused");
      }
    }
    return to;
  };
  const change = (blocked: boolean) => async (call: RpcCall) => {
    const p = paramsObject(call.params);
    const from = jidParam(p, "from");
    const to = await owner(call, p);
    if (from === to) throw new RpcError(RpcCode.badParams, "cannot block yourself");
    if (blocked) await store.block(to, from, Date.now());
    else await store.unblock(to, from);
    await notify(to, from, blocked);
    return { success: true };
  };
  return {
    access: "user",
    methods: {
      append: change(true),
      remove: change(false),
      fetch: async (call) => {
        const p = paramsObject(call.params);
        const to = await owner(call, p);
        const offset = intParam(p, "offset", 0, Number.MAX_SAFE_INTEGER);
        const limit = intParam(p, "limit", FETCH_LIMIT, FETCH_LIMIT);
        return { success: true, entity: await store.blacklist(to, offset, limit) };
      },
    },
  };
}

function jidParam(p: Record<string, unknown>, name: string): string {
  const jid = bareJid(p[name]);
  if (jid === null) throw new RpcError(RpcCode.badParams, `${name} must be user@domain`);
  return jid;
}

/** An optional non-negative integer (number or digit string), capped at `max`. */
function intParam(p: Record<string, unknown>, name: string, dflt: number, max: number): number {
  const v = p[name];
  if (v === undefined || v === null) return dflt;
  const n = typeof v === "string" && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 0) {
    throw new RpcError(RpcCode.badParams, `${name} must be a non-negative integer`);
  }
  return Math.min(n, max);
}
