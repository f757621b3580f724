#!/usr/bin/env bash
# Load benchmarks of tower-par: the layer against the same server without
# it and against the bare-hyper ceiling, in one run, interleaved.
#
# The server (examples/hyper_server.rs) is pinned to one core and the load
# generator (examples/loadgen.rs) to another with taskset. Every comparison
# is made between runs adjacent in time (layer / baseline / ceiling in turn,
# REPEATS times), and the summary prints medians, spread and ratios, so a
# shared, noisy machine still gives usable figures.
#
# Environment (defaults in brackets):
#   REPEATS [5]      rounds of every comparison
#   SECS [5]         recorded seconds per run (after WARMUP)
#   WARMUP [1]       unrecorded seconds at the start of each run
#   CONNS [32]       connections
#   SERVER_CPU [0]   core for the server; LOAD_CPU [1] core for the loadgen
#   FILL [1000000]   pending requests for the memory and sweep checks
#   The scaling part also runs examples/scaling.rs (no sockets).
#   PARTS [main,memory,sweep,scaling]  which parts to run
#   OUT [target/bench-results]         where raw results go
#   QUICK=1          REPEATS=3 SECS=2 WARMUP=1 FILL=200000
#
# Every load loop is bounded by time and count; only 127.0.0.1 is targeted.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ "${QUICK:-0}" == 1 ]]; then
  : "${REPEATS:=3}" "${SECS:=2}" "${WARMUP:=1}" "${FILL:=200000}"
fi
REPEATS=${REPEATS:-5}
SECS=${SECS:-5}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-32}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
FILL=${FILL:-1000000}
PARTS=${PARTS:-main,memory,sweep,scaling}
OUT=${OUT:-target/bench-results}
PORT=${PORT:-3181}
ADDR=127.0.0.1:$PORT
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}

[[ $PARTS == one ]] || cargo build --release --example hyper_server --example loadgen >&2
BIN=$CARGO_TARGET_DIR/release/examples
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"

SERVER_PID=
stop_server() {
  if [[ -n "$SERVER_PID" ]]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
  fi
}
trap stop_server EXIT

# start_server MODE [VAR=value...]: MODE is layer, bare or ceiling.
start_server() {
  local mode=$1
  shift
  local layer=1 pin=(taskset -c "$SERVER_CPU")
  case $mode in
    bare) layer=0 ;;
    ceiling) layer=ceiling ;;
  esac
  [[ "${UNPINNED:-0}" == 1 ]] && pin=()
  env ADDR=$ADDR WORKERS=${WORKERS:-1} PAR_LAYER=$layer \
    PAR_MAX_PENDING=${MAX_PENDING:-4000000} PAR_MAX_PENDING_PER_CLIENT=${MAX_PENDING:-4000000} \
    "$@" "${pin[@]}" "${SERVER_BIN:-$BIN/hyper_server}" >"$OUT/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do
    if (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "server did not start" >&2
  cat "$OUT/server.log" >&2
  exit 1
}

# Server CPU time (user + system) in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$SERVER_PID/status"; }

# load LABEL SCENARIO [loadgen args...]: one bounded loadgen run, appended
# to the results as JSON with the server's CPU time per unit of work.
load() {
  local label=$1 scenario=$2
  shift 2
  local pin=(taskset -c "$LOAD_CPU")
  [[ "${UNPINNED:-0}" == 1 ]] && pin=()
  local t0 t1 line
  t0=$(cpu_ticks)
  line=$("${pin[@]}" "$BIN/loadgen" --addr "$ADDR" --scenario "$scenario" --conns "$CONNS" \
    --secs $((SECS + WARMUP)) --warmup "$WARMUP" --json "$@" | tail -1)
  t1=$(cpu_ticks)
  local tick
  tick=$(getconf CLK_TCK)
  python3 - "$label" "$line" "$t0" "$t1" "$tick" >>"$RESULTS" <<'EOF'
import json, sys
label, line, t0, t1, tick = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
line["label"] = label
# Server CPU time over the whole run, warm-up included.
line["cpu_s"] = (t1 - t0) / tick
print(json.dumps(line))
EOF
  echo "  $label: $(tail -1 "$RESULTS" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("%(rate).0f/s p50=%(p50_us)dus p99=%(p99_us)dus errors=%(errors)d" % d)')" >&2
}

