#!/usr/bin/env python3
"""Summarise bench/compare.sh output: median of each metric per (engine, width, batch, points) and
the ratio to PyTorch from the same run. Usage: python3 bench/summarize.py results.jsonl"""
import json
import statistics as st
import sys
from collections import defaultdict

runs = defaultdict(list)
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith("{"):
        r = json.loads(line)
        runs[(r["width"], r["batch"], r["sample_points"], r["engine"])].append(r)


def med(rs, f):
    vals = [f(r) for r in rs if f(r) is not None]
    return st.median(vals) if vals else None


def get(path):
    def f(r):
        for k in path.split("."):
            r = r.get(k) if isinstance(r, dict) else None
        return r
    return f


metrics = [("train steps/s", "train_steps_per_s", 1), ("sample pt-steps/s", "sample_point_steps_per_s", 1),
           ("dopri5 ms/NFE", "dopri5.ms_per_nfe", -1), ("nll ms/NFE", "nll.ms_per_nfe", -1)]
peak = med([r for k, v in runs.items() for r in v if "gemm_peak_gflops" in r], get("gemm_peak_gflops"))
print(f"GEMM peak (median, gemm crate 1024^3): {peak and round(peak, 1)} GFLOP/s")
print("| width | batch | points | engine | n | " + " | ".join(f"{m[0]} (× torch)" for m in metrics) + " | train GFLOP/s (% peak) | sample GFLOP/s (% peak) |")
print("|" + "---|" * (6 + len(metrics) + 2))
for key in sorted(runs, key=lambda k: (-k[0], -k[2], k[3] != "torch", k[3])):
    w, b, p, e = key
    rs = runs[key]
    base = runs.get((w, b, p, "torch"), [])
    cells = []
    for _, path, sign in metrics:
        v, t = med(rs, get(path)), med(base, get(path))
        if v is None:
            cells.append("–")
        elif e == "torch" or t is None:
            cells.append(f"{v:,.4g}")
        else:
            ratio = (v / t) if sign > 0 else (t / v)
            cells.append(f"{v:,.4g} ({ratio:.2f}×)")
    tg, sg = med(rs, get("train_gflops")), med(rs, get("sample_gflops"))
    pct = lambda g: f"{g:.0f} ({100 * g / peak:.0f}%)" if (g and peak) else "–"
    print(f"| {w} | {b} | {p} | {e} | {len(rs)} | " + " | ".join(cells) + f" | {pct(tg)} | {pct(sg)} |")
