// The web console under /console/ on rpcport: static files built into the
// server (text imports, so `deno compile` embeds them), the config the page
// needs (WebSocket port, whether a token is asked), and a token-gated lookup
// of the node holding a user's session.

import { bareJid } from "../../protocol/packet.ts";
import type { Page } from "../http.ts";
import { sameSecret } from "../secret.ts";
import INDEX from "./index.html" with { type: "text" };
import APP from "./app.js" with { type: "text" };
import STYLE from "./style.css" with { type: "text" };

/** What the console needs of the node. */
export interface ConsoleOptions {
  nodeid: string;
  /** "" when RPC is open; else the console asks for it. */
  accesstoken: string;
  /** Bound ports of the WebSocket listeners, null when off (read per request). */
  wsPorts: () => { ws: number | null; wss: number | null };
  /** The node holding `jid`'s session, or null when it has none. */
  locate: (jid: string) => Promise<string | null>;
}

// The page loads only its own files and talks WebSocket to another port.
const SECURITY = {
  "content-security-policy": "default-src 'self'; connect-src 'self' ws: wss:; " +
    "img-src 'self' data:; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-cache",
};

const FILES: Record<string, [string, string]> = {
  "/console/": ["text/html; charset=utf-8", INDEX],
  "/console/index.html": ["text/html; charset=utf-8", INDEX],
  "/console/app.js": ["text/javascript; charset=utf-8", APP],
  "/console/style.css": ["text/css; charset=utf-8", STYLE],
};

/** The /console/ pages. */
export function consolePage(opts: ConsoleOptions): Page {
  return (req, url) => {
    const path = url.pathname;
    if (path !== "/console" && !path.startsWith("/console/")) return null;
    if (req.method !== "GET" && req.method !== "HEAD") {
      return answer(405, "text/plain", "method not allowed\n", { allow: "GET, HEAD" });
    }
    if (path === "/console") {
      return Promise.resolve(
        new Response(null, { status: 301, headers: { location: "/console/" } }),
      );
    }
    const file = FILES[path];
    if (file) return answer(200, file[0], file[1]);
    if (path === "/console/config.json") return json(200, config(opts));
    if (path === "/console/locate") return locate(opts, req, url);
    return answer(404, "text/plain", "not found\n");
  };
}

function config(opts: ConsoleOptions) {
  const { ws, wss } = opts.wsPorts();
  return { nodeid: opts.nodeid, wsport: ws, wssport: wss, token: opts.accesstoken !== "" };
}

// `GET /console/locate?jid=` with `Authorization: Bearer <accesstoken>` when one is set.
async function locate(opts: ConsoleOptions, req: Request, url: URL): Promise<Response> {
  if (opts.accesstoken !== "") {
    const auth = req.headers.get("authorization") ?? "";
    const token = auth.startsWith("Bearer ") ? auth.slice(7) : "";
    if (!sameSecret(token, opts.accesstoken)) return json(403, { error: "wrong token" });
  }
  const jid = bareJid(url.searchParams.get("jid"));
  if (jid === null) return json(400, { error: "jid must be user@domain" });
  return json(200, { jid, node: await opts.locate(jid) });
}

function json(status: number, value: unknown): Promise<Response> {
  return answer(status, "application/json", JSON.stringify(value));
}

function answer(
  status: number,
  type: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<Response> {
  return Promise.resolve(
    new Response(body, { status, headers: { ...SECURITY, "content-type": type, ...headers } }),
  );
}
