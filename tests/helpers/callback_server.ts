// A business backend for tests (docs/protocol.md §7): a real HTTP server on a free port
// that records every callback exactly as it arrived (method, content type,
// raw body, client port) and answers through a replaceable responder.

import { reservePort } from "./ports.ts";

/** The JSON request inside the form field `body`. */
export interface CallbackRequest {
  sn: string;
  service: string;
  method: string;
  params: Record<string, unknown>;
}

/** One callback as the backend saw it. */
export interface Recorded {
  httpMethod: string;
  contentType: string | null;
  /** The raw request body. */
  raw: string;
  /** Names of the form fields, in order. */
  fields: string[];
  /** The parsed `body` field. */
  request: CallbackRequest;
  /** Source port of the connection: equal across calls when keep-alive works. */
  remotePort: number;
}

/** Answers a call: a Response as is, anything else as a JSON body. */
export type Responder = (req: CallbackRequest) => unknown | Promise<unknown>;

/** `{"sn","success","entity"}` as a backend answers. */
export function answer(req: CallbackRequest, success: unknown, entity?: unknown): unknown {
  return { sn: req.sn, success, entity };
}

/** A test backend; `await using` closes it. */
export class CallbackServer implements AsyncDisposable {
  readonly calls: Recorded[] = [];
  /** gid -> members, answered by the default responder. */
  readonly groups = new Map<string, unknown[]>();
  responder: Responder = (req) => this.#default(req);
  #inFlight = 0;
  /** Most calls seen in progress at once. */
  maxInFlight = 0;
  readonly #sleepers = new Set<() => void>();
  readonly #waiters = new Set<() => void>();

  readonly server: Deno.HttpServer<Deno.NetAddr>;

  private constructor() {
    this.server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (req, info) => this.#handle(req, info.remoteAddr.port),
    );
  }

  /** Starts on 127.0.0.1, on a free port. */
  static start(): CallbackServer {
    return new CallbackServer();
  }

  get url(): string {
    return `http://127.0.0.1:${this.server.addr.port}/cb`;
  }

  /** Calls of `service.method` so far. */
  of(name: string): Recorded[] {
    return this.calls.filter((c) => `${c.request.service}.${c.request.method}` === name);
  }

  /** Waits until `n` calls of `service.method` arrived; rejects after `ms`. */
  async waitFor(name: string, n: number, ms = 5000): Promise<Recorded[]> {
    const deadline = Date.now() + ms;
    while (this.of(name).length < n) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.of(name).length} of ${n} ${name} calls in ${ms} ms`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#waiters.add(resolve);
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
    return this.of(name);
  }

  /** Resolves after `ms`, or at once when the server closes (so close never waits for it). */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#sleepers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#sleepers.add(done);
    });
  }

  async close(): Promise<void> {
    for (const wake of [...this.#sleepers]) wake();
    await this.server.shutdown();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #handle(req: Request, remotePort: number): Promise<Response> {
    const raw = await req.text();
    const form = new URLSearchParams(raw);
    let request: CallbackRequest;
    try {
      request = JSON.parse(form.get("body") ?? "");
    } catch {
      return new Response("no body field", { status: 400 });
    }
    this.calls.push({
      httpMethod: req.method,
      contentType: req.headers.get("content-type"),
      raw,
      fields: [...form.keys()],
      request,
      remotePort,
    });
    for (const wake of [...this.#waiters]) wake();
    this.#waiters.clear();
    this.#inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.#inFlight);
    try {
      const out = await this.responder(request);
      if (out instanceof Response) return out;
      return Response.json(out);
    } finally {
      this.#inFlight--;
    }
  }

  #default(req: CallbackRequest): unknown {
    if (req.service === "emsg_group" && req.method === "get_user_list") {
      const users = this.groups.get(String(req.params.gid));
      return users ? answer(req, true, { users }) : answer(req, false, null);
    }
    return answer(req, true, null);
  }
}

/** A URL where nothing listens (a port reserved for this process). */
export function deadUrl(): string {
  const port = reservePort();
  return `http://127.0.0.1:${port}/cb`;
}
