#!/bin/sh
# Classifier-free guidance through the CLI: a --conditional flow-matching run on labelled
# 8gaussians, then `scoreflow sample --class K --guidance G` for every class and several G;
# per (G, class): the share of samples in the requested mode (by the mixture's
# responsibilities), SW₂ (100 random directions) to exact draws of that mode next to the
# noise floor (two exact draw sets of the same size), and the spread (sample std / exact std,
# 1 = exact). Also the exact prior (`--exact 8gaussians`) at the same G.
#
#   sh bench/guidance_sweep.sh [STEPS] [N] [GS]
#   sh bench/guidance_sweep.sh 3000 4000 "0 1 1.5 2 3 5"
set -e
STEPS=${1:-3000}
N=${2:-4000}
GS=${3:-"0 1 1.5 2 3 5"}
PY=${PY:-/tmp/refvenv/bin/python}
BIN=${BIN:-./target/release/scoreflow}
OUT=${OUT:-/tmp/guidance-sweep}
mkdir -p "$OUT"
cargo build --release -p scoreflow-cli
"$BIN" --quiet train --conditional --steps "$STEPS" --out "$OUT/run" --seed 0
for g in $GS; do
    for k in 0 1 2 3 4 5 6 7; do
        "$BIN" --quiet sample "$OUT/run" --class "$k" --guidance "$g" -n "$N" --seed "$k" \
            --out "$OUT/net-g$g-k$k.npy"
        "$BIN" --quiet sample --exact 8gaussians --class "$k" --guidance "$g" -n "$N" \
            --seed "$k" --out "$OUT/exact-g$g-k$k.npy"
    done
done
"$PY" - "$OUT" "$N" $GS <<'PYEOF'
import sys, numpy as np
out, n, gs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
r = 4 / 1.414
c = [(1, 0), (-1, 0), (0, 1), (0, -1)] + [(s * 2 ** -0.5, t * 2 ** -0.5) for s, t in [(1, 1), (1, -1), (-1, 1), (-1, -1)]]
mu, sd = np.array(c) * r, 0.5 / 1.414
rng = np.random.default_rng(0)
dirs = rng.normal(size=(100, 2)); dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
def sw2(a, b):
    pa, pb = np.sort(a @ dirs.T, 0), np.sort(b @ dirs.T, 0)
    return float(np.sqrt(((pa - pb) ** 2).mean()))
def in_mode(x, k):
    d2 = ((x[:, None, :] - mu[None]) ** 2).sum(-1)
    return float((d2.argmin(1) == k).mean())  # equal weights and covariances: argmax resp = nearest mean
print("G (Ho & Salimans w = G - 1) | source | in requested mode (mean over 8 classes, min) | SW2 vs floor (mean) | spread (mean)")
for src in ("net", "exact"):
    for g in gs:
        acc, sws, fl, spr = [], [], [], []
        for k in range(8):
            x = np.load(f"{out}/{src}-g{g}-k{k}.npy")
            ref = mu[k] + sd * rng.normal(size=x.shape); ref2 = mu[k] + sd * rng.normal(size=x.shape)
            acc.append(in_mode(x, k)); sws.append(sw2(x, ref)); fl.append(sw2(ref2, ref))
            spr.append(float(x.std(0).mean() / sd))
        print(f"G={g:>4} {src:>5}: in mode {100*np.mean(acc):6.2f} % (min {100*min(acc):6.2f} %)  SW2 {np.mean(sws):.4f} (floor {np.mean(fl):.4f})  spread {np.mean(spr):.3f}")
PYEOF
