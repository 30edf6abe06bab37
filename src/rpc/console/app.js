// The sara console in the browser: a dashboard polled from /metrics and the
// RPC API, a user lookup and a group reload over RPC, and a test client that
// logs in over WebSocket and shows server acks and client acks per message.

const POLL_MS = 2000;
const CHART_POINTS = 60;
const HEARTBEAT_MS = 30_000;
const VSN = "0.0.1";

const $ = (id) => document.getElementById(id);

let config = { nodeid: "", wsport: null, wssport: null, token: false };
let token = sessionStorage.getItem("sara-token") ?? "";
let previous = null;
const points = [];

// ---- helpers ----

/** A random id; crypto.randomUUID needs a secure context, which plain http is not. */
function newId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function clock() {
  return new Date().toTimeString().slice(0, 8);
}

function fmt(n, digits = 0) {
  if (!Number.isFinite(n)) return "–";
  return n.toLocaleString("en-US", { maximumFractionDigits: digits });
}

function mb(bytes) {
  return `${fmt(bytes / 1048576, 1)} MB`;
}

function duration(seconds) {
  if (!Number.isFinite(seconds)) return "–";
  if (seconds < 120) return `${fmt(seconds)} s`;
  if (seconds < 7200) return `${fmt(seconds / 60)} min`;
  if (seconds < 172800) return `${fmt(seconds / 3600, 1)} h`;
  return `${fmt(seconds / 86400, 1)} days`;
}

function setStatus(el, text, kind) {
  el.textContent = text;
  el.className = `status ${kind ?? ""}`;
}

function fillList(dl, rows) {
  dl.replaceChildren(...rows.flatMap(([k, v]) => {
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = k;
    dd.textContent = v;
    return [dt, dd];
  }));
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

// ---- RPC and token ----

class RpcFailure extends Error {
  constructor(code, reason) {
    super(`${reason} (errCode ${code})`);
    this.code = code;
  }
}

/** Calls `service.method` on /api/; resolves to the answer, rejects with RpcFailure. */
async function rpc(service, method, params = {}) {
  const sentToken = token;
  const res = await fetch("/api/", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ sn: newId(), service, method, params, token: sentToken }),
  });
  const answer = await res.json();
  const entity = answer.entity ?? {};
  if (!answer.success && entity.errCode) {
    // An answer to an older token (sent before the user typed one) is no news.
    if (entity.errCode === "1003" && entity.reason === "wrong token" && sentToken === token) {
      askToken(token ? "wrong token" : "");
    }
    throw new RpcFailure(entity.errCode, entity.reason);
  }
  return answer;
}

function askToken(why) {
  $("token-form").hidden = false;
  $("token-error").textContent = why ?? "";
  $("token-input").focus();
}

function saveToken(event) {
  event.preventDefault();
  token = $("token-input").value;
  sessionStorage.setItem("sara-token", token);
  $("token-form").hidden = true;
  poll();
}

// ---- metrics ----

/** Prometheus text -> Map(name -> [{labels, value}]). */
function parseMetrics(text) {
  const out = new Map();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => c === "n" ? "\n" : c);
    }
    if (!out.has(m[1])) out.set(m[1], []);
    out.get(m[1]).push({ labels, value: Number(m[3]) });
  }
  return out;
}

/** Sum of the series of `name` whose labels include `match`. */
function total(metrics, name, match = {}) {
  let sum = 0;
  for (const s of metrics.get(name) ?? []) {
    if (Object.entries(match).every(([k, v]) => s.labels[k] === v)) sum += s.value;
  }
  return sum;
}

function labelValues(metrics, name, label) {
  return [...new Set((metrics.get(name) ?? []).map((s) => s.labels[label]))];
}

// ---- dashboard ----

async function poll() {
  let metrics;
  try {
    const res = await fetch("/metrics");
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    metrics = parseMetrics(await res.text());
  } catch (err) {
    setStatus($("status"), `node unreachable: ${err.message}`, "bad");
    return;
  }
  const ready = await fetch("/readyz").then((r) => r.ok, () => false);
  setStatus($("status"), ready ? "ready" : "not ready", ready ? "ok" : "bad");
  showTraffic(metrics);
  showOffline(metrics);
  showCallbacks(metrics);
  showProcess(metrics);
  await showNodes();
}

