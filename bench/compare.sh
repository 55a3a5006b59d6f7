#!/usr/bin/env bash
# Side-by-side speed comparison, PyTorch vs scoreflow, alternating the programs (one JSON line per
# run on stdout; summarise with bench/summarize.py). Run from the repository root on a quiet
# machine:   bench/compare.sh > bench/results.jsonl && python3 bench/summarize.py bench/results.jsonl
# Environment: REPS (default 3), THREADS (2), PY (/tmp/refvenv/bin/python), ENGINES ("fused burn"),
# SIZES ("512:1024:10000 128:256:10000 64:256:10000 128:256:256 64:256:256" = width:batch:points),
# EXTRA (extra flags for both programs, e.g. "--dopri5 --nll 2500").
set -euo pipefail
REPS=${REPS:-3}
THREADS=${THREADS:-2}
PY=${PY:-/tmp/refvenv/bin/python}
ENGINES=${ENGINES:-"fused burn"}
SIZES=${SIZES:-"512:1024:10000 128:256:10000 64:256:10000 128:256:256 64:256:256"}
EXTRA=${EXTRA:-}
cargo build --quiet --release -p scoreflow --example bench
BIN=target/release/examples/bench
for rep in $(seq "$REPS"); do
  for size in $SIZES; do
    IFS=: read -r width batch points <<<"$size"
    args="--threads $THREADS --width $width --batch $batch --points $points $EXTRA"
    # shellcheck disable=SC2086
    "$PY" bench/torch_mlp.py $args
    for engine in $ENGINES; do
      # shellcheck disable=SC2086
      "$BIN" --engine "$engine" $args
    done
  done
done
