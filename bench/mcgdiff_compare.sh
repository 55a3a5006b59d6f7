#!/bin/sh
# DPS side by side, Rust vs PyTorch, on the same MCGdiff Gaussian-mixture problems:
# the Rust example writes each problem (prior weights, A, y, σ, 2,000 exact-posterior reference
# draws) and its own DPS results; bench/mcgdiff_dps.py runs PyTorch DPS (float64, autograd
# through the exact prior score) on the same files; the summary prints mean SW₁ ± SE and the
# mean wall time per run for both, and the speed ratio.
#
#   sh bench/mcgdiff_compare.sh [DIMS] [DYS] [PROBLEMS] [NFE] [ZETA] [THREADS]
#   sh bench/mcgdiff_compare.sh 8,80,800 1,2,4 5 500 0.3 2
set -e
DIMS=${1:-8,80}
DYS=${2:-1,2,4}
PROBLEMS=${3:-5}
NFE=${4:-500}
ZETA=${5:-0.3}
THREADS=${6:-2}
PY=${PY:-/tmp/refvenv/bin/python}
OUT=${OUT:-bench/results/dps-compare}
mkdir -p "$OUT"
cargo build --release -p scoreflow --example mcgdiff
RAYON_NUM_THREADS=$THREADS ./target/release/examples/mcgdiff --dims "$DIMS" --dys "$DYS" \
    --problems "$PROBLEMS" --nfe "$NFE" --zeta "$ZETA" --methods dps \
    --problems-json "$OUT" --out "$OUT/rust.jsonl" > "$OUT/rust.txt"
"$PY" bench/mcgdiff_dps.py "$OUT" --nfe "$NFE" --zeta "$ZETA" --threads "$THREADS" > "$OUT/torch.jsonl"
"$PY" - "$OUT" <<'PYEOF'
import json, math, sys, collections
out = sys.argv[1]
rows = collections.defaultdict(lambda: collections.defaultdict(list))
for name in ("rust", "torch"):
    for line in open(f"{out}/{name}.jsonl"):
        r = json.loads(line)
        rows[(r["d"], r["dy"])][name].append((r["sw1"], r["seconds"]))
print(f"{'d':>4} {'d_y':>3} {'rust SW1':>16} {'torch SW1':>16} {'rust s':>8} {'torch s':>8} {'torch/rust':>10}")
for key in sorted(rows):
    cells = []
    for name in ("rust", "torch"):
        v = rows[key][name]
        m = sum(a for a, _ in v) / len(v)
        se = math.sqrt(sum((a - m) ** 2 for a, _ in v) / max(len(v) - 1, 1) / len(v))
        cells.append((m, se, sum(b for _, b in v) / len(v)))
    (rm, rse, rt), (tm, tse, tt) = cells
    print(f"{key[0]:>4} {key[1]:>3} {rm:>9.3f} ± {rse:<5.3f} {tm:>9.3f} ± {tse:<5.3f} {rt:>8.2f} {tt:>8.2f} {tt / rt:>10.2f}")
PYEOF
