#!/usr/bin/env bash
# par-proxy's cost, in one run, interleaved:
#
#   pass/direct   GET /hello straight to the upstream
#   pass/proxy    the same through par-proxy
#   pass/nginx    the same through Debian's nginx (proxy_pass, keepalive)
#   push/layer    POST /par to the layer in-process (hyper_server example)
#   push/proxy    POST /par to par-proxy (the layer in front of the forwarder)
#
# The upstream is the bare-hyper ceiling of examples/hyper_server.rs
# (current-thread runtime, reads the body, answers). The server side (the
# upstream plus the proxy or nginx) is pinned to core SERVER_CPU, the load
# generator (examples/loadgen.rs) to LOAD_CPU; par-proxy runs one tokio
# worker and nginx one worker process, both with access logs off.
#
# Environment (defaults in brackets): REPEATS [5], SECS [5], WARMUP [1],
# CONNS [32], SERVER_CPU [0], LOAD_CPU [1], OUT [target/bench-proxy].
# Every load loop is bounded by time; only 127.0.0.1 is targeted.
#
#   bash bench/proxy.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPEATS=${REPEATS:-5}
SECS=${SECS:-5}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-32}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
OUT=${OUT:-$PWD/target/bench-proxy}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
UP_PORT=3191
PROXY_PORT=3192
NGINX_PORT=3193
LAYER_PORT=3194

command -v nginx >/dev/null || { echo "nginx not found: apt-get install -y nginx" >&2; exit 1; }
cargo build --release --example hyper_server --example loadgen -p tower-par >&2
cargo build --release -p par-proxy >&2
BIN=$CARGO_TARGET_DIR/release
mkdir -p "$OUT/nginx/logs"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"

cat >"$OUT/clients.json" <<'EOF'
{"clients": [{"client_id": "demo-client", "client_secret": "demo-secret",
  "token_endpoint_auth_method": "client_secret_basic",
  "redirect_uris": ["http://127.0.0.1:8080/cb"]}]}
EOF
cat >"$OUT/proxy.toml" <<EOF
listen = "127.0.0.1:$PROXY_PORT"
upstream = "http://127.0.0.1:$UP_PORT"
[par]
metadata = false
lifetime_secs = 600
[store]
max_pending = 2000000
max_pending_per_client = 2000000
max_pending_bytes = 4294967296
[clients]
file = "$OUT/clients.json"
EOF
cat >"$OUT/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $OUT/nginx/nginx.pid;
error_log $OUT/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  # Keep-alive both ways without a request cap (the load generator's
  # connections live for the whole run, as par-proxy's do).
  upstream up { server 127.0.0.1:$UP_PORT; keepalive 64; keepalive_requests 10000000; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    keepalive_requests 10000000;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
}
EOF

PIDS=()
stop_all() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}
trap stop_all EXIT

wait_port() {
  for _ in $(seq 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "nothing listens on $1" >&2
  exit 1
}

start_upstream() {
  env ADDR=127.0.0.1:$UP_PORT PAR_LAYER=ceiling RUNTIME=per-thread WORKERS=1 taskset -c "$SERVER_CPU" \
    "$BIN/examples/hyper_server" >"$OUT/upstream.log" 2>&1 &
  PIDS+=($!)
  wait_port "$UP_PORT"
}
start_proxy() {
  env RUST_LOG=warn TOKIO_WORKER_THREADS=1 taskset -c "$SERVER_CPU" \
    "$BIN/par-proxy" --config "$OUT/proxy.toml" >"$OUT/proxy.log" 2>&1 &
  PIDS+=($!)
  wait_port "$PROXY_PORT"
}
start_nginx() {
  taskset -c "$SERVER_CPU" nginx -p "$OUT/nginx" -c "$OUT/nginx/nginx.conf" >"$OUT/nginx.log" 2>&1 &
  PIDS+=($!)
  wait_port "$NGINX_PORT"
}
start_layer() {
  env ADDR=127.0.0.1:$LAYER_PORT PAR_LAYER=1 RUNTIME=per-thread WORKERS=1 PAR_LIFETIME=600 \
    PAR_MAX_PENDING=2000000 PAR_MAX_PENDING_PER_CLIENT=2000000 taskset -c "$SERVER_CPU" \
    "$BIN/examples/hyper_server" >"$OUT/layer.log" 2>&1 &
  PIDS+=($!)
  wait_port "$LAYER_PORT"
}

load() { # LABEL PORT SCENARIO
  local line
  line=$(taskset -c "$LOAD_CPU" "$BIN/examples/loadgen" --addr "127.0.0.1:$2" --scenario "$3" \
    --conns "$CONNS" --secs $((SECS + WARMUP)) --warmup "$WARMUP" --json | tail -1)
  python3 -c 'import json,sys; d=json.loads(sys.argv[2]); d["label"]=sys.argv[1]; print(json.dumps(d))' \
    "$1" "$line" >>"$RESULTS"
  echo "  $1: $(tail -1 "$RESULTS" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("%(rate).0f/s p50=%(p50_us)dus p99=%(p99_us)dus errors=%(errors)d" % d)')" >&2
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" >&2
echo "REPEATS=$REPEATS SECS=$SECS WARMUP=$WARMUP CONNS=$CONNS" >&2
for r in $(seq "$REPEATS"); do
  echo "round $r/$REPEATS" >&2
  start_upstream
  load pass/direct "$UP_PORT" pass
  start_proxy
  load pass/proxy "$PROXY_PORT" pass
  load push/proxy "$PROXY_PORT" push
  start_nginx
  load pass/nginx "$NGINX_PORT" pass
  stop_all
  start_layer
  load push/layer "$LAYER_PORT" push
  stop_all
done

python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["label"], []).append(r)
def med(label, key="rate"):
    return statistics.median(r[key] for r in by[label])
print(f"{'case':14} {'req/s (median)':>15} {'p50 µs':>8} {'p99 µs':>8} {'errors':>7}")
for label in ["pass/direct", "pass/proxy", "pass/nginx", "push/layer", "push/proxy"]:
    errs = sum(r["errors"] for r in by[label])
    print(f"{label:14} {med(label):15.0f} {med(label,'p50_us'):8.0f} {med(label,'p99_us'):8.0f} {errs:7d}")
print()
print(f"pass-through, proxy / direct: {med('pass/proxy') / med('pass/direct'):.3f}")
print(f"pass-through, nginx / direct: {med('pass/nginx') / med('pass/direct'):.3f}")
print(f"pass-through, proxy / nginx:  {med('pass/proxy') / med('pass/nginx'):.3f}")
print(f"push, proxy / in-process layer: {med('push/proxy') / med('push/layer'):.3f}")
PY
