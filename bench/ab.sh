#!/usr/bin/env bash
# A/B comparison of two builds of the hyper_server example (for example
# before and after an optimisation), interleaved, same pinning as run.sh.
#
#   bench/ab.sh OLD_BINARY NEW_BINARY [SCENARIOS]
#
# SCENARIOS defaults to "push flow"; REPEATS, SECS, WARMUP, CONNS as in
# run.sh. Prints medians and NEW/OLD ratios (rate, and server CPU per unit).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OLD=$1 NEW=$2
SCENARIOS=${3:-push flow}
export REPEATS=${REPEATS:-5} SECS=${SECS:-3} WARMUP=${WARMUP:-1}
OUT=${OUT:-target/bench-ab}
mkdir -p "$OUT"
: >"$OUT/ab.jsonl"
for r in $(seq "$REPEATS"); do
  for sc in $SCENARIOS; do
    for v in old new; do
      bin=$OLD; [[ $v == new ]] && bin=$NEW
      SERVER_BIN=$bin PARTS=one ONE="$sc" OUT=$OUT/run bash bench/run.sh >/dev/null 2>&1
      python3 -c 'import json,sys; d=json.loads(open(sys.argv[1]).read().splitlines()[-1]); d["label"]=sys.argv[2]; print(json.dumps(d))' "$OUT/run/results.jsonl" "$sc/$v" >>"$OUT/ab.jsonl"
    done
  done
done
python3 bench/summary.py "$OUT/ab.jsonl" >"$OUT/summary.txt"; sed -n 1,12p "$OUT/summary.txt"
python3 - "$OUT/ab.jsonl" <<'PY'
import json, statistics, sys
from collections import defaultdict
by = defaultdict(list)
for l in open(sys.argv[1]):
    d = json.loads(l); by[d["label"]].append(d)
cpu = lambda r: r["cpu_s"] * 1e6 / r["total"]
for sc in sorted({k.split("/")[0] for k in by}):
    o, n = by[sc + "/old"], by[sc + "/new"]
    med = statistics.median
    print(f"{sc}: rate new/old {med([r['rate'] for r in n]) / med([r['rate'] for r in o]):.3f}, "
          f"server CPU per unit old/new {med([cpu(r) for r in o]) / med([cpu(r) for r in n]):.3f}, "
          f"p99 new/old {med([r['p99_us'] for r in n]) / med([r['p99_us'] for r in o]):.3f}")
PY
