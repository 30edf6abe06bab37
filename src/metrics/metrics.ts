// The node's Prometheus metrics. Hot paths call the hooks here, which only
// bump plain numbers (nothing is allocated per message); prom-client turns
// them into the text exposition format when /metrics is scraped.

import { Registry } from "prom-client";
import type { CallOutcome } from "../callbacks.ts";
import type { LoginFailure } from "../errors.ts";
import { sampleEventLoop } from "./event_loop.ts";
import { PlainHistogram, type Series } from "./histogram.ts";
import { type NodeState, watchNode } from "./node_gauges.ts";
import { labelled, scrapedCounter, single } from "./scraped.ts";
import { CLOSE_REASONS, type CloseReason } from "../session/close_reason.ts";

/** Values of the `type` label: envelope types 0 to 7, then every other type. */
export const TYPE_LABELS = ["0", "1", "2", "3", "4", "5", "6", "7", "other"] as const;
/** Values of the `result` label of logins. */
export const LOGIN_RESULTS = [
  "ok",
  "fail_packet",
  "fail_type",
  "fail_token",
  "fail_param",
  "timeout",
  "store_error",
] as const;
/** Values of the `transport` label. */
export const TRANSPORTS = ["tcp", "tls", "ws", "wss", "other"] as const;
/** Values of the `outcome` label of callbacks. */
export const CALL_OUTCOMES: readonly CallOutcome[] = ["success", "failure", "error"];

const LATENCY_BOUNDS = [
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
];
const DEPTH_BOUNDS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];
const LAG_BOUNDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** One callback's series: latency, and calls by outcome (CALL_OUTCOMES order). */
interface CallSeries {
  latency: Series;
  outcomes: Float64Array;
}

/** One store operation's series: latency and failures. */
interface OpSeries {
  latency: Series;
  errors: number;
}

