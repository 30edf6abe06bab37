#!/usr/bin/env bash
# Reruns the benchmark table of BENCHMARKS.md ("Cross-node and tail table"):
# every scenario RUNS times (default 3) on freshly started servers, with both
# load clients (`sara bench` and the independent scripts/loadclient), and
# prints one JSON object per run on stdout, then one summary object with the
# median of each figure. Each run records the load average before it
# (/proc/loadavg): on a shared machine, figures of busy runs are not
# comparable.
#
# Needs: redis-server and redis-cli (7.x), node (18+), and Deno from
# `npm ci` (node_modules/deno/deno). Loopback only; ports 14xxx and 163xx by
# default (away from the test suite's 30000-65535, see tests/helpers/ports.ts,
# and the kernel's ephemeral range), or from PORT_BASE: the nodes on PORT_BASE and PORT_BASE+100 (each
# with +2, +58, +59), Redis on +200, the Redis Cluster on +211..+213 (buses
# +311..+313). Takes about 25 minutes with RUNS=3.
#
#   scripts/bench_table.sh [RUNS] > table.json
#   SCENARIOS="embedded xnode" scripts/bench_table.sh 1   # a subset
#
# Scenarios: xnode (2 nodes, one Redis, and one node on that Redis for the
# ratio), xcluster (2 nodes, 3-master Redis Cluster), embedded (one node, the
# embedded store, windows 10 and 1), conns (19,000 idle logged-in
# connections, RSS per connection 1 s after the last login).

set -euo pipefail
RUNS=${1:-3}
SCENARIOS=${SCENARIOS:-"xnode xcluster embedded conns"}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DENO=${DENO:-$ROOT/node_modules/deno/deno}
LOADCLIENT=$ROOT/scripts/loadclient/loadclient.mjs
WORK=$(mktemp -d /tmp/sara-bench-table.XXXXXX)
# Flags the server runs with: those of `deno task start` (see deno.json).
SERVER_FLAGS=${SERVER_FLAGS:-$(node -e '
  const t = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).tasks.start;
  const m = /deno run (.*) main\.ts/.exec(t); process.stdout.write(m ? m[1] : "--allow-all");
' "$ROOT/deno.json")}
if [ -n "${PORT_BASE:-}" ]; then
  N1=$PORT_BASE N2=$((PORT_BASE + 100)) REDIS=$((PORT_BASE + 200)) CLUSTER=$((PORT_BASE + 211))
else
  N1=14222 N2=14322 REDIS=16379 CLUSTER=16391
fi
BUS_OFFSET=100
PIDS=()

cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  sleep 0.5
  rm -rf "$WORK"
}
trap cleanup EXIT

log() { echo "bench_table: $*" >&2; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# Waits until HOST:PORT accepts a connection (at most 20 s).
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.2
  done
  log "nothing listens on $1"
  return 1
}

# start_redis PORT [cluster]: a fresh redis-server (AOF everysec, no RDB).
start_redis() {
  local port=$1 dir=$WORK/redis-$1
  rm -rf "$dir" && mkdir -p "$dir"
  local extra=()
  if [ "${2:-}" = cluster ]; then
    extra=(--cluster-enabled yes --cluster-config-file "$dir/nodes.conf" --cluster-port $((port + BUS_OFFSET)))
  fi
  redis-server --port "$port" --bind 127.0.0.1 --appendonly yes --appendfsync everysec --save "" \
    --dir "$dir" "${extra[@]}" >"$dir/log" 2>&1 &
  PIDS+=($!)
  wait_port "$port"
}

stop_all() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  PIDS=()
}

# start_node NAME PORT DBADDR NODEID: a sara server; its pid is in $WORK/NAME/sara.pid.
start_node() {
  local name=$1 port=$2 dbaddr=$3 nodeid=$4 dir=$WORK/$1
  rm -rf "$dir" && mkdir -p "$dir"
  cat >"$dir/conf.json" <<EOF
{"bind":"127.0.0.1","port":$port,"wsport":$((port + 2)),"rpcport":$((port + 58)),
 "nodeaddr":"127.0.0.1:$((port + 59))","nodeid":"$nodeid","dbaddr":"$dbaddr",
 "datadir":"$dir/data","logfile":"","loglevel":0,"pidfile":"$dir/sara.pid",
 "rate_limit":100000,"enable_ws":false}
EOF
  # shellcheck disable=SC2086 # SERVER_FLAGS holds several flags
  (cd "$ROOT" && exec "$DENO" run --no-lock $SERVER_FLAGS main.ts \
    -c "$dir/conf.json" >"$dir/log" 2>&1) &
  PIDS+=($!)
  wait_port "$port"
  for _ in $(seq 50); do [ -s "$dir/sara.pid" ] && break; sleep 0.1; done
}

pid_of() { cat "$WORK/$1/sara.pid"; }

# emit SCENARIO CLIENT RUN LOAD JSON: one result line.
emit() {
  node -e '
    const [scenario, client, run, load, text] = process.argv.slice(1);
    let result; try { result = JSON.parse(text); } catch { result = { error: text.slice(0, 500) }; }
    console.log(JSON.stringify({ scenario, client, run: Number(run), loadavg: load, result }));
  ' "$1" "$2" "$3" "$4" "$5" | tee -a "$WORK/results.jsonl"
}

