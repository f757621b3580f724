#!/usr/bin/env python3
"""Summarises bench/run.sh results: medians, spread, ratios against targets."""
import json
import statistics
import sys
from collections import defaultdict

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = defaultdict(list)
for r in rows:
    by[r["label"]].append(r)


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def spread(xs):
    return f"{min(xs):.0f}-{max(xs):.0f}" if xs else "-"


def cpu_us(r):
    return r["cpu_s"] * 1e6 / r["total"] if r.get("total") else float("nan")


print()
print("| run | n | rate/s median (min-max) | p50 us | p99 us (min-max) | server CPU us/unit | errors |")
print("|---|---|---|---|---|---|---|")
for label, rs in by.items():
    if "rate" not in rs[0] or label == "sweep/timeline":
        continue
    rates = [r["rate"] for r in rs]
    p99 = [r["p99_us"] for r in rs]
    print(f"| {label} | {len(rs)} | {med(rates):.0f} ({spread(rates)}) | {med([r['p50_us'] for r in rs]):.0f} "
          f"| {med(p99):.0f} ({spread(p99)}) | {med([cpu_us(r) for r in rs]):.1f} | {sum(r['errors'] for r in rs)} |")


def ratio(num, den, key, f=med):
    a, b = by.get(num, []), by.get(den, [])
    if not a or not b:
        return None, None
    of_medians = f([r[key] for r in a]) / f([r[key] for r in b])
    paired = [x[key] / y[key] for x, y in zip(a, b) if y[key]]
    return of_medians, (med(paired) if paired else None)


def cpu_ratio(num, den):
    a, b = by.get(num, []), by.get(den, [])
    if not a or not b:
        return None
    return med([cpu_us(r) for r in b]) / med([cpu_us(r) for r in a])


checks = [
    ("pass-through throughput, layer / no layer", "pass/layer", "pass/bare", "rate", ">=", 0.98),
    ("pass-through p99, layer / no layer", "pass/layer", "pass/bare", "p99_us", "<=", 1.02),
    ("push throughput, layer / ceiling", "push/layer", "push/ceiling", "rate", ">=", 0.70),
    ("flow throughput, layer / ceiling", "flow/layer", "flow/ceiling", "rate", ">=", 0.70),
    ("flow p99, layer / ceiling", "flow/layer", "flow/ceiling", "p99_us", "<=", 1.5),
    ("push p50 with FILL pending / empty", "mem/push-full", "mem/push-empty", "p50_us", "<=", 1.2),
    ("push p99 with FILL pending / empty", "mem/push-full", "mem/push-empty", "p99_us", "<=", 1.2),
    ("push throughput, 2 / 1 workers", "scale/push-w2", "scale/push-w1", "rate", ">", 1.0),
    ("flow throughput, 2 / 1 workers", "scale/flow-w2", "scale/flow-w1", "rate", ">", 1.0),
    ("(reference) ceiling push, 2 / 1 workers", "scale/ceiling-push-w2", "scale/ceiling-push-w1", "rate", ">", 1.0),
]
print()
print("| target | ratio of medians | median of paired ratios | server-CPU ratio | target | met |")
print("|---|---|---|---|---|---|")
for name, a, b, key, op, goal in checks:
    m, p = ratio(a, b, key)
    if m is None:
        continue
    c = cpu_ratio(a, b) if key == "rate" else None
    met = {">=": m >= goal, "<=": m <= goal, ">": m > goal}[op]
    ctext = f"{c:.3f}" if c is not None else "-"
    print(f"| {name} | {m:.3f} | {p:.3f} | {ctext} | {op} {goal} | {'yes' if met else 'NO'} |")

for r in by.get("mem/rss", []):
    print(f"\nRSS {r['rss_before_kb']} kB -> {r['rss_after_kb']} kB for {r['entries']} pending requests: "
          f"{r['bytes_per_entry']} B each (target <= 800)")
for r in by.get("sweep/timeline", []):
    fresh = by.get("sweep/flow-fresh", [])
    fresh_p99 = med([x["p99_us"] for x in fresh]) if fresh else float("nan")
    print(f"\nsweep: {r['seconds']} one-second windows while the filled requests expired: "
          f"p99 median {r['p99_median_us']} us, worst second {r['p99_worst_second_us']} us "
          f"(fresh server p99 {fresh_p99:.0f} us); flows/s per second min {r['rate_min']} median {r['rate_median']}; "
          f"errors {r['errors']}")
print()
print("server CPU ratio: (CPU us per unit of the baseline) / (CPU us per unit of the layer run),")
print("a throughput ratio that other load on the machine distorts less.")
