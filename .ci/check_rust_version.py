#!/usr/bin/env python3
"""Checks the workspace's declared `rust-version` (Cargo.toml) against the truth.

* It must be at least every resolved dependency's own `rust-version` (burn 0.22.1 needs 1.95):
  a lower value would promise users a toolchain the dependencies refuse.
* The toolchain CI builds with must not be older than it (cargo would refuse anyway).
* When CI's toolchain equals the declared version, the build itself proves our own code on it;
  when it is newer, the script says so (the declared minimum is then a dependency bound).

Usage: python3 .ci/check_rust_version.py   (exit 1 on a violation)
"""
import json
import re
import subprocess
import sys


def ver(s):
    return tuple(int(x) for x in re.findall(r"\d+", s)[:3]) + (0,) * (3 - len(re.findall(r"\d+", s)[:3]))


meta = json.loads(subprocess.check_output(["cargo", "metadata", "--format-version", "1", "--locked"]))
members = set(meta["workspace_members"])
declared = {p["name"]: p["rust_version"] for p in meta["packages"] if p["id"] in members}
if any(v is None for v in declared.values()):
    sys.exit(f"error: a workspace member declares no rust-version: {declared}")
ours = max(ver(v) for v in declared.values())
deps = [(ver(p["rust_version"]), p["name"], p["version"]) for p in meta["packages"]
        if p["id"] not in members and p.get("rust_version")]
need = max(d[0] for d in deps)
_, name, version = max((d for d in deps if d[0] == need), key=lambda d: d[1].startswith("burn"))
rustc = ver(subprocess.check_output(["rustc", "--version"], text=True).split()[1])
fmt = lambda v: ".".join(map(str, v[:2]))
print(f"declared rust-version {fmt(ours)}; highest dependency requirement {fmt(need)} ({name} {version}); toolchain {fmt(rustc)}")
if ours < need:
    sys.exit(f"error: rust-version {fmt(ours)} is below what {name} {version} requires ({fmt(need)}); raise it")
if rustc < ours:
    sys.exit(f"error: the toolchain {fmt(rustc)} is older than the declared rust-version {fmt(ours)}")
if rustc[:2] == ours[:2]:
    print("the build runs on the declared minimum itself, so it proves our own code there too")
else:
    print(f"note: the toolchain is newer than {fmt(ours)}; our own code is checked on {fmt(rustc)}")