/** Metrics of one node, with their own registry (several nodes may share a process). */
export class Metrics {
  readonly registry: Registry = new Registry();
  readonly #in = new Float64Array(TYPE_LABELS.length);
  readonly #out = new Float64Array(TYPE_LABELS.length);
  readonly #logins = new Float64Array(LOGIN_RESULTS.length);
  readonly #opened = new Float64Array(TRANSPORTS.length);
  readonly #closed = new Float64Array(CLOSE_REASONS.length);
  readonly #n = {
    refused: 0,
    acceptErrors: 0,
    serverAcks: 0,
    clientAcks: 0,
    kicks: 0,
    offlineStored: 0,
    offlineDelivered: 0,
  };
  readonly #depth: Series;
  readonly #lag: Series;
  readonly #storeLatency: PlainHistogram;
  readonly #ops = new Map<string, OpSeries>();
  readonly #callLatency: PlainHistogram;
  readonly #calls = new Map<string, CallSeries>();

  constructor() {
    const r = this.registry;
    const n = this.#n;
    const counter = (name: string, help: string, read: () => number) =>
      scrapedCounter(r, { name, help, rows: () => single(read()) });
    scrapedCounter(r, {
      name: "sara_connections_opened_total",
      help: "Client connections accepted, by transport.",
      labelNames: ["transport"],
      rows: () => labelled("transport", TRANSPORTS, this.#opened),
    });
    counter(
      "sara_connections_refused_total",
      "Connections refused with server_full (max_conns).",
      () => n.refused,
    );
    counter(
      "sara_accept_errors_total",
      "Failed accepts on any listener (EMFILE, ENFILE: out of file descriptors).",
      () => n.acceptErrors,
    );
    scrapedCounter(r, {
      name: "sara_sessions_closed_total",
      help: "Sessions (connections past admission) closed, by reason.",
      labelNames: ["reason"],
      rows: () => labelled("reason", CLOSE_REASONS, this.#closed),
    });
    scrapedCounter(r, {
      name: "sara_logins_total",
      help: "Login attempts by result: ok, or the failure reason.",
      labelNames: ["result"],
      rows: () => labelled("result", LOGIN_RESULTS, this.#logins),
    });
    scrapedCounter(r, {
      name: "sara_messages_in_total",
      help: "Packets received from logged-in clients, by envelope type (acks included).",
      labelNames: ["type"],
      rows: () => labelled("type", TYPE_LABELS, this.#in),
    });
    scrapedCounter(r, {
      name: "sara_messages_out_total",
      help: "Messages handed to sessions on this node for delivery, by envelope type.",
      labelNames: ["type"],
      rows: () => labelled("type", TYPE_LABELS, this.#out),
    });
    counter("sara_server_acks_total", "Server acks sent to senders.", () => n.serverAcks);
    counter(
      "sara_client_acks_total",
      "Acks received from clients (to server_ack).",
      () => n.clientAcks,
    );
    counter(
      "sara_kicks_total",
      "Sessions replaced by a newer login of the same user.",
      () => n.kicks,
    );
    counter(
      "sara_offline_stored_total",
      "Messages stored for a recipient who was not online.",
      () => n.offlineStored,
    );
    counter(
      "sara_offline_delivered_total",
      "Stored messages delivered at login.",
      () => n.offlineDelivered,
    );
    this.#depth = new PlainHistogram(
      "sara_offline_inbox_depth",
      "Messages waiting in the recipient's inbox right after one was stored offline.",
      DEPTH_BOUNDS,
      r,
    ).series();
    this.#lag = new PlainHistogram(
      "sara_event_loop_lag_seconds",
      "How late the event loop ran a timer (sampled every 100 ms).",
      LAG_BOUNDS,
      r,
    ).series();
    this.#storeLatency = new PlainHistogram(
      "sara_store_op_duration_seconds",
      "Store operations by op (commit is one group-commit batch).",
      LATENCY_BOUNDS,
      r,
    );
    scrapedCounter(r, {
      name: "sara_store_errors_total",
      help: "Store operations that failed, by op.",
      labelNames: ["op"],
      rows: () => [...this.#ops].map(([op, s]) => [{ op }, s.errors] as const),
    });
    this.#callLatency = new PlainHistogram(
      "sara_callback_duration_seconds",
      "Callbacks to the backend by call (service.method), until answer or failure.",
      LATENCY_BOUNDS,
      r,
    );
    scrapedCounter(r, {
      name: "sara_callback_calls_total",
      help: "Callbacks by call and outcome: success, failure (success false) or error " +
        "(no usable answer: down, timeout, HTTP error, not JSON).",
      labelNames: ["call", "outcome"],
      rows: () =>
        [...this.#calls].flatMap(([call, s]) =>
          CALL_OUTCOMES.map((outcome, i) => [{ call, outcome }, s.outcomes[i]!] as const)
        ),
    });
  }

  // ---- hooks (hot path: plain increments) ----

  /** A connection was accepted. */
  connected(transport: string): void {
    this.#opened[transportIndex(transport)]!++;
  }

  /** A session was closed for `why`. */
  closed(why: CloseReason): void {
    this.#closed[CLOSE_REASONS.indexOf(why.reason)]!++;
  }

  /** A connection was refused with server_full. */
  refused(): void {
    this.#n.refused++;
  }

  /** A listener failed to accept a connection. */
  acceptFailed(): void {
    this.#n.acceptErrors++;
  }

  /** A login succeeded; `delivered` stored messages went out with it. */
  loggedIn(delivered: number): void {
    this.#logins[0]!++;
    this.#n.offlineDelivered += delivered;
  }

  /** A login failed with `reason`. */
  loginFailed(reason: LoginFailure): void {
    this.#logins[LOGIN_RESULTS.indexOf(reason)]!++;
  }

  /** A logged-in client sent a packet of `type`. */
  received(type: number): void {
    this.#in[typeIndex(type)]!++;
  }

  /** A message of `type` was handed to a session for delivery. */
  sent(type: number): void {
    this.#out[typeIndex(type)]!++;
  }

  serverAck(): void {
    this.#n.serverAcks++;
  }

  clientAck(): void {
    this.#n.clientAcks++;
  }

  kick(): void {
    this.#n.kicks++;
  }

  /** A message was stored for an offline recipient, whose inbox now holds `depth`. */
  offlineStored(depth: number): void {
    this.#n.offlineStored++;
    this.#depth.observe(depth);
  }

  /** A store operation finished (or failed) after `seconds`. */
  storeOp(op: string, seconds: number, ok: boolean): void {
    let s = this.#ops.get(op);
    if (!s) this.#ops.set(op, s = { latency: this.#storeLatency.series({ op }), errors: 0 });
    s.latency.observe(seconds);
    if (!ok) s.errors++;
  }

  /** A callback `call` (service.method) ended with `outcome` after `seconds`. */
  callback(call: string, outcome: CallOutcome, seconds: number): void {
    let s = this.#calls.get(call);
    if (!s) {
      s = {
        latency: this.#callLatency.series({ call }),
        outcomes: new Float64Array(CALL_OUTCOMES.length),
      };
      this.#calls.set(call, s);
    }
    s.latency.observe(seconds);
    s.outcomes[CALL_OUTCOMES.indexOf(outcome)]!++;
  }

  // ---- wiring ----

  /** Adds the gauges read from the node's state at scrape time (once per node). */
  watch(node: NodeState): void {
    watchNode(this.registry, node);
  }

  /** Starts sampling event-loop lag; returns the function that stops it. */
  sampleEventLoop(intervalMs = 100): () => void {
    return sampleEventLoop(this.#lag, intervalMs);
  }

  /** The exposition text of every metric, and its content type. */
  async render(): Promise<{ text: string; contentType: string }> {
    return { text: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}

function typeIndex(type: number): number {
  return type >= 0 && type < 8 ? type : 8;
}

function transportIndex(transport: string): number {
  const i = TRANSPORTS.indexOf(transport as typeof TRANSPORTS[number]);
  return i < 0 ? TRANSPORTS.length - 1 : i;
}
