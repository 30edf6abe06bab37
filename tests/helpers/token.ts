// Mints HS256 login tokens as a backend would (SECURITY.md shows the same in
// Python and Node), for tests of `auth_secret`.

const enc = new TextEncoder();

function b64url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replace(/=+$/, "").replace(/\+/g, "-").replace(
    /\//g,
    "_",
  );
}

/** A JWT over `claims`, signed with `secret` (HS256 unless `alg` says otherwise). */
export async function mintToken(
  secret: string,
  claims: Record<string, unknown>,
  alg = "HS256",
): Promise<string> {
  const head = b64url(enc.encode(JSON.stringify({ alg, typ: "JWT" })));
  const body = b64url(enc.encode(JSON.stringify(claims)));
  const key = await crypto.subtle.importKey(
    "raw",
    enc.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const sig = new Uint8Array(await crypto.subtle.sign("HMAC", key, enc.encode(`${head}.${body}`)));
  return `${head}.${body}.${b64url(sig)}`;
}
