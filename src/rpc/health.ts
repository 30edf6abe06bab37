// Health endpoints on rpcport for load balancers and Kubernetes: `/healthz`
// answers while the process runs; `/readyz` only while every listener is up
// and the store answers, else 503 with the reason.

import { errMsg, type Logger } from "../log.ts";
import { withTimeout } from "../async.ts";
import type { Store } from "../store/store.ts";
import type { Page } from "./http.ts";

/** Says why the node cannot take traffic now, or null when it can. */
export type ReadinessCheck = () => Promise<string | null>;

/** What a node's readiness depends on. */
export interface ReadinessOptions {
  /** True once every listener started, false again once stopping began. */
  listening: () => boolean;
  /** False while some listener's accepts fail (out of file descriptors). */
  accepting?: () => boolean;
  store: Pick<Store, "ping">;
  /** A ping slower than this counts as unreachable. */
  timeoutMs: number;
  log: Logger;
}

/** The readiness of a node; logs only when it changes, however often it is probed. */
export function nodeReadiness(opts: ReadinessOptions): ReadinessCheck {
  let wasDown = false;
  return async () => {
    if (!opts.listening()) return "listeners not up";
    if (opts.accepting && !opts.accepting()) return "accepting connections fails";
    const failure = await pingWithin(opts.store, opts.timeoutMs);
    if (failure !== null && !wasDown) opts.log.warn(`not ready: store unreachable: ${failure}`);
    if (failure === null && wasDown) opts.log.info("ready: store reachable again");
    wasDown = failure !== null;
    // The store's error names its address: that stays in the log.
    return failure === null ? null : "store unreachable";
  };
}

/** The /healthz and /readyz pages. */
export function healthPage(ready: ReadinessCheck): Page {
  return (req, url) => {
    const path = url.pathname;
    if (path !== "/healthz" && path !== "/readyz") return null;
    if (req.method !== "GET" && req.method !== "HEAD") {
      return Promise.resolve(text(405, "method not allowed\n", { allow: "GET, HEAD" }));
    }
    if (path === "/healthz") return Promise.resolve(text(200, "ok\n"));
    return ready().then((why) =>
      why === null ? text(200, "ready\n") : text(503, `not ready: ${why}\n`)
    );
  };
}

/** Null when `store` answered a ping within `ms`, else why not. */
function pingWithin(store: Pick<Store, "ping">, ms: number): Promise<string | null> {
  return withTimeout(
    ms,
    () => store.ping().then(() => null, (err) => errMsg(err)),
    () => `no answer to ping within ${ms} ms`,
  );
}

function text(status: number, body: string, headers: Record<string, string> = {}): Response {
  return new Response(body, {
    status,
    headers: {
      "content-type": "text/plain; charset=utf-8",
      "cache-control": "no-store",
      ...headers,
    },
  });
}
