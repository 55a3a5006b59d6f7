#!/usr/bin/env bash
# GPU check of the burn path (issue 16) through the CLI: built here with Rust, run on a GPU
# machine without it.
#
#   bench/gpu_check.sh prepare    # here: build `scoreflow` with --features vulkan, strip + gzip
#                                 # it into .gpu/ (must stay < 64 MiB) and download the Vulkan
#                                 # loader debs into .gl/ (the device README's recipe)
#   bench/gpu_check.sh run        # there: unpack the loaders; `scoreflow train/sample/likelihood
#                                 # --device vulkan` on the digits; the same run sampled and
#                                 # evaluated on the CPU (same weights, same seeds) and compared;
#                                 # then the same U-Net in PyTorch CUDA; results in $OUT (else
#                                 # .gpu/out)
#   bench/gpu_check.sh selftest   # here: `run` with a CPU build and --device cpu for both sides
#                                 # (STEPS_SELFTEST = 60 steps, NLL_SELFTEST = 4 digits,
#                                 # SAMPLES_SELFTEST = 100), to test all but the GPU step (the two
#                                 # sides then agree exactly)
#
# The device call (one command, carrying the prepared folders):
#   run(command="bash bench/gpu_check.sh run", carry=[".gpu", ".gl"], timeout_s=540)
# Environment: STEPS (300), DEVICE (vulkan), SAMPLES (1000), NLL (180 held-out digits),
# TOL_SAMPLE (0.1: max |CPU - GPU| of one Euler batch in data units, digits 0-16),
# TOL_BPD (0.01 bits/dim).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
STEPS=${STEPS:-300}
NLL=${NLL:-180}
SAMPLES=${SAMPLES:-1000}
TOL_SAMPLE=${TOL_SAMPLE:-0.1}
TOL_BPD=${TOL_BPD:-0.01}

exclude() { # keep a folder out of git in this checkout (worktrees included)
  local f
  f=$(git rev-parse --git-path info/exclude)
  mkdir -p "$(dirname "$f")"
  grep -qx "$1" "$f" 2>/dev/null || echo "$1" >>"$f"
}

check() { # $1 = output folder: the device/CPU agreement to tolerance
  python3 - "$1" "$TOL_SAMPLE" "$TOL_BPD" <<'EOF'
import csv, json, sys
out, tol_s, tol_b = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
def rows(p):
    with open(p) as f:
        r = csv.reader(f)
        next(r)
        return [[float(v) for v in row] for row in r]
def load(p):
    with open(p) as f:
        return json.loads(f.read().strip().splitlines()[-1])
a, b = rows(f"{out}/samples_device.csv"), rows(f"{out}/samples_cpu.csv")
assert len(a) == len(b) and len(a) > 0, "sample files differ in length"
ds = max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb))
train, sd = load(f"{out}/train.json"), load(f"{out}/sample_device.json")
ld, lc = load(f"{out}/likelihood_device.json"), load(f"{out}/likelihood_cpu.json")
db = abs(ld["bits_per_dim"] - lc["bits_per_dim"])
ok = ds <= tol_s and db <= tol_b
print(json.dumps({"check": "PASS" if ok else "FAIL", "device": train["device"],
                  "sample_max_abs_diff_data_units": ds, "tol_sample": tol_s,
                  "bpd_device": ld["bits_per_dim"], "bpd_cpu": lc["bits_per_dim"],
                  "bpd_abs_diff": db, "tol_bpd": tol_b, "held_out": ld["n"],
                  "train_steps_per_s": train["steps_per_s"],
                  "samples_per_s": sd["n"] / sd["wall_s"],
                  "likelihood_s_device": ld["wall_time_s"], "likelihood_s_cpu": lc["wall_time_s"]}))
sys.exit(0 if ok else 1)
EOF
}

case "$mode" in
prepare)
  cargo build --release -p scoreflow-cli --features vulkan
  target=${CARGO_TARGET_DIR:-target}
  exclude /.gpu/
  exclude /.gl/
  mkdir -p .gpu .gl
  strip -o .gpu/scoreflow "$target/release/scoreflow"
  gzip -9 -f .gpu/scoreflow
  size=$(stat -c %s .gpu/scoreflow.gz)
  echo "packaged .gpu/scoreflow.gz: $((size / 1024)) KiB"
  if [ "$size" -ge $((64 * 1024 * 1024)) ]; then
    echo "error: the packaged binary is over 64 MiB" >&2
    exit 1
  fi
  mkdir -p /tmp/amd64/partial
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  # shellcheck disable=SC2086
  apt-get $o update >/dev/null
  # shellcheck disable=SC2086
  (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
  ls -la .gpu .gl
  ;;
run | selftest)
  out=${OUT:-.gpu/out}
  mkdir -p "$out"
  if [ "$mode" = run ]; then
    device=${DEVICE:-vulkan}
    if ls .gl/*.deb >/dev/null 2>&1; then
      for f in .gl/*.deb; do dpkg -x "$f" /; done
      ldconfig
    fi
    icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    [ -f "$icd" ] && export VK_DRIVER_FILES=$icd
    gunzip -c .gpu/scoreflow.gz >/tmp/scoreflow
    chmod +x /tmp/scoreflow
    bin=/tmp/scoreflow
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >"$out/gpu.txt" 2>&1 || true
  else
    device=cpu
    STEPS=${STEPS_SELFTEST:-60}
    NLL=${NLL_SELFTEST:-4}
    SAMPLES=${SAMPLES_SELFTEST:-100}
    cargo build --release -p scoreflow-cli
    bin=${CARGO_TARGET_DIR:-target}/release/scoreflow
  fi
  run=$out/run
  rm -rf "$run"
  "$bin" --json train --data digits --steps "$STEPS" --device "$device" --out "$run" \
    >"$out/train.json" 2>"$out/train.log"
  for side in device cpu; do
    d=$device
    [ "$side" = cpu ] && d=cpu
    "$bin" --json sample "$run" -n "$SAMPLES" --seed 1 --device "$d" \
      --out "$out/samples_$side.csv" >"$out/sample_$side.json" 2>>"$out/sample.log"
    "$bin" --json likelihood "$run" -n "$NLL" --seed 2 --device "$d" \
      --out "$out/logp_$side.csv" >"$out/likelihood_$side.json" 2>>"$out/likelihood.log"
  done
  check "$out" | tee "$out/check.json"
  if [ "$mode" = run ]; then
    python3 bench/unet_torch.py --bench --device cuda --threads 16 --batch 128 --reps 50 \
      --samples 1000 --euler-steps 100 | tee "$out/torch_cuda.json"
  fi
  ;;
*)
  sed -n '2,23p' "$0"
  exit 2
  ;;
esac
