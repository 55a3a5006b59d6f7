#!/usr/bin/env bash
# Issue 14, learned models: the probability-flow ceiling (Dopri5 at rtol = atol = 1e-7 and 1e-5)
# and every few-step sampler at <= 20 NFE, for DSM (VP, ε target; noise input ¼ ln σ — the CLI
# default — and τ) and EDM on 8gaussians, moons and checkerboard, default recipe (one-cycle peak
# 1e-3, EMA 0.999, batch 1024, reference MLP, fused engine; 5,000 steps, moons 3,000).
# One JSON line per (model, sampler) on stdout; runs are cached in DIR (default /tmp/accept).
#   bench/fewstep_learned.sh > fewstep.jsonl            (MODELS, DATA, SAMPLERS, DIR in the env)
set -euo pipefail
DIR=${DIR:-/tmp/accept}
DATA=${DATA:-"8gaussians moons checkerboard"}
MODELS=${MODELS:-"edm dsm-logsigma dsm-time"}
FEW="ddim:10,ddim:20,dpm-solver:10,dpm-solver:20,dpmpp-2m:5,dpmpp-2m:10,dpmpp-2m:15,dpmpp-2m:20"
FEW="$FEW,dpmpp-3m:10,dpmpp-3m:20,dpmpp-2s:5,dpmpp-2s:10,unipc:5,unipc:10,unipc:20"
FEW="$FEW,edm-euler:10,edm-euler:20,edm-heun:5,edm-heun:10"
SAMPLERS=${SAMPLERS:-"ode:1e-7,ode,$FEW"}
cargo build --quiet --release -p scoreflow --example quality
Q=target/release/examples/quality
for data in $DATA; do
  for model in $MODELS; do
    case $model in
      edm) "$Q" edm --data "$data" --dir "$DIR" --samplers "$SAMPLERS" ;;
      dsm-logsigma) "$Q" dsm --data "$data" --recipe default --noise-input logsigma --dir "$DIR" --samplers "$SAMPLERS" ;;
      dsm-time) "$Q" dsm --data "$data" --recipe default --noise-input time --dir "$DIR" --samplers "$SAMPLERS" ;;
    esac
  done
done
