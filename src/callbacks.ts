// HTTP callbacks to the business backend (docs/protocol.md §7): one form-encoded POST
// per call, with a timeout, bounded concurrency and keep-alive connections.
// Failures are logged by service and reason; params (tokens) never are.

import type { Config } from "./config/config.ts";
import { ConfigError } from "./errors.ts";
import { readLimited } from "./http_body.ts";
import { errMsg, type Logger } from "./log.ts";
import { KeyedQueue, Semaphore, WaitLineFull, withTimeout } from "./async.ts";

/** The backend's answer to one call. */
export interface CallbackAnswer {
  success: boolean;
  entity: unknown;
}

/** A call that got no usable answer: backend down, timeout, not JSON, no `success`. */
export class CallbackError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CallbackError";
  }
}

/** How a call ended: answered success true, answered false, or no usable answer. */
export type CallOutcome = "success" | "failure" | "error";

/** How the client reaches the backend. */
export interface CallbackOptions {
  /** The `callback` URL; user and password in it become a Basic Authorization header. */
  url: string;
  /** Per call, waiting for a free slot included. */
  timeoutMs: number;
  log: Logger;
  /** Answers (auth, group lists) in flight at once; 64 when absent. */
  concurrency?: number;
  /** Notifications (offline) in flight at once; 16 when absent. */
  notifyConcurrency?: number;
  /**
   * Calls allowed to wait for a slot per lane, and notifications waiting in
   * all; beyond, a call fails at once. 10000 when absent.
   */
  maxQueued?: number;
  /** Told how each call (service.method) ended and how long it took (metrics). */
  onCall?: CallObserver;
}

/** Told how one call (service.method) ended and how long it took. */
export type CallObserver = (call: string, outcome: CallOutcome, seconds: number) => void;

// One suppressed-repeat window per service.method, so a dead backend under
// load writes one warning a second instead of one per message.
const WARN_WINDOW_MS = 1000;
// Largest answer read; a group list of 100k members fits.
const MAX_ANSWER_BYTES = 4 * 1024 * 1024;

/**
 * The callback client of one node. `call` is for answers a session waits for
 * (auth, group members); `notify` is fire-and-forget (offline) and runs in its
 * own lane, so a flood of notifications never delays a login.
 */
export class Callbacks {
  readonly #url: string;
  readonly #logUrl: string;
  readonly #headers: Record<string, string>;
  readonly #timeoutMs: number;
  readonly #log: Logger;
  readonly #poolSize: number;
  // Made on the first call, so a node that never calls back holds no client.
  #client: Deno.HttpClient | null = null;
  readonly #calls: Semaphore;
  readonly #notices: Semaphore;
  // One line of notifications per key (a user): each leaves after the one before.
  readonly #noticeLines = new KeyedQueue<string>();
  #noticesQueued = 0;
  readonly #maxQueued: number;
  readonly #inflight = new Set<AbortController>();
  readonly #warned = new Map<string, { at: number; suppressed: number }>();
  #closed = false;
  readonly #onCall: CallObserver | null;

