#!/usr/bin/env bash
# Where a few-step grid with a final step to σ = 0 should end (issue 14 follow-up): every
# deterministic sampler × spacing (logsnr, time, karras) × end (the schedule's ε; T/N = the N-th
# of N + 1 uniform times to the data, diffusers' `linspace`; λ = 2) on the exact field, SW2 ratio
# to the noise floor (n = 10,000, median of 3 sampling seeds) at 5, 10, 20, 50 NFE; VP on
# 8gaussians (all samplers) and 25gaussians (ddim, dpmpp-2m), and the exact CondOT velocity of
# 8gaussians (the flow path as the schedule).
#   bench/fewstep_ends.sh    (writes bench/results/fewstep_ends_*.jsonl)
set -euo pipefail
cargo build --quiet --release -p scoreflow --example samplers
S=target/release/examples/samplers
A="--seeds 3 --n 10000 --nfe 5,10,20,50"
"$S" ends --data 8gaussians --sde vp $A > bench/results/fewstep_ends_8gaussians_vp.jsonl
"$S" ends --data 25gaussians --sde vp --samplers ddim,dpmpp-2m $A > bench/results/fewstep_ends_25gaussians_vp.jsonl
"$S" ends --data 8gaussians --sde condot --samplers ddim,dpmpp-2m,unipc,dpmpp-3m,edm-heun $A \
  > bench/results/fewstep_ends_8gaussians_condot.jsonl
