// The login check of PROTOCOL 3 through the `emsg_auth.auth` callback: any
// answer but success true, and any failure of the call, refuses the login.

import type { Callbacks } from "../callbacks.ts";
import type { Logger } from "../log.ts";
import { userOf } from "../protocol/packet.ts";

/** Decides whether a login may proceed (the auth callback, or always yes). */
export type Authenticator = (jid: string, pwd: string | undefined) => Promise<boolean>;

/** Accepts every login (auth disabled or no callback URL). */
export const acceptAll: Authenticator = () => Promise.resolve(true);

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
