#!/usr/bin/env bash
# GPU check of the burn path (issue 16): built here with Rust, run on a GPU machine without it.
#
#   bench/gpu_check.sh prepare    # here: build the U-Net digits example with --features vulkan,
#                                 # strip + gzip it into .gpu/ (must stay < 64 MiB) and download the
#                                 # Vulkan loader debs into .gl/ (the device README's recipe)
#   bench/gpu_check.sh run        # there: unpack the loaders, train + sample + likelihood on the
#                                 # GPU, compare the same weights and noise on the CPU, then the
#                                 # same U-Net in PyTorch CUDA; results in $OUT (else .gpu/out)
#   bench/gpu_check.sh selftest   # here: `run` on the CPU (a CPU build; STEPS_SELFTEST = 60
#                                 # steps, NLL_SELFTEST = 4 digits), to test all but the GPU step
#
# The device call (one command, carrying the prepared folders):
#   run(command="bash bench/gpu_check.sh run", carry=[".gpu", ".gl"], timeout_s=540)
# Environment: STEPS (300), DEVICE (vulkan), NLL (180 held-out digits), TOL_SAMPLE (1e-2, max
# |CPU − GPU| of one Euler batch in model units), TOL_BPD (0.01 bits/dim).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
STEPS=${STEPS:-300}
NLL=${NLL:-180}
TOL_SAMPLE=${TOL_SAMPLE:-1e-2}
TOL_BPD=${TOL_BPD:-0.01}

exclude() { # keep a folder out of git in this checkout (worktrees included)
  local f
  f=$(git rev-parse --git-path info/exclude)
  mkdir -p "$(dirname "$f")"
  grep -qx "$1" "$f" 2>/dev/null || echo "$1" >>"$f"
}

check() { # $1 = summary.json: the GPU/CPU agreement to tolerance
  python3 - "$1" "$TOL_SAMPLE" "$TOL_BPD" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
tol_s, tol_b = float(sys.argv[2]), float(sys.argv[3])
c = s["cpu_compare"]
ds = c["sample_max_abs_diff_model_units"]
db = abs(c["bpd_gpu_20"] - c["bpd_cpu_20"])
ok = ds <= tol_s and db <= tol_b
print(json.dumps({"check": "PASS" if ok else "FAIL", "device": s["device"],
                  "sample_max_abs_diff": ds, "tol_sample": tol_s,
                  "bpd_abs_diff": db, "tol_bpd": tol_b,
                  "bits_per_dim": s["bits_per_dim"], "steps_per_s": s["steps_per_s"],
                  "samples_per_s": s["samples_per_s"]}))
sys.exit(0 if ok else 1)
EOF
}

case "$mode" in
prepare)
  cargo build --release -p scoreflow --features vulkan --example unet_digits
  target=${CARGO_TARGET_DIR:-target}
  exclude /.gpu/
  exclude /.gl/
  mkdir -p .gpu .gl
  strip -o .gpu/unet_digits "$target/release/examples/unet_digits"
  gzip -9 -f .gpu/unet_digits
  size=$(stat -c %s .gpu/unet_digits.gz)
  echo "packaged .gpu/unet_digits.gz: $((size / 1024)) KiB"
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
    gunzip -c .gpu/unet_digits.gz >/tmp/unet_digits
    chmod +x /tmp/unet_digits
    bin=/tmp/unet_digits
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >"$out/gpu.txt" 2>&1 || true
  else
    device=cpu
    STEPS=${STEPS_SELFTEST:-60}
    NLL=${NLL_SELFTEST:-4}
    cargo build --release -p scoreflow --example unet_digits
    bin=${CARGO_TARGET_DIR:-target}/release/examples/unet_digits
  fi
  set -o pipefail
  "$bin" --device "$device" --steps "$STEPS" --nll "$NLL" --compare-cpu --out "$out/scoreflow" \
    2>&1 | tee "$out/scoreflow.log"
  check "$out/scoreflow/summary.json" | tee "$out/check.json"
  if [ "$mode" = run ]; then
    python3 bench/unet_torch.py --bench --device cuda --threads 16 --batch 128 --reps 50 \
      --samples 1000 --euler-steps 100 | tee "$out/torch_cuda.json"
  fi
  ;;
*)
  sed -n '2,19p' "$0"
  exit 2
  ;;
esac