async function showNodes() {
  const body = $("nodes").tBodies[0];
  if (config.token && !token) {
    const tr = document.createElement("tr");
    tr.append(cell("enter the access token above", "muted"), cell(""));
    body.replaceChildren(tr);
    return;
  }
  try {
    const answer = await rpc("emsg_session", "counter");
    body.replaceChildren(...answer.entity.counters.map(({ node, count }) => {
      const tr = document.createElement("tr");
      tr.dataset.node = node;
      tr.append(cell(node), cell(fmt(count), "num count"));
      return tr;
    }));
  } catch (err) {
    const tr = document.createElement("tr");
    tr.append(cell(`cannot read: ${err.message}`, "bad"), cell(""));
    body.replaceChildren(tr);
  }
}

function showTraffic(m) {
  const now = performance.now();
  const sample = {
    at: now,
    in: total(m, "sara_messages_in_total"),
    out: total(m, "sara_messages_out_total"),
    acks: total(m, "sara_server_acks_total"),
    lagSum: total(m, "sara_event_loop_lag_seconds_sum"),
    lagCount: total(m, "sara_event_loop_lag_seconds_count"),
  };
  $("connections").textContent = fmt(total(m, "sara_connections"));
  $("online").textContent = fmt(total(m, "sara_sessions_online"));
  if (previous) {
    const dt = (now - previous.at) / 1000;
    const rate = (k) => Math.max(0, (sample[k] - previous[k]) / dt);
    const point = { in: rate("in"), out: rate("out") };
    $("rate-in").textContent = fmt(point.in, 1);
    $("rate-out").textContent = fmt(point.out, 1);
    $("rate-acks").textContent = fmt(rate("acks"), 1);
    points.push(point);
    if (points.length > CHART_POINTS) points.shift();
    const lagCount = sample.lagCount - previous.lagCount;
    sample.lagMs = lagCount > 0 ? (sample.lagSum - previous.lagSum) / lagCount * 1000 : NaN;
  }
  previous = sample;
  drawChart();
}

function showOffline(m) {
  const depthCount = total(m, "sara_offline_inbox_depth_count");
  fillList($("offline"), [
    ["stored for offline users", fmt(total(m, "sara_offline_stored_total"))],
    ["delivered at login", fmt(total(m, "sara_offline_delivered_total"))],
    ["expired", fmt(total(m, "sara_offline_expired_total"))],
    ["dropped (cap, policy, blacklist)", fmt(total(m, "sara_offline_dropped_total"))],
    ["waiting for the store (writer queue)", fmt(total(m, "sara_inbox_writer_backlog"))],
    [
      "average inbox depth when stored",
      depthCount > 0 ? fmt(total(m, "sara_offline_inbox_depth_sum") / depthCount, 1) : "–",
    ],
  ]);
}

function showCallbacks(m) {
  const calls = labelValues(m, "sara_callback_calls_total", "call");
  $("callbacks-none").hidden = calls.length > 0;
  $("callbacks").tBodies[0].replaceChildren(...calls.map((call) => {
    const n = (outcome) => total(m, "sara_callback_calls_total", { call, outcome });
    const count = total(m, "sara_callback_duration_seconds_count", { call });
    const avg = count > 0 ? total(m, "sara_callback_duration_seconds_sum", { call }) / count : NaN;
    const tr = document.createElement("tr");
    tr.append(
      cell(call),
      cell(fmt(n("success")), "num"),
      cell(fmt(n("failure")), "num"),
      cell(fmt(n("error")), n("error") > 0 ? "num bad" : "num"),
      cell(fmt(avg * 1000, 1), "num"),
    );
    return tr;
  }));
}

function showProcess(m) {
  const started = total(m, "sara_process_start_time_seconds");
  const up = Date.now() / 1000 - started;
  const rows = [
    ["logins ok", fmt(total(m, "sara_logins_total", { result: "ok" }))],
    [
      "logins failed",
      fmt(total(m, "sara_logins_total") - total(m, "sara_logins_total", { result: "ok" })),
    ],
    ["kicks (newer login)", fmt(total(m, "sara_kicks_total"))],
    ["refused (server_full)", fmt(total(m, "sara_connections_refused_total"))],
    ["resident memory", mb(total(m, "sara_process_resident_memory_bytes"))],
    ["heap used", mb(total(m, "sara_process_heap_used_bytes"))],
    ["event-loop lag", previous?.lagMs >= 0 ? `${fmt(previous.lagMs, 2)} ms` : "–"],
    ["up", duration(up)],
  ];
  if (m.has("sara_cluster_publishes_total")) {
    rows.push(["cross-node publishes", fmt(total(m, "sara_cluster_publishes_total"))]);
  }
  fillList($("process"), rows);
}

