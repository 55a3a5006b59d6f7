#!/usr/bin/env bash
# Issue 14, learned models through the CLI with its defaults (what `scoreflow train` does with
# no flags but --method): train DSM (VP, ε target) and/or EDM on each data set, then score every
# few-step sampler at <= 20 NFE next to the reverse SDE (Euler–Maruyama, 1,000 steps) and the
# probability-flow ODE (dopri5, 1e-5), as `scoreflow eval` does: SW2 of 10,000 samples against
# 10,000 fresh draws, over the data-vs-data floor at the same n. One JSON line per (run, sampler,
# seed) on stdout, then a markdown table of the medians over the seeds on stderr.
#   bench/fewstep_cli.sh > rows.jsonl 2> table.md        (DATA, METHODS, SEEDS, DIR, SAMPLERS)
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${DIR:-/tmp/fewstep-cli}
DATA=${DATA:-"moons checkerboard"}
METHODS=${METHODS:-"dsm"}
SEEDS=${SEEDS:-3}
N=${N:-10000}
SAMPLERS=${SAMPLERS:-"ddim:10 ddim:20 dpm-solver:10 dpm-solver:20 dpmpp-2m:5 dpmpp-2m:10 dpmpp-2m:20 dpmpp-3m:10 dpmpp-3m:20 dpmpp-2s:10 unipc:5 unipc:10 unipc:20 edm-euler:20 edm-heun:10 em:1000 ode"}
B=${B:-target/release/scoreflow}
ROWS=$(mktemp)
for data in $DATA; do
  for method in $METHODS; do
    run=$DIR/$method-$data
    if [ ! -f "$run/model.safetensors" ]; then
      start=$(date +%s.%N)
      "$B" --json train --data "$data" --method "$method" --out "$run" >"$run.train.json"
      echo "{\"kind\":\"train\",\"run\":\"$run\",\"wall_s\":$(echo "$(date +%s.%N) - $start" | bc)}"
    fi
    for spec in $SAMPLERS; do
      sampler=${spec%%:*}
      steps=${spec#*:}
      args=(--sampler "$sampler")
      [ "$steps" != "$spec" ] && args+=(--steps "$steps")
      seeds=$SEEDS
      case $sampler in em | ode) seeds=1 ;; esac
      for seed in $(seq 1 "$seeds"); do
        "$B" --json eval "$run" "${args[@]}" -n "$N" --seed "$seed" |
          python3 -c 'import json,sys; r=json.loads(sys.stdin.read().strip().splitlines()[-1]); print(json.dumps({"kind":"sample","data":sys.argv[1],"method":sys.argv[2],"sampler":sys.argv[3],"seed":int(sys.argv[4]),"from":r["samples_from"],"sw2":r["samples"]["sw2"],"floor":r["floor"]["sw2"],"ratio":r["ratio"]["sw2"],"wall_s":r["wall_s"]}))' \
            "$data" "$method" "$spec" "$seed" | tee -a "$ROWS"
      done
    done
  done
done
python3 - "$ROWS" >&2 <<'PY'
import json, re, statistics, sys, collections
cells = collections.OrderedDict()
for line in open(sys.argv[1]):
    r = json.loads(line)
    cells.setdefault((r["data"], r["method"], r["sampler"]), []).append(r)
print("| data | model | sampler | NFE | SW2 / floor, median [min–max] | wall s (median) |")
print("|---|---|---|---|---|---|")
for (data, method, sampler), rs in cells.items():
    q = sorted(x["ratio"] for x in rs)
    nfe = re.search(r"NFE (\d+)", rs[0]["from"])
    print(f"| {data} | {method} | {sampler} | {nfe.group(1) if nfe else '?'} | "
          f"{statistics.median(q):.2f} [{q[0]:.2f}–{q[-1]:.2f}] | {statistics.median(x['wall_s'] for x in rs):.1f} |")
PY
rm -f "$ROWS"
