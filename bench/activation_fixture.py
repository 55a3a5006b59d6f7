#!/usr/bin/env python3
"""Writes crates/scoreflow/tests/data/activations.csv: act(z) and act'(z) by PyTorch in float64.

For every hidden activation scoreflow offers, the torch.nn module PyTorch users train with
(nn.SiLU, nn.ReLU, nn.Tanh, nn.Softplus, nn.GELU, nn.GELU(approximate='tanh'), nn.SELU, nn.ELU,
all with their default arguments) is evaluated on a grid of z, and its derivative is taken by
autograd (PyTorch's own backward formula). The grid is z = k/8 for k = -80..80 plus
z = ±2^-10 and ±2^-4·3, all exactly representable in float32, so the fused f32 kernels see the
same inputs. Columns: z, then <name>, d_<name> per activation (scoreflow's serde names).

  /tmp/refvenv/bin/python bench/activation_fixture.py
"""
import os

import torch
import torch.nn as nn

ACTS = [
    ("silu", nn.SiLU()),
    ("relu", nn.ReLU()),
    ("tanh", nn.Tanh()),
    ("softplus", nn.Softplus()),
    ("gelu", nn.GELU()),
    ("gelu-tanh", nn.GELU(approximate="tanh")),
    ("selu", nn.SELU()),
    ("elu", nn.ELU()),
]


def main():
    zs = sorted({k / 8 for k in range(-80, 81)} | {2.0**-10, -(2.0**-10), 0.1875, -0.1875})
    z = torch.tensor(zs, dtype=torch.float64)
    cols = [("z", z)]
    for name, mod in ACTS:
        zz = z.clone().requires_grad_(True)
        y = mod(zz)
        (dy,) = torch.autograd.grad(y.sum(), zz)
        cols += [(name, y.detach()), ("d_" + name, dy)]
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(here, "..", "crates", "scoreflow", "tests", "data", "activations.csv")
    with open(out, "w") as f:
        f.write(",".join(n for n, _ in cols) + "\n")
        for i in range(len(zs)):
            f.write(",".join(repr(float(c[i])) for _, c in cols) + "\n")
    print(f"wrote {len(zs)} rows to {os.path.normpath(out)} (torch {torch.__version__})")


if __name__ == "__main__":
    main()