run_one() { # MODE SCENARIO LABEL [server env...]
  local mode=$1 scenario=$2 label=$3
  shift 3
  start_server "$mode" "$@"
  load "$label" "$scenario"
  stop_server
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" >&2
echo "REPEATS=$REPEATS SECS=$SECS WARMUP=$WARMUP CONNS=$CONNS FILL=$FILL" >&2

if [[ $PARTS == *main* ]]; then
  for r in $(seq "$REPEATS"); do
    echo "round $r/$REPEATS" >&2
    run_one bare pass "pass/bare"
    run_one layer pass "pass/layer"
    run_one ceiling push "push/ceiling"
    run_one layer push "push/layer"
    run_one ceiling flow "flow/ceiling"
    run_one layer flow "flow/layer"
  done
fi

if [[ $PARTS == one ]]; then
  # One run of scenario ONE against the layer (used by bench/ab.sh).
  start_server "${MODE:-layer}"
  load "${ONE}/${MODE:-layer}" "$ONE"
  stop_server
  exit 0
fi

if [[ $PARTS == *memory* ]]; then
  echo "memory: $FILL pending requests" >&2
  for r in $(seq "$REPEATS"); do
    # Push latency on an empty store, then with FILL requests pending.
    run_one layer push "mem/push-empty"
    start_server layer PAR_LIFETIME=600
    "$BIN/loadgen" --addr "$ADDR" --scenario fill --conns "$CONNS" --max 20000 >/dev/null
    before=$(rss_kb)
    taskset -c "$LOAD_CPU" "$BIN/loadgen" --addr "$ADDR" --scenario fill --conns "$CONNS" --max "$FILL" >&2
    after=$(rss_kb)
    echo "{\"label\":\"mem/rss\",\"rss_before_kb\":$before,\"rss_after_kb\":$after,\"entries\":$FILL,\"bytes_per_entry\":$(( (after - before) * 1024 / FILL ))}" >>"$RESULTS"
    echo "  RSS $before kB -> $after kB: $(( (after - before) * 1024 / FILL )) B per pending request" >&2
    load "mem/push-full" push
    stop_server
    [[ "${QUICK:-0}" == 1 ]] && break
  done
fi

if [[ $PARTS == *sweep* ]]; then
  # FILL requests expire while flows run: the per-second p99 must not spike.
  echo "sweep: $FILL requests expiring under load" >&2
  lifetime=$(( FILL / 25000 + 10 ))
  start_server layer PAR_LIFETIME=$lifetime
  taskset -c "$LOAD_CPU" "$BIN/loadgen" --addr "$ADDR" --scenario fill --conns "$CONNS" --max "$FILL" >&2
  # Flows from the end of the fill until every filled entry has expired
  # (the first expire `lifetime` seconds after the fill started).
  span=$(( lifetime + 5 ))
  taskset -c "$LOAD_CPU" "$BIN/loadgen" --addr "$ADDR" --scenario flow --conns "$CONNS" \
    --secs "$span" --warmup 0 --timeline --json >"$OUT/sweep-timeline.txt"
  stop_server
  start_server layer
  load "sweep/flow-fresh" flow
  stop_server
  python3 - "$OUT/sweep-timeline.txt" >>"$RESULTS" <<'EOF'
import json, re, sys
rows = []
for line in open(sys.argv[1]):
    m = re.match(r"t=\s*(\d+)s\s+n=\s*(\d+)\s+p50=\s*(\d+)us\s+p99=\s*(\d+)us\s+max=\s*(\d+)us", line)
    if m:
        rows.append([int(x) for x in m.groups()])
    elif line.startswith("{"):
        total = json.loads(line)
full = [r for r in rows[1:-1]]
p99s = sorted(r[3] for r in full)
print(json.dumps({"label": "sweep/timeline", "seconds": len(full),
    "p99_median_us": p99s[len(p99s)//2] if p99s else 0,
    "p99_worst_second_us": max(p99s) if p99s else 0,
    "rate_min": min(r[1] for r in full) if full else 0,
    "rate_median": sorted(r[1] for r in full)[len(full)//2] if full else 0,
    "p99_us": total["p99_us"], "rate": total["rate"], "errors": total["errors"]}))
EOF
fi

if [[ $PARTS == *scaling* ]]; then
  # Over HTTP: 1 vs 2 server threads, each a single-threaded runtime with
  # its own SO_REUSEPORT socket, nothing pinned (the load generator shares
  # the two cores). The ceiling runs the same way, for reference: on two
  # cores the load generator and the loopback's kernel work bound what any
  # server can gain from a second thread.
  echo "scaling: 1 vs 2 server threads, unpinned" >&2
  for r in $(seq "$REPEATS"); do
    for w in 1 2; do
      WORKERS=$w UNPINNED=1 run_one layer push "scale/push-w$w" RUNTIME=per-thread
      WORKERS=$w UNPINNED=1 run_one layer flow "scale/flow-w$w" RUNTIME=per-thread
      WORKERS=$w UNPINNED=1 run_one ceiling push "scale/ceiling-push-w$w" RUNTIME=per-thread
    done
  done
  # Without sockets: the layer's own work on 1 and 2 threads.
  cargo build --release --example scaling >&2
  "$BIN/scaling" --secs "$SECS" --rounds "$REPEATS" --threads 2 | tee "$OUT/scaling-inproc.txt" >&2
fi

python3 bench/summary.py "$RESULTS"
