// Signed login tokens (`auth_secret`, docs: SECURITY.md): a JWT signed with
// HS256 whose `sub` is the user part of the jid, checked here with Web Crypto
// (whose HMAC verify compares in constant time), so that a backend can let
// its users log in without sara calling it back.

/** Clock skew allowed on `exp` and `nbf`, in seconds. */
export const LEEWAY_S = 60;

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

/** Checks tokens against one secret. */
export class TokenVerifier {
  readonly #key: Promise<CryptoKey>;

  constructor(secret: string) {
    this.#key = crypto.subtle.importKey(
      "raw",
      enc.encode(secret),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["verify"],
    );
  }

  /**
   * True when `token` is an HS256 JWT signed with the secret, for `user`, and
   * in its time window (`now` in seconds; `exp`, `nbf` optional, 60 s leeway).
   */
  async verify(token: string, user: string, now = Date.now() / 1000): Promise<boolean> {
    const parts = token.split(".");
    if (parts.length !== 3) return false;
    const [h, p, s] = parts as [string, string, string];
    const header = jsonPart(h);
    const claims = jsonPart(p);
    const sig = base64url(s);
    if (!header || !claims || !sig || header.alg !== "HS256") return false;
    const signed = await crypto.subtle.verify(
      "HMAC",
      await this.#key,
      sig,
      enc.encode(`${h}.${p}`),
    );
    if (!signed || claims.sub !== user) return false;
    if (
      claims.exp !== undefined && !(typeof claims.exp === "number" && now < claims.exp + LEEWAY_S)
    ) {
      return false;
    }
    if (
      claims.nbf !== undefined && !(typeof claims.nbf === "number" && now >= claims.nbf - LEEWAY_S)
    ) {
      return false;
    }
    return true;
  }
}

function jsonPart(part: string): Record<string, unknown> | null {
  const bytes = base64url(part);
  if (!bytes) return null;
  try {
    const v = JSON.parse(dec.decode(bytes));
    return typeof v === "object" && v !== null && !Array.isArray(v) ? v : null;
  } catch {
    return null;
  }
}

function base64url(part: string): Uint8Array<ArrayBuffer> | null {
  if (!/^[A-Za-z0-9_-]*$/.test(part)) return null;
  const b64 = part.replace(/-/g, "+").replace(/_/g, "/");
  try {
    const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}
