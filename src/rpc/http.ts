// The HTTP RPC interface on `rpcport` (docs/protocol.md §6), lightrpc-compatible: a
// pure `(Request) => Promise<Response>` handler over the service table, and
// the listener that runs it and closes idle connections.

import { RpcCode, RpcError } from "../errors.ts";
import { decodeUtf8 } from "../bytes.ts";
import { readLimited } from "../http_body.ts";
import { errMsg, type Logger } from "../log.ts";
import { acceptEach, type AcceptGuard } from "../transports/accept_guard.ts";
import { type BindOptions, type Listener, listenError } from "../listener.ts";
import { isLoopback } from "./loopback.ts";
import { MAX_DEPTH, nestsDeeper } from "../protocol/packet.ts";
import { sameSecret } from "./secret.ts";
import type { RpcCall, RpcResult, ServiceTable } from "./services.ts";

/** What the handler needs. */
export interface RpcOptions {
  services: ServiceTable;
  /** "" leaves RPC open (except push). */
  accesstoken: string;
  /** Largest request body (`rpc_max_body`); larger ones get HTTP 413. */
  maxBody: number;
  log: Logger;
  /** Pages beside the RPC endpoint (metrics, health, console), tried in order. */
  pages?: Page[];
  /**
   * `protected_mode`: while `accesstoken` is "", only loopback clients get
   * anything but the health checks (docs: SECURITY.md).
   */
  protectedMode?: boolean;
}

/** Who sent a request: its connection's remote address. */
export interface RequestInfo {
  remoteAddr: { hostname: string; port: number };
}

const PROTECTED = "sara: protected mode: accesstoken is empty, so the RPC, /metrics and " +
  "/console answer loopback clients only (set accesstoken, or protected_mode false)\n";

/** A page beside the RPC endpoint: its answer, or null when the path is not its own. */
export type Page = (req: Request, url: URL) => Promise<Response> | null;

const CORS: Record<string, string> = {
  "access-control-allow-origin": "*",
  "access-control-allow-methods": "GET, POST, OPTIONS",
  "access-control-max-age": "86400",
};

const TOO_LARGE = Symbol("too large");

/** Builds the RPC handler. It never throws: every failure becomes an answer. */
export function rpcHandler(
  opts: RpcOptions,
): (req: Request, info?: RequestInfo) => Promise<Response> {
  return async (req, info) => {
    try {
      // Without info the caller is in this process (tests): loopback.
      const from = info
        ? {
          loopback: isLoopback(info.remoteAddr.hostname),
          remote: `${info.remoteAddr.hostname}:${info.remoteAddr.port}`,
        }
        : { loopback: true, remote: "" };
      return await handle(opts, req, from);
    } catch (err) {
      opts.log.error(`rpc: ${errMsg(err)}`);
      return reply("", {
        success: false,
        entity: { errCode: RpcCode.internal, reason: "internal" },
      });
    }
  };
}

/** Where a request came from, as a method sees it. */
type Caller = Pick<RpcCall, "loopback" | "remote">;

async function handle(opts: RpcOptions, req: Request, from: Caller): Promise<Response> {
  if (req.method === "OPTIONS") {
    const asked = req.headers.get("access-control-request-headers");
    const headers = { ...CORS, "access-control-allow-headers": asked ?? "content-type" };
    return new Response(null, { status: 204, headers });
  }
  const url = new URL(req.url);
  const path = url.pathname;
  if (
    !from.loopback && opts.protectedMode && opts.accesstoken === "" && path !== "/healthz" &&
    path !== "/readyz"
  ) {
    return new Response(PROTECTED, { status: 403, headers: CORS });
  }
  for (const page of opts.pages ?? []) {
    const answer = page(req, url);
    if (answer) return await answer;
  }
  if (path !== "/" && path !== "/api" && !path.startsWith("/api/")) {
    return new Response("not found\n", { status: 404, headers: CORS });
  }
  const isGet = req.method === "GET" || req.method === "HEAD";
  if (!isGet && req.method !== "POST") {
    return new Response("method not allowed\n", {
      status: 405,
      headers: { ...CORS, allow: "GET, POST, OPTIONS" },
    });
  }
  if (isGet && path === "/" && !url.searchParams.has("body")) {
    return new Response(null, { status: 302, headers: { ...CORS, location: "/console/" } });
  }
  let sn: string | number = "";
  try {
    const text = await requestText(req, url, opts.maxBody);
    if (text === TOO_LARGE) {
      const reason = `body over rpc_max_body (${opts.maxBody} bytes)`;
      return reply("", { success: false, entity: { errCode: RpcCode.badBody, reason } }, 413);
    }
    const request = parseRequest(text);
    sn = request.sn;
    return reply(sn, await call(opts, request, from));
  } catch (err) {
    if (!(err instanceof RpcError)) throw err;
    return reply(sn, { success: false, entity: { errCode: err.code, reason: err.reason } });
  }
}

