// The login check of docs/protocol.md §3: a token signed with `auth_secret`, else the
// `emsg_auth.auth` callback (any answer but success true, and any failure of
// the call, refuses the login), else, when neither is configured, anyone.

import type { Callbacks } from "../callbacks.ts";
import type { Logger } from "../log.ts";
import { userOf } from "../protocol/packet.ts";
import { TokenVerifier } from "./token.ts";

/** Decides whether a login may proceed (a token, the auth callback, or always yes). */
export type Authenticator = (jid: string, pwd: string | undefined) => Promise<boolean>;

/** Accepts every login (auth disabled or no callback URL). */
const acceptAll: Authenticator = () => Promise.resolve(true);

/**
 * Asks the backend with `uid` (user part of the JID) and `token` (the `pwd`,
 * "" when absent). Resolves false on refusal or failure, never rejects.
 */
export function callbackAuth(callbacks: Callbacks, log: Logger): Authenticator {
  return async (jid, pwd) => {
    try {
      const answer = await callbacks.call("emsg_auth", "auth", {
        uid: userOf(jid),
        token: pwd ?? "",
      });
      if (!answer.success) log.info("auth callback refused the login", { jid });
      return answer.success;
    } catch {
      return false; // the callback client logged why
    }
  };
}

/**
 * The login rule of a node: a `pwd` that is a token signed with `secret` for
 * the jid's user is accepted without asking anyone; any other `pwd` goes to
 * `callback` (enable_auth), or is refused when there is none. With neither a
 * secret nor a callback every login is accepted (an open node).
 */
export function loginAuth(secret: string, callback: Authenticator | null): Authenticator {
  if (secret === "") return callback ?? acceptAll;
  const tokens = new TokenVerifier(secret);
  return async (jid, pwd) => {
    if (pwd !== undefined && await tokens.verify(pwd, userOf(jid))) return true;
    return callback ? await callback(jid, pwd) : false;
  };
}
