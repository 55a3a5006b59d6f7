#!/usr/bin/env bash
# The U-Net speed comparison of issue 16: `scoreflow bench --arch unet` and
# `bench/unet_torch.py --bench` on the same network, batch and threads (3 warm-up + 20 timed
# steps of forward + backward + Adam, median step time; Euler sampling of 256 images × 100
# steps), alternating the programs REPS times; prints each JSON line and then one summary line
# with the ratios torch/scoreflow (> 1: scoreflow is faster) of the median step time and of the
# sampling time, each the median over the repetitions.
#   bench/unet_compare.sh                      # base 32 × (1, 2), 1 block, attention, batch 128
#   THREADS=2 BATCH=128 NET="--base 64" REPS=3 nice -n 10 bench/unet_compare.sh
# Environment: THREADS (2), BATCH (128), REPS (1), NET (U-Net flags for both programs: --base C,
# --mults A,B, --res-blocks N, --attention false), PY (/tmp/refvenv/bin/python), BIN (the
# scoreflow binary; built with cargo when unset), DEVICE (cpu; `cuda` on the torch side is
# TORCH_DEVICE).
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
BATCH=${BATCH:-128}
REPS=${REPS:-1}
NET=${NET:-}
PY=${PY:-/tmp/refvenv/bin/python}
DEVICE=${DEVICE:-cpu}
TORCH_DEVICE=${TORCH_DEVICE:-cpu}
if [ -z "${BIN:-}" ]; then
  cargo build --quiet --release -p scoreflow-cli
  BIN=target/release/scoreflow
fi
# The same network on both sides: scoreflow's flags, translated for the script.
torch_net=""
set -- $NET
while [ $# -gt 0 ]; do
  case "$1" in
    --base) torch_net+=" --base $2"; shift 2 ;;
    --mults) torch_net+=" --mults ${2//,/ }"; shift 2 ;;
    --res-blocks) torch_net+=" --res-blocks $2"; shift 2 ;;
    --attention) [ "$2" = false ] && torch_net+=" --no-attention"; shift 2 ;;
    *) echo "unet_compare.sh: unknown NET flag $1" >&2; exit 2 ;;
  esac
done
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for _ in $(seq "$REPS"); do
  # shellcheck disable=SC2086
  "$BIN" --threads "$THREADS" bench --arch unet --batch "$BATCH" --device "$DEVICE" $NET --json | tee -a "$out"
  # shellcheck disable=SC2086
  "$PY" bench/unet_torch.py --bench --threads "$THREADS" --batch "$BATCH" --device "$TORCH_DEVICE" $torch_net | tee -a "$out"
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
ours = [r for r in rows if r.get("impl") == "scoreflow"]
torch = [r for r in rows if r.get("impl") == "pytorch"]
assert ours and torch, "a side printed no JSON line"
assert {r["params"] for r in ours} == {r["params"] for r in torch}, "the networks differ"
med = lambda rs, k: statistics.median(r[k] for r in rs)
print(json.dumps({
    "compare": "unet", "threads": ours[0]["threads"], "batch": ours[0]["batch"],
    "params": ours[0]["params"], "reps": len(ours),
    "step_ms_scoreflow": round(med(ours, "step_ms"), 2), "step_ms_torch": round(med(torch, "step_ms"), 2),
    "step_ratio_torch_over_scoreflow": round(med(torch, "step_ms") / med(ours, "step_ms"), 3),
    "sample_s_scoreflow": round(med(ours, "sample_s"), 3), "sample_s_torch": round(med(torch, "sample_s"), 3),
    "sample_ratio_torch_over_scoreflow": round(med(torch, "sample_s") / med(ours, "sample_s"), 3),
}))
PY
