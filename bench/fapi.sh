#!/usr/bin/env bash
# The FAPI push benchmark (benches/fapi.rs) as µs per push and throughput
# ratios against the Basic push measured in the same run.
#
#   bash bench/fapi.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo bench --bench fapi >/dev/null
python3 - <<'PY'
import json, pathlib
root = pathlib.Path("target/criterion/fapi_push")
def mean_us(case):
    est = json.loads((root / case / "new" / "estimates.json").read_text())
    return est["median"]["point_estimate"] / 1000.0
base = (mean_us("basic") + mean_us("basic_again")) / 2
print(f"{'push':34} {'µs/push':>9} {'throughput vs basic':>20}")
for case in ["basic", "private_key_jwt_es256", "private_key_jwt_ps256",
             "private_key_jwt_es256_dpop", "private_key_jwt_ps256_dpop", "basic_again"]:
    us = mean_us(case)
    print(f"{case:34} {us:9.1f} {base / us:20.4f}")
PY
