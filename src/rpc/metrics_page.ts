// `GET /metrics` on rpcport: the node's metrics in the Prometheus text format.

import type { Page } from "./http.ts";
import type { Metrics } from "../metrics/metrics.ts";

/** The /metrics page; each node exposes its own numbers (Prometheus adds them up). */
export function metricsPage(metrics: Metrics): Page {
  return (req, url) => {
    if (url.pathname !== "/metrics") return null;
    if (req.method !== "GET" && req.method !== "HEAD") {
      return Promise.resolve(new Response("method not allowed\n", { status: 405, headers: GET }));
    }
    return metrics.render().then(({ text, contentType }) =>
      new Response(text, { headers: { "content-type": contentType, "cache-control": "no-store" } })
    );
  };
}

const GET = { allow: "GET, HEAD" };
