#!/usr/bin/env python3
"""The README's two commands must share one dependency build: `cargo run --release -p
scoreflow-cli` (normal dependencies of the CLI) and `cargo test --release --workspace` (plus every
dev-dependency) must resolve every crate they have in common with the same features — otherwise
the second command rebuilds that crate and everything above it (burn's chain), minutes on two
cores. A dev-dependency that turns on a new feature of a shared crate fails here; pin the feature
in crates/scoreflow-cli/Cargo.toml (see the comment there).

Usage: python3 .ci/check_one_build.py   (exit 1 on a difference)
"""
import subprocess
import sys


def features(args):
    out = subprocess.check_output(
        ["cargo", "tree", "--locked", "--prefix", "none", "-f", "{p}|{f}"] + args, text=True)
    feats = {}
    for line in out.splitlines():
        if "|" not in line:
            continue
        pkg, f = line.replace(" (*)", "").split("|", 1)
        feats[pkg.strip()] = f.strip()
    return feats


run = features(["-p", "scoreflow-cli", "-e", "normal,build"])
test = features(["--workspace", "-e", "normal,build,dev"])
diff = [(p, run[p], test[p]) for p in run if p in test and run[p] != test[p]]
for p, a, b in diff:
    print(f"{p}: cargo run builds it with [{a}], cargo test with [{b}]")
if diff:
    sys.exit(f"error: {len(diff)} shared crate(s) resolve differently; the two README commands would build them twice")
print(f"the README's two commands resolve all {len(run)} shared crates identically")
