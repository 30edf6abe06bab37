// A tiny business backend for the group scenario (docs/protocol.md §7): answers
// emsg_group.get_user_list from a directory the scenario fills, and accepts
// emsg_auth.auth and user_message.offline so that it also serves servers
// configured with enable_auth or enable_offline_callback.

/** A running stub. */
export interface CallbackStub {
  /** The URL the server must have as `callback`. */
  url: string;
  /** get_user_list requests answered (a server caches lists for an hour). */
  groupRequests: number;
  close(): Promise<void>;
}

/** Starts the stub on 127.0.0.1:port (0: any free port); gid -> user names. */
export function startCallbackStub(
  port: number,
  directory: ReadonlyMap<string, readonly string[]>,
): Promise<CallbackStub> {
  return new Promise((resolve, reject) => {
    let stub: CallbackStub;
    try {
      const server = Deno.serve({
        hostname: "127.0.0.1",
        port,
        onListen: (addr) => {
          stub = {
            url: `http://127.0.0.1:${addr.port}/`,
            groupRequests: 0,
            close: () => server.shutdown(),
          };
          resolve(stub);
        },
        onError: () => reply("", false, { errCode: "1000", reason: "internal error" }),
      }, async (req) => {
        const call = await readCall(req);
        if (call === null) return reply("", false, { errCode: "1000", reason: "body is not JSON" });
        const key = `${call.service}.${call.method}`;
        if (key === "emsg_group.get_user_list") {
          stub.groupRequests++;
          const users = directory.get(String(call.params?.gid ?? ""));
          return users
            ? reply(call.sn, true, { users })
            : reply(call.sn, false, { errCode: "1001", reason: "unknown group" });
        }
        if (key === "emsg_auth.auth" || key === "user_message.offline") {
          return reply(call.sn, true, null);
        }
        return reply(call.sn, false, { errCode: "1002", reason: `unknown method ${key}` });
      });
    } catch (e) {
      reject(e);
    }
  });
}

interface Call {
  sn: string;
  service?: string;
  method?: string;
  params?: Record<string, unknown>;
}

/** The request JSON: form field `body`, query parameter `body`, or the raw body. */
async function readCall(req: Request): Promise<Call | null> {
  let text = new URL(req.url).searchParams.get("body");
  if (text === null && req.method === "POST") {
    const raw = await req.text();
    const type = req.headers.get("content-type") ?? "";
    text = type.includes("application/x-www-form-urlencoded")
      ? new URLSearchParams(raw).get("body")
      : raw;
  }
  if (text === null) return null;
  try {
    const call = JSON.parse(text) as Call;
    return typeof call === "object" && call !== null ? call : null;
  } catch {
    return null;
  }
}

function reply(sn: string, success: boolean, entity: unknown): Response {
  return Response.json({ sn, success, entity });
}
