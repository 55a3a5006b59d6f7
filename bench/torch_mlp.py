#!/usr/bin/env python3
"""PyTorch side of the speed comparison, for any MLP size (the reference MLP is the default).

The workload of ../shared/bench/reference_fm.py --bench-only with --width/--depth/--batch:
conditional flow matching (straight path) on FFJORD's 8 Gaussians, MLP (x, y, t) -> width^depth
-> 2 with SiLU, Adam(1e-3); 20 warm-up + 200 timed training steps; Euler sampling of 10,000
points x 100 steps. Optional: --dopri5 (torchdiffeq, rtol = atol = 1e-5, landing on t = 1) and
--nll N (exact 2-D divergence by two autograd passes, dopri5 1e-5, t = 1 -> 0, chunks of 2,500,
as reference_fm.py --nll). Prints one JSON line with the keys of reference_fm.py plus width,
depth, GFLOP/s and, for the adaptive runs, NFE and milliseconds per NFE (compare those at equal
NFE with `scoreflow bench` / `cargo run --release --example bench`).

  /tmp/refvenv/bin/python bench/torch_mlp.py --threads 2 --width 128 --batch 256
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn

try:
    import torchdiffeq
except Exception:  # pragma: no cover
    torchdiffeq = None


def make_mlp(width, depth):
    layers, d_in = [], 3
    for _ in range(depth):
        layers += [nn.Linear(d_in, width), nn.SiLU()]
        d_in = width
    layers.append(nn.Linear(d_in, 2))
    return nn.Sequential(*layers)


def eight_gaussians(n, gen):
    k = torch.randint(0, 8, (n,), generator=gen).double() * (math.pi / 4)
    means = 4.0 * torch.stack([torch.cos(k), torch.sin(k)], 1)
    return ((means + 0.5 * torch.randn(n, 2, generator=gen, dtype=torch.float64)) / 1.414).float()


def field(net, x, t):
    if not torch.is_tensor(t):
        t = torch.tensor(float(t), dtype=x.dtype)
    return net(torch.cat([x, t.reshape(-1, 1).to(x.dtype).expand(x.shape[0], 1)], dim=1))


class Counting(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn, self.nfe = fn, 0

    def forward(self, t, state):
        self.nfe += 1
        return self.fn(t, state)


def exact_div_field(net, x, t):
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        v = field(net, x, t)
        div = torch.zeros(x.shape[0], dtype=x.dtype)
        for i in range(2):
            div = div + torch.autograd.grad(v[:, i].sum(), x, retain_graph=(i == 0))[0][:, i]
    return v.detach(), div.detach()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--points", type=int, default=10000)
    p.add_argument("--nfe", type=int, default=100)
    p.add_argument("--dopri5", action="store_true")
    p.add_argument("--nll", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    net = make_mlp(a.width, a.depth)
    macs = sum(m.in_features * m.out_features for m in net if isinstance(m, nn.Linear))

    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses, start = [], None
    for it in range(a.warmup + a.steps):
        if it == a.warmup:
            start = time.perf_counter()
        x1 = eight_gaussians(a.batch, gen)
        x0 = torch.randn(a.batch, 2, generator=gen)
        t = torch.rand(a.batch, 1, generator=gen)
        xt = x0 + t * (x1 - x0)
        loss = ((net(torch.cat([xt, t], 1)) - (x1 - x0)) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    sps = a.steps / (time.perf_counter() - start)

    net.eval()
    x0 = torch.randn(a.points, 2, generator=gen)
    with torch.no_grad():
        field(net, x0, 0.0)
        start = time.perf_counter()
        x, h = x0.clone(), 1.0 / a.nfe
        for i in range(a.nfe):
            x = x + h * field(net, x, i * h)
        ts = time.perf_counter() - start
    pts = a.points * a.nfe / ts
    res = {
        "bench": "reference_fm", "engine": "torch", "torch": torch.__version__,
        "threads": torch.get_num_threads(), "dataset": "8gaussians", "batch": a.batch,
        "train_steps_timed": a.steps, "train_steps_per_s": round(sps, 3),
        "train_samples_per_s": round(sps * a.batch, 1), "sample_points": a.points,
        "sample_euler_steps": a.nfe, "sample_time_s": round(ts, 4),
        "sample_point_steps_per_s": round(pts, 1), "sample_finite": bool(torch.isfinite(x).all()),
        "width": a.width, "depth": a.depth,
        "train_gflops": round(6 * macs * a.batch * sps / 1e9, 2),
        "sample_gflops": round(2 * macs * pts / 1e9, 2),
        "final_loss": sum(losses[-20:]) / len(losses[-20:]),
    }
    if a.dopri5:
        f = Counting(lambda t, x: field(net, x, t))
        with torch.no_grad():
            start = time.perf_counter()
            torchdiffeq.odeint(f, x0, torch.tensor([0.0, 1.0]), method="dopri5", rtol=1e-5, atol=1e-5,
                               options=dict(step_t=torch.tensor([1.0])))
            td = time.perf_counter() - start
        res["dopri5"] = {"points": a.points, "nfe": f.nfe, "time_s": td, "ms_per_nfe": 1e3 * td / f.nfe}
    if a.nll:
        xh = eight_gaussians(a.nll, torch.Generator().manual_seed(987654321))
        dyn = Counting(lambda t, s: exact_div_field(net, s[0], t))
        start = time.perf_counter()
        logps = []
        for i in range(0, a.nll, 2500):
            xb = xh[i:i + 2500]
            xs, ls = torchdiffeq.odeint(dyn, (xb, torch.zeros(xb.shape[0])), torch.tensor([1.0, 0.0]),
                                        method="dopri5", rtol=1e-5, atol=1e-5,
                                        options=dict(step_t=torch.tensor([0.0])))
            logps.append(-0.5 * (xs[-1] ** 2).sum(1) - math.log(2 * math.pi) + ls[-1])
        tn = time.perf_counter() - start
        res["nll"] = {"points": a.nll, "nfe": dyn.nfe, "time_s": tn, "ms_per_nfe": 1e3 * tn / dyn.nfe,
                      "nll": float(-torch.cat(logps).mean())}
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
