#!/usr/bin/env bash
# Runs bench/compare.sh one unit (size) at a time, each only once the machine is >= 90 % idle over
# 5 s, and tags every JSON line with "others_cpu_per_s": CPU-seconds per second that *other*
# processes used during the unit (bench/summarize.py drops lines above 0.1). For shared machines.
#   bench/when_idle.sh > results.jsonl 2> when_idle.log && python3 bench/summarize.py results.jsonl
# Environment: ROUNDS (3), UNITS (space-separated width:batch:points:extra-flags), plus
# compare.sh's THREADS, PY, ENGINES.
set -uo pipefail
busy() { read -r _ a b c d e f g h _ < /proc/stat; echo $((a + b + c + f + g + h)); }
idle_pct() {
  read -r _ a b c d e f g h _ < /proc/stat; local t1=$((a + b + c + d + e + f + g + h)) i1=$((d + e))
  sleep 5
  read -r _ a b c d e f g h _ < /proc/stat; local t2=$((a + b + c + d + e + f + g + h)) i2=$((d + e))
  echo $((100 * (i2 - i1) / (t2 - t1)))
}
children_cpu() { awk '{print $16 + $17}' "/proc/$$/stat"; }
ROUNDS=${ROUNDS:-3}
read -r -a units <<<"${UNITS:-512:1024:10000: 128:256:10000: 64:256:10000: 128:256:256: 64:256:256: 512:1024:10000:--dopri5_--nll_2500_--steps_60_--nfe_20}"
tmp=$(mktemp)
for round in $(seq "$ROUNDS"); do
  for unit in "${units[@]}"; do
    until [ "$(idle_pct)" -ge 90 ]; do sleep 20; done
    IFS=: read -r w b p extra <<<"$unit"
    b1=$(busy); c1=$(children_cpu); s1=$(date +%s)
    SIZES="$w:$b:$p" EXTRA="${extra//_/ }" REPS=1 bench/compare.sh > "$tmp"
    b2=$(busy); c2=$(children_cpu); s2=$(date +%s)
    others=$(awk -v o=$(((b2 - b1) - (c2 - c1))) -v w=$((s2 - s1)) 'BEGIN { printf "%.3f", o / 100 / (w > 0 ? w : 1) }')
    sed "s/^{/{\"others_cpu_per_s\": $others, /" "$tmp"
    echo "$(date +%T) round $round unit $unit: $((s2 - s1)) s, others $others CPU-s/s" >&2
  done
done
rm -f "$tmp"
