#!/usr/bin/env bash
# Issue 14 table: quality per NFE (SW2 ratio to the noise floor, median over 3 sampling seeds,
# n = 10,000) of DDIM / DPM-Solver++ 2M / UniPC / EDM Heun at 5, 10, 20 NFE next to reverse
# Euler–Maruyama (1,000 steps) and the probability-flow ODE (Dopri5 1e-5), on the exact field
# (`quality exact`: VP and EDM's SDE) and on trained models (`quality dsm` / `quality edm`,
# default recipe: reference MLP 512×4, batch 1024, one-cycle 1e-3, EMA 0.999, fused engine).
# Heun spends 2N − 1 evaluations: edm-heun:3/5/10 = 5/9/19 NFE.
#   bench/fewstep_table.sh > bench/results/fewstep_table.jsonl     (DATA, DIR, SEEDS in the env)
set -euo pipefail
DIR=${DIR:-/tmp/accept}
DATA=${DATA:-8gaussians}
SEEDS=${SEEDS:-3}
FEW="ddim:5,ddim:10,ddim:20,dpmpp-2m:5,dpmpp-2m:10,dpmpp-2m:20,unipc:5,unipc:10,unipc:20"
FEW="$FEW,edm-heun:3,edm-heun:5,edm-heun:10"
SAMPLERS=${SAMPLERS:-"em,ode,$FEW"}
cargo build --quiet --release -p scoreflow --example quality
Q=target/release/examples/quality
for data in $DATA; do
  for sde in vp edm; do
    "$Q" exact --data "$data" --sde "$sde" --seeds "$SEEDS" --samplers "$SAMPLERS"
  done
  "$Q" dsm --data "$data" --recipe default --dir "$DIR" --seeds "$SEEDS" --samplers "$SAMPLERS"
  "$Q" edm --data "$data" --recipe default --dir "$DIR" --seeds "$SEEDS" --samplers "$SAMPLERS"
done