function drawChart() {
  const canvas = $("chart");
  const dpr = globalThis.devicePixelRatio || 1;
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  canvas.width = w * dpr;
  canvas.height = h * dpr;
  const g = canvas.getContext("2d");
  g.scale(dpr, dpr);
  g.clearRect(0, 0, w, h);
  const css = getComputedStyle(document.documentElement);
  const max = Math.max(1, ...points.flatMap((p) => [p.in, p.out])) * 1.15;
  const left = 44;
  g.font = "11px system-ui, sans-serif";
  g.fillStyle = css.getPropertyValue("--muted");
  g.strokeStyle = css.getPropertyValue("--line");
  for (let i = 0; i <= 3; i++) {
    const y = 4 + (h - 12) * i / 3;
    g.beginPath();
    g.moveTo(left, y);
    g.lineTo(w, y);
    g.stroke();
    g.fillText(fmt(max * (3 - i) / 3, 1), 0, y + 4);
  }
  const x = (i) => left + (w - left) * i / (CHART_POINTS - 1);
  const y = (v) => 4 + (h - 12) * (1 - v / max);
  for (const [key, color] of [["in", "--in"], ["out", "--out"]]) {
    g.strokeStyle = css.getPropertyValue(color);
    g.lineWidth = 2;
    g.beginPath();
    const offset = CHART_POINTS - points.length;
    points.forEach((p, i) => (i === 0 ? g.moveTo : g.lineTo).call(g, x(offset + i), y(p[key])));
    g.stroke();
  }
}

// ---- users and groups ----