bench() {
  (cd "$ROOT" && "$DENO" run --no-lock --allow-all main.ts bench "$@" --json) || true
}

lc() { timeout 120 node "$LOADCLIENT" "$@" || true; }

# Two nodes on DBADDR, then both clients cross-node; SCEN names the result.
cross_node() {
  local scen=$1 dbaddr=$2 run=$3 load
  start_node n1 $N1 "$dbaddr" n01
  start_node n2 $N2 "$dbaddr" n02
  load=$(loadavg)
  emit "$scen" loadclient "$run" "$load" "$(lc --senders 127.0.0.1:$N1 --recipients 127.0.0.1:$N2 \
    --pairs 100 --window 10 --warmup 3 --duration 15 --pids "$(pid_of n1),$(pid_of n2)")"
  load=$(loadavg)
  emit "$scen" sara-bench "$run" "$load" "$(bench cluster -a 127.0.0.1:$N1,127.0.0.1:$N2 \
    -p 100 -w 10 -d 8)"
}

one_node() {
  local scen=$1 dbaddr=$2 run=$3 window=$4 load
  start_node n1 $N1 "$dbaddr" n01
  load=$(loadavg)
  emit "$scen" loadclient "$run" "$load" "$(lc --server 127.0.0.1:$N1 --pairs 100 \
    --window "$window" --warmup 3 --duration 15 --pids "$(pid_of n1)")"
  load=$(loadavg)
  emit "$scen" sara-bench "$run" "$load" "$(bench p2p -a 127.0.0.1:$N1 -p 100 -w "$window" -d 8)"
}

make_cluster() {
  for p in $CLUSTER $((CLUSTER + 1)) $((CLUSTER + 2)); do start_redis $p cluster; done
  redis-cli --cluster create 127.0.0.1:$CLUSTER 127.0.0.1:$((CLUSTER + 1)) 127.0.0.1:$((CLUSTER + 2)) \
    --cluster-replicas 0 --cluster-yes >/dev/null
  for _ in $(seq 50); do
    redis-cli -p $CLUSTER cluster info | grep -q cluster_state:ok && return 0
    sleep 0.2
  done
  log "Redis Cluster did not come up"
  return 1
}

for run in $(seq "$RUNS"); do
  for scen in $SCENARIOS; do
    log "run $run: $scen (load $(loadavg))"
    case $scen in
      xnode)
        start_redis $REDIS
        cross_node xnode 127.0.0.1:$REDIS "$run"
        stop_all
        start_redis $REDIS
        one_node xnode-1node 127.0.0.1:$REDIS "$run" 10
        stop_all
        ;;
      xcluster)
        make_cluster
        cross_node xcluster "127.0.0.1:$CLUSTER,127.0.0.1:$((CLUSTER + 1)),127.0.0.1:$((CLUSTER + 2))" "$run"
        stop_all
        ;;
      embedded)
        one_node embedded-w10 "" "$run" 10
        stop_all
        one_node embedded-w1 "" "$run" 1
        stop_all
        ;;
      conns)
        start_node n1 $N1 "" n01
        s=$((100 + run))
        load=$(loadavg)
        emit conns sara-bench "$run" "$load" "$(bench conns -a 127.0.0.1:$N1 -n 19000 -c 500 \
          -l "127.0.$s.1,127.0.$s.2,127.0.$s.3,127.0.$s.4,127.0.$s.5" --pidfile "$WORK/n1/sara.pid")"
        stop_all
        ;;
      *) log "unknown scenario $scen" && exit 2 ;;
    esac
  done
done

# Medians per scenario and client of the figures the table quotes.
node -e '
  const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
  const pick = (r) => r.msgs_per_s !== undefined
    ? { msgs_per_s: r.msgs_per_s, p99_ms: r.latency_ms.p99, max_ms: r.latency_ms.max,
        lost: r.lost, reordered: r.reordered,
        // CPU the servers spent per delivered message: steadier than msgs/s on a busy machine.
        server_cpu_us_per_msg: Math.round(Object.values(r.process_cpu_s ?? {}).reduce((a, b) => a + b, 0) *
          1e6 / (r.msgs_per_s * r.params.duration_s) * 10) / 10 }
    : Object.fromEntries(Object.entries(r.metrics ?? {}).filter(([k]) =>
        /delivered_per_s|latency_ms_p99|latency_ms_max|lost|reordered|kib_per_conn|rss_after|connect_login_per_s/.test(k)));
  const groups = {};
  for (const l of lines) (groups[`${l.scenario} ${l.client}`] ??= []).push({ ...pick(l.result), loadavg: l.loadavg });
  const median = (xs) => { const s = xs.filter((x) => typeof x === "number").sort((a, b) => a - b);
    return s.length ? s[Math.floor((s.length - 1) / 2)] : null; };
  const summary = {};
  for (const [k, runs] of Object.entries(groups)) {
    const keys = Object.keys(runs[0]).filter((x) => x !== "loadavg");
    summary[k] = { median: Object.fromEntries(keys.map((x) => [x, median(runs.map((r) => r[x]))])), runs };
  }
  console.log(JSON.stringify({ summary }));
' "$WORK/results.jsonl"
