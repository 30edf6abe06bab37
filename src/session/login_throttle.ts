// Failed logins, throttled per user and per remote address (SECURITY.md):
// after 10 refusals within a minute, every further login of that user or
// from that address is answered fail_token, unchecked, after a delay that
// doubles with each attempt; refusals are logged at most once a second with
// a count (token guessing cannot flood the log).

import type { Logger } from "../log.ts";

const WINDOW_MS = 60_000;
const FREE_FAILURES = 10;
const FIRST_DELAY_MS = 250;
const MAX_DELAY_MS = 4000;
// Keys remembered at most; beyond, the oldest go (each is a few dozen bytes).
const MAX_KEYS = 100_000;
const LOG_EVERY_MS = 1000;

interface Failures {
  since: number;
  n: number;
}

/** Shared by every session of a node. */
export class LoginThrottle {
  readonly #failures = new Map<string, Failures>();
  #unlogged = 0;
  #loggedAt = -LOG_EVERY_MS;

  constructor(readonly log: Logger, readonly now: () => number = Date.now) {}

  /** Ms to wait before refusing a login of `jid` from `remote` unchecked; 0: check it. */
  delay(jid: string, remote: string): number {
    const n = Math.max(this.#count(`u ${jid}`), this.#count(`a ${hostOf(remote)}`));
    if (n < FREE_FAILURES) return 0;
    return Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** (n - FREE_FAILURES));
  }

  /** A login of `jid` from `remote` was refused (wrong or throttled credentials). */
  failed(jid: string, remote: string): void {
    const now = this.now();
    for (const key of [`u ${jid}`, `a ${hostOf(remote)}`]) {
      const f = this.#failures.get(key);
      if (f && now - f.since < WINDOW_MS) {
        f.n++;
        continue;
      }
      // Re-inserted, so that the Map's order stays oldest window first.
      this.#failures.delete(key);
      this.#failures.set(key, { since: now, n: 1 });
      if (this.#failures.size > MAX_KEYS) {
        this.#failures.delete(this.#failures.keys().next().value!);
      }
    }
    this.#unlogged++;
    if (now - this.#loggedAt >= LOG_EVERY_MS) {
      this.log.info(`${this.#unlogged} failed logins (fail_token) since the last such line`, {
        jid,
        remote,
      });
      this.#loggedAt = now;
      this.#unlogged = 0;
    }
  }

  #count(key: string): number {
    const f = this.#failures.get(key);
    if (!f) return 0;
    if (this.now() - f.since < WINDOW_MS) return f.n;
    this.#failures.delete(key);
    return 0;
  }
}

/** The address part of "host:port" (IPv6 hosts hold colons too). */
function hostOf(remote: string): string {
  const at = remote.lastIndexOf(":");
  return at < 0 ? remote : remote.slice(0, at);
}