async function lookup(event) {
  event.preventDefault();
  const jid = $("lookup-jid").value.trim();
  const out = $("lookup-result");
  try {
    const online = (await rpc("emsg_session", "isonline", { jid })).success;
    if (!online) {
      out.textContent = `${jid} is offline`;
      return;
    }
    const res = await fetch(`locate?jid=${encodeURIComponent(jid)}`, {
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
    const node = res.ok ? (await res.json()).node : null;
    out.textContent = `${jid} is online${node ? ` on node ${node}` : ""}`;
  } catch (err) {
    out.textContent = `lookup failed: ${err.message}`;
  }
}

async function reloadGroup(event) {
  event.preventDefault();
  const gid = $("reload-gid").value.trim();
  const domain = $("reload-domain").value.trim();
  const out = $("reload-result");
  try {
    await rpc("emsg_group", "reload", { gid, domain });
    out.textContent = `group ${gid}@${domain}: cached members dropped (${clock()})`;
  } catch (err) {
    out.textContent = `reload failed: ${err.message}`;
  }
}

// ---- test client ----

/** One WebSocket session as an SDK would run it, logging every message and ack. */
class TestClient {
  ws = null;
  jid = "";
  loginId = "";
  heartbeat = 0;
  /** Sent message id -> {ackCell, at}, until its server ack (or a notice) arrives. */
  waiting = new Map();

  login(event) {
    event.preventDefault();
    const secure = location.protocol === "https:";
    const port = secure ? config.wssport : config.wsport;
    if (!port) {
      this.note(`the ${secure ? "WSS" : "WebSocket"} listener of this node is off`);
      return;
    }
    this.jid = $("tc-jid").value.trim();
    const pwd = $("tc-pwd").value;
    const ws = new WebSocket(`${secure ? "wss" : "ws"}://${location.hostname}:${port}/`);
    this.ws = ws;
    this.state("logging in…");
    $("tc-login").disabled = true;
    ws.onopen = () => {
      this.loginId = newId();
      const envelope = { id: this.loginId, type: 0, jid: this.jid };
      if (pwd) envelope.pwd = pwd;
      this.send({ envelope, vsn: VSN });
    };
    ws.onmessage = (e) => this.frame(e.data);
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearInterval(this.heartbeat);
      this.state("offline");
      $("tc-login").disabled = false;
      $("tc-logout").disabled = true;
      $("tc-send").disabled = true;
      this.note("connection closed");
    };
  }

  logout() {
    this.ws?.close();
  }

  send(packet) {
    this.ws?.send(JSON.stringify(packet));
  }

  state(text, kind) {
    setStatus($("tc-state"), text, kind);
  }

  frame(data) {
    if (data === "\\02") return; // heartbeat answer
    if (data === "\\03") {
      this.note("kicked: the same user logged in somewhere else");
      return;
    }
    let p;
    try {
      p = JSON.parse(data);
    } catch {
      this.note(`unreadable frame: ${String(data).slice(0, 80)}`);
      return;
    }
    const env = p.envelope ?? {};
    if (env.type === 0) return this.loginAnswer(p);
    if (env.type === 3 && env.from === undefined && this.waiting.has(env.id)) {
      return this.serverAck(env.id);
    }
    if (env.type === 4 && p.entity?.result === "sys_notify") return this.notice(env.id, p.entity);
    this.received(p, false);
  }

  loginAnswer(p) {
    if (p.entity?.result !== "ok") {
      this.note(`login refused: ${p.entity?.reason ?? "?"}`);
      this.state("refused", "bad");
      return;
    }
    this.state(`online as ${this.jid}`, "ok");
    $("tc-logout").disabled = false;
    $("tc-send").disabled = false;
    this.heartbeat = setInterval(() => this.ws?.send("\\02"), HEARTBEAT_MS);
    const stored = p.delay?.packets ?? [];
    this.note(`logged in; ${stored.length} stored message(s) delivered with the answer`);
    for (const packet of stored) this.received(packet, true);
    // The login id acks the whole stored batch (docs/protocol.md §3).
    if (stored.length > 0) {
      this.send({ envelope: { id: this.loginId, type: 3, from: this.jid, to: "server_ack" } });
    }
  }

  received(p, stored) {
    const env = p.envelope ?? {};
    const peer = env.gid ? `${env.from} (group ${env.gid})` : env.from ?? "server";
    const tr = this.row("in", "←", peer, content(p), env.id);
    const ack = tr.lastChild;
    if (stored) {
      ack.textContent = "acked with the login";
    } else if (env.ack === 1 || env.ack === "1") {
      this.send({ envelope: { id: env.id, type: 3, from: this.jid, to: "server_ack" } });
      ack.textContent = "client ack sent ✓";
      ack.className = "ack acked";
    } else {
      ack.textContent = "no ack asked";
    }
  }

  message(event) {
    event.preventDefault();
    const kind = Number($("tc-kind").value);
    const target = $("tc-to").value.trim();
    const text = $("tc-text").value;
    const wantAck = $("tc-ack").checked;
    const id = newId();
    const envelope = { id, type: kind, from: this.jid };
    if (kind === 2) envelope.gid = target;
    else envelope.to = target;
    if (wantAck) envelope.ack = 1;
    this.send({ envelope, payload: { content: text }, vsn: VSN });
    const tr = this.row("out", "→", kind === 2 ? `group ${target}` : target, text, id);
    // Group messages are always server-acked (docs/protocol.md §4).
    if (wantAck || kind === 2) {
      tr.lastChild.textContent = "waiting for server ack…";
      this.waiting.set(id, { cell: tr.lastChild, at: performance.now() });
    } else {
      tr.lastChild.textContent = "no ack asked";
    }
    $("tc-text").value = "";
  }

  serverAck(id) {
    const w = this.waiting.get(id);
    this.waiting.delete(id);
    w.cell.textContent = `server ack ✓ ${fmt(performance.now() - w.at)} ms`;
    w.cell.className = "ack acked";
  }

  notice(id, entity) {
    const w = this.waiting.get(id);
    if (!w) return this.note(`notice from the server: ${entity.reason}`);
    this.waiting.delete(id);
    w.cell.textContent = `refused: ${entity.reason}`;
    w.cell.className = "ack bad";
  }

  row(dir, arrow, peer, text, id) {
    const tr = document.createElement("tr");
    tr.className = dir;
    tr.dataset.id = id ?? "";
    const idCell = cell((id ?? "").slice(0, 8));
    idCell.title = id ?? "";
    tr.append(cell(clock()), cell(arrow), cell(peer), cell(text), idCell, cell("", "ack"));
    $("tc-log").tBodies[0].prepend(tr);
    return tr;
  }

  note(text) {
    const tr = document.createElement("tr");
    tr.className = "note";
    const td = cell(text);
    td.colSpan = 5;
    tr.append(cell(clock()), td);
    $("tc-log").tBodies[0].prepend(tr);
  }
}

/** What a message says: its payload's `content`, else the payload as JSON. */
function content(p) {
  const c = p.payload?.content;
  if (typeof c === "string") return c;
  return p.payload === undefined ? "" : JSON.stringify(p.payload);
}

// ---- start ----

async function start() {
  config = await (await fetch("config.json")).json();
  $("node").textContent = `node ${config.nodeid}`;
  $("token-form").addEventListener("submit", saveToken);
  $("lookup-form").addEventListener("submit", lookup);
  $("reload-form").addEventListener("submit", reloadGroup);
  const client = new TestClient();
  $("tc-login-form").addEventListener("submit", (e) => client.login(e));
  $("tc-logout").addEventListener("click", () => client.logout());
  $("tc-send-form").addEventListener("submit", (e) => client.message(e));
  if (config.token && !token) askToken();
  await poll();
  setInterval(poll, POLL_MS);
}

start();
