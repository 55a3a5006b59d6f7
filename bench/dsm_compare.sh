#!/usr/bin/env bash
# Side-by-side DSM (VP) speed, PyTorch (shared/bench/reference_dsm.py) vs the `scoreflow` CLI on
# the same work: the reference MLP 3→512×4→2, batch 1024, Adam 1e-3 constant, no EMA, τ input,
# STEPS training steps; then 10,000 points by reverse Euler–Maruyama (1000 steps) and by the
# probability-flow ODE (Dopri5 1e-5). Alternates the programs, REPS rounds, one JSON object per
# program and round on stdout. Run from the repository root on a quiet machine:
#   bench/dsm_compare.sh > bench/dsm-results.jsonl
# Environment: REPS (1), STEPS (300), DATA (moons), THREADS (2), PY (/tmp/refvenv/bin/python).
set -euo pipefail
REPS=${REPS:-1}
STEPS=${STEPS:-300}
DATA=${DATA:-moons}
THREADS=${THREADS:-2}
PY=${PY:-/tmp/refvenv/bin/python}
REF=${REF:-../shared/bench/reference_dsm.py}
cargo build --quiet --release -p scoreflow-cli
SF=target/release/scoreflow
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for rep in $(seq "$REPS"); do
  "$PY" "$REF" --dataset "$DATA" --steps "$STEPS" --threads "$THREADS" --sampler both \
    --n-samples 10000 --out "$TMP/torch.csv" --json "$TMP/torch.json" --log-every 0 >/dev/null
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(json.dumps({'program':'pytorch','round':int(sys.argv[2]),'data':d['dataset'],'steps':d['steps'],'train_steps_per_s':d['train_steps_per_s'],'em_s':d['sample_em']['time_s'],'em_nfe':d['sample_em']['nfe'],'ode_s':d['sample_ode']['time_s'],'ode_nfe':d['sample_ode']['nfe']}))" "$TMP/torch.json" "$rep"
  run="$TMP/sf-$rep"
  "$SF" --threads "$THREADS" --json train --method dsm --sde vp --data "$DATA" --steps "$STEPS" \
    --width 512 --depth 4 --batch 1024 --lr 1e-3 --schedule constant --ema 0 --noise-input time \
    --checkpoint-every "$STEPS" --out "$run" >"$TMP/train.json"
  "$SF" --threads "$THREADS" --json sample "$run" --sampler em -n 10000 --out "$TMP/em.csv" >"$TMP/em.json"
  "$SF" --threads "$THREADS" --json sample "$run" --sampler ode -n 10000 --out "$TMP/ode.csv" >"$TMP/ode.json"
  python3 - "$TMP" "$rep" "$DATA" "$STEPS" <<'PY'
import json, sys
tmp, rep, data, steps = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
t = json.load(open(f"{tmp}/train.json")); em = json.load(open(f"{tmp}/em.json")); ode = json.load(open(f"{tmp}/ode.json"))
print(json.dumps({"program": "scoreflow", "round": rep, "data": data, "steps": steps,
                  "train_steps_per_s": t["steps_per_s"], "em_s": em["wall_s"], "em_nfe": em["nfe"],
                  "ode_s": ode["wall_s"], "ode_nfe": ode["nfe"]}))
PY
done
