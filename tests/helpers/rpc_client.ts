// Calls the HTTP RPC interface of a test node the way backends and SDKs do
// (form field `body`, GET `?body=`, or raw JSON) and returns the parsed answer.

/** How the request JSON travels. */
export type RpcForm = "form" | "get" | "raw";

/** An RPC answer with its HTTP status. */
export interface RpcAnswer {
  status: number;
  json: { sn: unknown; success: boolean; entity?: unknown };
}

/** Sends `request` (serialised to JSON) to `http://127.0.0.1:port{path}`. */
export async function rpc(
  port: number,
  request: unknown,
  form: RpcForm = "form",
  path = "/api/",
): Promise<RpcAnswer> {
  const body = JSON.stringify(request);
  const url = `http://127.0.0.1:${port}${path}`;
  const res = form === "get"
    ? await fetch(`${url}?${new URLSearchParams({ body })}`)
    : await fetch(url, {
      method: "POST",
      body: form === "form" ? new URLSearchParams({ body }) : body,
      headers: form === "raw" ? { "content-type": "application/json" } : undefined,
    });
  return { status: res.status, json: await res.json() };
}