  /** @throws {ConfigError} when `url` is not an http(s) URL. */
  constructor(opts: CallbackOptions) {
    let url: URL;
    try {
      url = new URL(opts.url);
    } catch {
      throw new ConfigError(`callback "${opts.url}" is not a URL`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new ConfigError(`callback "${url.protocol}" URL: only http and https are supported`);
    }
    this.#headers = { "content-type": "application/x-www-form-urlencoded" };
    // fetch refuses credentials inside the URL; they travel as a header instead.
    if (url.username || url.password) {
      const user = decodeURIComponent(url.username);
      const pass = decodeURIComponent(url.password);
      this.#headers.authorization = `Basic ${btoa(`${user}:${pass}`)}`;
      url.username = url.password = "";
    }
    this.#url = url.href;
    // A key in the query string is a secret too: logs name only the endpoint.
    this.#logUrl = url.origin + url.pathname;
    this.#timeoutMs = opts.timeoutMs;
    this.#log = opts.log;
    const concurrency = opts.concurrency ?? 64;
    const notifyConcurrency = opts.notifyConcurrency ?? 16;
    const maxQueued = opts.maxQueued ?? 10_000;
    this.#calls = new Semaphore(concurrency, maxQueued);
    this.#notices = new Semaphore(notifyConcurrency, maxQueued);
    this.#maxQueued = maxQueued;
    this.#poolSize = concurrency + notifyConcurrency;
    this.#onCall = opts.onCall ?? null;
  }

  /** The URL calls go to, without user and password. */
  get url(): string {
    return this.#url;
  }

  /**
   * Calls `service.method` and resolves to the backend's answer.
   * @throws {CallbackError} when no usable answer came (already logged).
   */
  call(service: string, method: string, params: Record<string, unknown>): Promise<CallbackAnswer> {
    return this.#run(this.#calls, service, method, params);
  }

  /**
   * Calls `service.method` without waiting; failures and `success: false` are
   * logged. Notifications of one `key` leave one at a time, in call order, so
   * the backend sees them in that order; other keys' go beside them.
   */
  notify(key: string, service: string, method: string, params: Record<string, unknown>): void {
    const name = `${service}.${method}`;
    if (this.#noticesQueued >= this.#maxQueued) {
      this.#onCall?.(name, "error", 0);
      this.#warn(name, `callback ${name} failed: more than ${this.#maxQueued} calls waiting`);
      return;
    }
    this.#noticesQueued++;
    void this.#noticeLines.run(key, async () => {
      try {
        const answer = await this.#run(this.#notices, service, method, params);
        if (!answer.success) this.#warn(name, `callback ${name} answered success false`);
      } catch {
        // Logged by #run.
      } finally {
        this.#noticesQueued--;
      }
    });
  }

  /** Aborts calls in flight and waiting, and closes pooled connections. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // Waiting calls are in #inflight too: aborting takes them out of line.
    for (const c of this.#inflight) c.abort();
    this.#client?.close();
  }

  async #run(
    lane: Semaphore,
    service: string,
    method: string,
    params: Record<string, unknown>,
  ): Promise<CallbackAnswer> {
    const name = `${service}.${method}`;
    const start = performance.now();
    const seconds = () => (performance.now() - start) / 1000;
    try {
      if (this.#closed) throw new CallbackError("callback client closed");
      const answer = await this.#post(lane, { sn: crypto.randomUUID(), service, method, params });
      this.#onCall?.(name, answer.success ? "success" : "failure", seconds());
      return answer;
    } catch (err) {
      this.#onCall?.(name, "error", seconds());
      // fetch says "fetch failed" and puts the why (which quotes the URL,
      // query string included) in its cause.
      const cause = err instanceof Error && err.cause !== undefined ? `: ${errMsg(err.cause)}` : "";
      const reason = (err instanceof CallbackError ? err.message : errMsg(err) + cause)
        .replaceAll(this.#url, this.#logUrl);
      this.#warn(name, `callback ${name} failed: ${reason}`);
      throw err instanceof CallbackError ? err : new CallbackError(reason);
    }
  }

  async #post(lane: Semaphore, request: object): Promise<CallbackAnswer> {
    const closing = new AbortController();
    this.#inflight.add(closing);
    try {
      return await withTimeout(
        this.#timeoutMs,
        (timeout) => this.#send(lane, request, AbortSignal.any([closing.signal, timeout])),
        () => {
          throw new CallbackError(`no answer within ${this.#timeoutMs} ms`);
        },
      );
    } finally {
      this.#inflight.delete(closing);
    }
  }

  async #send(lane: Semaphore, request: object, signal: AbortSignal): Promise<CallbackAnswer> {
    let slot = false;
    try {
      await lane.acquire(signal);
      slot = true;
      // close() may have run between the slot's hand-over and this line.
      signal.throwIfAborted();
      const res = await fetch(this.#url, {
        method: "POST",
        headers: this.#headers,
        body: new URLSearchParams({ body: JSON.stringify(request) }),
        signal,
        client: this.#client ??= Deno.createHttpClient({
          poolMaxIdlePerHost: this.#poolSize,
          poolIdleTimeout: 60_000,
        }),
      });
      if (!res.ok) {
        await res.body?.cancel().catch(() => {});
        throw new CallbackError(`HTTP ${res.status}`);
      }
      const bytes = await readLimited(res.body, MAX_ANSWER_BYTES);
      if (bytes === null) throw new CallbackError(`answer over ${MAX_ANSWER_BYTES} bytes`);
      return parseAnswer(new TextDecoder().decode(bytes));
    } catch (err) {
      if (err instanceof WaitLineFull) {
        throw new CallbackError(`more than ${err.max} calls waiting`);
      }
      if (signal.aborted) throw new CallbackError("callback client closed");
      throw err;
    } finally {
      if (slot) lane.release();
    }
  }

  #warn(key: string, msg: string): void {
    const now = Date.now();
    const w = this.#warned.get(key);
    if (w && now - w.at < WARN_WINDOW_MS) {
      w.suppressed++;
      return;
    }
    const more = w && w.suppressed > 0 ? ` (and ${w.suppressed} more since the last warning)` : "";
    this.#warned.set(key, { at: now, suppressed: 0 });
    this.#log.warn(msg + more, { callback: this.#logUrl });
  }
}

/**
 * The callback client `config` asks for, or null when `callback` is empty
 * (then auth and the offline callback stay off, with a warning if enabled).
 * @throws {ConfigError} when `callback` is not an http(s) URL.
 */
export function openCallbacks(
  config: Config,
  log: Logger,
  onCall?: CallObserver,
): Callbacks | null {
  if (config.callback === "") {
    for (const key of ["enable_auth", "enable_offline_callback"] as const) {
      if (config[key]) log.warn(`${key} is on but callback is empty: ${key} has no effect`);
    }
    return null;
  }
  return new Callbacks({
    url: config.callback,
    timeoutMs: config.callback_timeout * 1000,
    log,
    onCall,
  });
}

/** Checks the answer's shape: a JSON object whose `success` is a boolean or "true"/"false". */
export function parseAnswer(text: string): CallbackAnswer {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new CallbackError(`answer is not JSON: ${JSON.stringify(text.slice(0, 60))}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new CallbackError("answer is not a JSON object");
  }
  const { success, entity } = value as { success?: unknown; entity?: unknown };
  if (success === true || success === "true") return { success: true, entity };
  if (success === false || success === "false") return { success: false, entity };
  throw new CallbackError("answer has no boolean success");
}
