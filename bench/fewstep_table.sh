#!/usr/bin/env bash
# Issue 14 table: quality per NFE (SW2 ratio to the noise floor, n = 10,000; median [min–max]
# over 3 sampling seeds) of DDIM / DPM-Solver++ 2M / UniPC / EDM Heun at 5, 10, 20 NFE next to
# reverse Euler–Maruyama (1,000 steps) and the probability-flow ODE (Dopri5 at 1e-5, and 1e-7:
# the ceiling every few-step sampler converges to), on the exact field (`quality exact`: VP and
# EDM's SDE) and on trained models (`quality dsm` / `quality edm`, default recipe: reference MLP
# 512×4, batch 1024, one-cycle peak 1e-3, EMA 0.999, 5,000 steps, fused engine; runs cached in
# DIR). Learned models run em / ode with one seed (1,000 EM steps of the 512×4 MLP on 10,000
# points take minutes on 2 cores). Heun spends 2N − 1 evaluations: edm-heun:3/5/10 = 5/9/19 NFE.
#   bench/fewstep_table.sh > bench/results/fewstep_table.jsonl     (DATA, DIR, SEEDS in the env)
set -euo pipefail
DIR=${DIR:-/tmp/accept}
DATA=${DATA:-8gaussians}
SEEDS=${SEEDS:-3}
FEW="ddim:5,ddim:10,ddim:20,dpmpp-2m:5,dpmpp-2m:10,dpmpp-2m:20,unipc:5,unipc:10,unipc:20"
FEW="$FEW,edm-heun:3,edm-heun:5,edm-heun:10"
cargo build --quiet --release -p scoreflow --example quality
Q=target/release/examples/quality
for data in $DATA; do
  for sde in vp edm; do
    "$Q" exact --data "$data" --sde "$sde" --seeds "$SEEDS" --samplers "em,ode,$FEW"
  done
  for model in dsm edm; do
    "$Q" "$model" --data "$data" --recipe default --dir "$DIR" --seeds "$SEEDS" --samplers "$FEW"
    "$Q" "$model" --data "$data" --recipe default --dir "$DIR" --seeds 1 --samplers "ode,ode:1e-7,em"
  done
done
