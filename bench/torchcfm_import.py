#!/usr/bin/env python3
"""The TorchCFM import fixture: a model trained by TorchCFM itself, and what PyTorch computes
with it, for scoreflow's import tests (crates/scoreflow/tests/data/torchcfm/).

1. Trains TorchCFM's own `torchcfm.models.MLP(dim=2, w=64, time_varying=True)` — an
   nn.Sequential `net` of Linear(3, 64), SELU, Linear(64, 64), SELU, Linear(64, 64), SELU,
   Linear(64, 2) — with TorchCFM's `ConditionalFlowMatcher(sigma=0)` (x_t = t x1 + (1 - t) x0,
   u_t = x1 - x0) from x0 ~ N(0, I) to x1 ~ TorchCFM's `sample_8gaussians` (radius 5), Adam
   1e-3, batch 256, 500 steps, the network fed [x, t] as `torchcfm.utils.torch_wrapper` does.
   Saves `model.state_dict()` (keys `net.0.weight` … `net.6.bias`, float32) as
   `model.safetensors`.
2. `euler.csv`: with the model in float64 (`.double()`), 100 Euler steps x += h v(x, k h),
   h = 1/100, from 64 fixed N(0, I) points (the noise is the step-0 rows): columns
   step, point, x, y at steps 0, 10, …, 100.
3. `loglik.csv`: log p_1(x) of 32 fixed points (24 drawn from 8gaussians, 8 chosen between and
   beyond the modes) by the instantaneous change of variables: (x, l) integrated from t = 1 to
   t = 0 with dx/dt = v, dl/dt = div v (exact, one autograd pass per coordinate), torchdiffeq
   dopri5 rtol = atol = 1e-8, float64; log p = log N(x(0); 0, I) + l(0). Columns x, y, logp,
   z0, z1 (z = x(0)) and the NFE.

  /tmp/refvenv/bin/python bench/torchcfm_import.py
"""
import math
import os

import torch
import torchdiffeq
from safetensors.torch import save_file
from torchcfm.conditional_flow_matching import ConditionalFlowMatcher
from torchcfm.models.models import MLP
from torchcfm.utils import sample_8gaussians, torch_wrapper

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "crates", "scoreflow", "tests", "data", "torchcfm")
STEPS, BATCH, LR = 500, 256, 1e-3
EULER_STEPS, EULER_POINTS = 100, 64


def train():
    torch.manual_seed(0)
    model = MLP(dim=2, w=64, time_varying=True)
    fm = ConditionalFlowMatcher(sigma=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    for step in range(STEPS):
        x0 = torch.randn(BATCH, 2)
        x1 = sample_8gaussians(BATCH)
        t, xt, ut = fm.sample_location_and_conditional_flow(x0, x1)
        vt = model(torch.cat([xt, t[:, None]], dim=-1))
        loss = torch.mean((vt - ut) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % 100 == 0:
            print(f"step {step + 1}: loss {loss.item():.4f}")
    return model


def euler(field, x):
    h = 1.0 / EULER_STEPS
    rows = []
    for k in range(EULER_STEPS + 1):
        if k % 10 == 0:
            rows += [(k, i, float(p[0]), float(p[1])) for i, p in enumerate(x)]
        if k < EULER_STEPS:
            x = x + h * field(torch.tensor(k * h, dtype=x.dtype), x)
    return rows


class Cnf(torch.nn.Module):
    """(dx/dt, dl/dt) = (v, div v), the divergence exact by autograd."""

    def __init__(self, field):
        super().__init__()
        self.field, self.nfe = field, 0

    def forward(self, t, state):
        self.nfe += 1
        x, _ = state
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            v = self.field(t, x)
            div = sum(torch.autograd.grad(v[:, i].sum(), x, retain_graph=True)[0][:, i]
                      for i in range(x.shape[1]))
        return v.detach(), div.detach()


def log_likelihood(field, x):
    cnf = Cnf(field)
    ts = torch.tensor([1.0, 0.0], dtype=x.dtype)
    l1 = torch.zeros(x.shape[0], dtype=x.dtype)
    xs, ls = torchdiffeq.odeint(cnf, (x, l1), ts, method="dopri5", rtol=1e-8, atol=1e-8)
    z, l0 = xs[-1], ls[-1]
    logp = -0.5 * (z ** 2).sum(1) - math.log(2 * math.pi) + l0
    return logp, z, cnf.nfe


def write(name, header, rows):
    with open(os.path.join(OUT, name), "w") as f:
        f.write(header + "\n")
        for r in rows:
            f.write(",".join(repr(v) for v in r) + "\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    model = train()
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    print("keys:", list(sd))
    save_file(sd, os.path.join(OUT, "model.safetensors"))

    field = torch_wrapper(model.double())
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        noise = torch.randn(EULER_POINTS, 2, generator=gen, dtype=torch.float64)
        write("euler.csv", "step,point,x,y", euler(field, noise))

    torch.manual_seed(2)
    data = sample_8gaussians(24).double()
    extra = torch.tensor([[0.0, 0.0], [2.5, 0.0], [0.0, -2.5], [3.5, 3.5], [-5.0, 0.5],
                          [6.0, 0.0], [0.0, 7.0], [-4.0, -4.0]], dtype=torch.float64)
    x = torch.cat([data, extra])
    logp, z, nfe = log_likelihood(field, x)
    write("loglik.csv", "x,y,logp,z0,z1",
          [(float(a), float(b), float(lp), float(c), float(d))
           for (a, b), lp, (c, d) in zip(x, logp, z)])
    print(f"log-likelihood of {x.shape[0]} points: mean {logp.mean().item():.4f}, NFE {nfe}")
    print(f"wrote {os.path.normpath(OUT)} (torch {torch.__version__})")


if __name__ == "__main__":
    main()