/** A request after its envelope was checked; `params` is left to the method. */
interface RpcRequest {
  sn: string | number;
  service: unknown;
  method: unknown;
  params: unknown;
  token: unknown;
  /** The request JSON as received. */
  text: string;
}

function parseRequest(text: string | null): RpcRequest {
  if (text === null || text.trim() === "") throw new RpcError(RpcCode.badBody, "body missing");
  if (nestsDeeper(text, MAX_DEPTH)) {
    throw new RpcError(RpcCode.badBody, `body nests deeper than ${MAX_DEPTH}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new RpcError(RpcCode.badBody, "body is not JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new RpcError(RpcCode.badBody, "body is not a JSON object");
  }
  const r = value as Record<string, unknown>;
  const sn = typeof r.sn === "string" || typeof r.sn === "number" ? r.sn : "";
  return { sn, service: r.service, method: r.method, params: r.params, token: r.token, text };
}

async function call(opts: RpcOptions, r: RpcRequest, from: Caller): Promise<RpcResult> {
  // Caller-chosen text, echoed in reasons: kept short.
  const name = `${r.service}.${r.method}`.slice(0, 100);
  // hasOwn: "constructor" or "__proto__" must not find Object's own members.
  const service = typeof r.service === "string" && Object.hasOwn(opts.services, r.service)
    ? opts.services[r.service]!
    : null;
  if (service === null) {
    throw new RpcError(RpcCode.refused, `unknown service ${String(r.service).slice(0, 64)}`);
  }
  if (service.access === "push" && opts.accesstoken === "") {
    throw new RpcError(RpcCode.refused, "set accesstoken to enable push");
  }
  const trusted = opts.accesstoken !== "" && sameSecret(r.token, opts.accesstoken);
  // "user" services are also open to a user's own login token, which the
  // method checks itself (docs/protocol.md §10).
  if (opts.accesstoken !== "" && !trusted && service.access !== "user") {
    opts.log.info(`rpc ${r.service} refused: wrong token`);
    throw new RpcError(RpcCode.refused, "wrong token");
  }
  const method = typeof r.method === "string" && Object.hasOwn(service.methods, r.method)
    ? service.methods[r.method]!
    : null;
  if (method === null) throw new RpcError(RpcCode.unknownMethod, `unknown method ${name}`);
  if (opts.log.enabled(3)) opts.log.debug(`rpc ${name}`, { sn: r.sn });
  return await method({ sn: r.sn, params: r.params, text: r.text, trusted, ...from });
}

/**
 * The request JSON: the raw POST body, or its form field `body`, else the
 * query parameter `body` (GET, or POST as Go's FormValue read it).
 * Null when there is none; TOO_LARGE past `max` bytes, read no further.
 * @throws {RpcError} when the body or the field is not UTF-8: replacing such
 * bytes would make two different jids one (SECURITY.md, input rules).
 */
async function requestText(
  req: Request,
  url: URL,
  max: number,
): Promise<string | null | typeof TOO_LARGE> {
  if (url.search.length > max) return TOO_LARGE;
  const query = formField(url.search.slice(1), "body");
  if (req.method !== "POST") return query;
  if (Number(req.headers.get("content-length") ?? 0) > max) return TOO_LARGE;
  const bytes = await readLimited(req.body, max);
  if (bytes === null) return TOO_LARGE;
  const raw = decodeUtf8(bytes);
  if (raw === null) throw new RpcError(RpcCode.badBody, "body is not UTF-8");
  // A JSON body starts with "{", which no form field does: so `curl -d '{…}'`
  // (raw JSON sent as a form) works too, and so do SDKs that send a form
  // without its content type.
  if (raw.trimStart().startsWith("{")) return raw;
  // Neither JSON nor a form holding `body`: handed on as it is, so that the
  // answer says "body is not JSON" rather than "body missing".
  return formField(raw, "body") ?? query ?? raw;
}

/**
 * The first value of `name` in the form (or query) `form`, or null.
 * URLSearchParams would turn escapes that are not UTF-8 (`%FF`) into U+FFFD;
 * decodeURIComponent refuses them.
 * @throws {RpcError} when that value is not percent-encoded UTF-8.
 */
function formField(form: string, name: string): string | null {
  const decode = (s: string) => decodeURIComponent(s.replaceAll("+", " "));
  for (const pair of form.split("&")) {
    const eq = pair.indexOf("=");
    let key: string;
    try {
      key = decode(eq === -1 ? pair : pair.slice(0, eq));
    } catch {
      continue; // a name that does not decode is not `name`
    }
    if (key !== name) continue;
    try {
      return eq === -1 ? "" : decode(pair.slice(eq + 1));
    } catch {
      throw new RpcError(RpcCode.badBody, `form field ${name} is not percent-encoded UTF-8`);
    }
  }
  return null;
}

function reply(sn: string | number, result: RpcResult, status = 200): Response {
  return new Response(JSON.stringify({ sn, success: result.success, entity: result.entity }), {
    status,
    headers: { ...CORS, "content-type": "application/json" },
  });
}

/** One HTTP connection as Deno.serveHttp serves it: its requests, in order. */
interface HttpConn extends AsyncIterable<HttpRequestEvent> {
  close(): void;
}

interface HttpRequestEvent {
  request: Request;
  respondWith(answer: Promise<Response>): Promise<void>;
}

// Deno.serve keeps a connection for as long as its client likes: it has no
// idle or header timeout, and it never shows the handler the connection.
// So the RPC accepts its sockets itself and serves each with Deno.serveHttp,
// which Deno 2 left out of its type declarations but still ships (the RPC
// tests fail if it goes).
const serveHttp = (Deno as unknown as { serveHttp(conn: Deno.Conn): HttpConn }).serveHttp;

/**
 * Starts the RPC listener. A connection on which no request began or was
 * answered for `idleMs` (`idle_timeout`) is closed; accepts that fail
 * (EMFILE) back off through `guard` and go on.
 * @throws {Error} naming the listener and address when the port cannot be bound.
 */
export function startRpc(
  opts: RpcOptions,
  bind: BindOptions,
  guard: AcceptGuard,
  idleMs: number,
): Listener {
  const handler = rpcHandler(opts);
  let listener: Deno.TcpListener;
  try {
    listener = Deno.listen({ hostname: bind.hostname, port: bind.port, transport: "tcp" });
  } catch (err) {
    throw listenError("rpc", bind, err);
  }
  const open = new Set<Served>();
  const accepting = acceptEach(listener, "rpc", guard, (socket) => {
    // A keep-alive answer must not wait for the ack of the one before (Nagle).
    socket.setNoDelay(true);
    const info = { remoteAddr: socket.remoteAddr };
    const served = serveConn(serveHttp(socket), (req) => handler(req, info), idleMs);
    open.add(served);
    served.done.finally(() => open.delete(served));
  });
  return {
    name: "rpc",
    port: listener.addr.port,
    async close() {
      listener.close();
      await accepting;
      for (const c of open) c.stop();
      await Promise.all([...open].map((c) => c.done));
    },
  };
}

/** A connection being served. */
interface Served {
  /** Closes it now if no request is being answered, else once that answer is sent. */
  stop(): void;
  /** Settles once the connection is closed. */
  done: Promise<void>;
}

/** Answers the requests of one connection until it ends, is idle for `idleMs`, or is stopped. */
function serveConn(
  http: HttpConn,
  handle: (req: Request) => Promise<Response>,
  idleMs: number,
): Served {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let answering = 0;
  let stopping = false;
  const close = () => {
    clearTimeout(timer);
    try {
      http.close();
    } catch {
      // Already closed by the client.
    }
  };
  // Each request and each answer restarts the clock; a request still being
  // answered does not stop it, so a body that stalls halfway counts as idle too.
  const active = () => {
    clearTimeout(timer);
    if (stopping && answering === 0) return close();
    timer = setTimeout(close, idleMs);
  };
  const answered = () => {
    answering--;
    active();
  };
  const serve = async () => {
    active();
    try {
      for await (const { request, respondWith } of http) {
        answering++;
        active();
        // Rejects when the client left before its answer: nothing to tell anyone.
        respondWith(handle(request)).then(answered, answered);
      }
    } catch {
      // The connection broke (or was closed here): nothing left to serve.
    }
    close();
  };
  return {
    stop: () => {
      stopping = true;
      active();
    },
    done: serve(),
  };
}
