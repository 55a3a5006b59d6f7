#!/usr/bin/env bash
# TorchCFM vs scoreflow on TorchCFM's own data (issue 13): writes the CSVs with TorchCFM's
# generators, trains I-CFM and OT-CFM with both programs on them, one JSON line per run.
#   STEPS=20000 SEEDS="0 1 2 3 4" DIR=/tmp/tcfm bench/torchcfm_compare.sh > results.jsonl
set -euo pipefail
STEPS=${STEPS:-20000}; SEEDS=${SEEDS:-"0 1 2 3 4"}; DIR=${DIR:-/tmp/tcfm}
PY=${PY:-/tmp/refvenv/bin/python}
cd "$(dirname "$0")/.."
cargo build --release -p scoreflow --example transport >&2
"$PY" -W ignore bench/torchcfm_compare.py --write-data "$DIR"
for task in n8g moons8g; do
  for coupling in independent ot; do
    for seed in $SEEDS; do
      target/release/examples/transport compare --dir "$DIR/$task" --task "$task" \
        --coupling "$coupling" --seed "$seed" --steps "$STEPS"
    done
  done
done
"$PY" -W ignore bench/torchcfm_compare.py --train "$DIR" --steps "$STEPS" --seeds "${SEEDS// /,}"
