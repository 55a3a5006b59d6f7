#!/usr/bin/env python3
"""PyTorch DPS (Chung et al. 2023) on the MCGdiff Gaussian-mixture problems of
`cargo run --release --example mcgdiff -- --problems-json DIR` — the same problems (prior
weights, A, y, sigma) and the same exact-posterior reference samples as the Rust run, so the
two implementations can be compared for equal results and speed.

Prior   : 25 components N(mu_ij, I), mu_ij = (8i, 8j, 8i, 8j, ...), i, j in {-2..2} (the
          problem file holds the weights); exact perturbed score
          s(x, tau) = (sum_k r_k m mu_k - x) / (m^2 + s^2) under the VP SDE.
SDE     : VP, beta(tau) = 0.1 + 19.9 tau on [0, 1] (score_sde's): m = exp(-tau^2 (b1-b0)/4 - tau b0/2),
          s = sqrt(1 - m^2); grid tau_i = 1 + (eps - 1) i / N, eps = 1e-3.
DPS     : per step, x0hat = (x + s^2 score) / m, norm_i = ||y - A x0hat_i||, g = d(sum norm)/dx by
          autograd (one forward + one backward pass: NFE 2), ancestral step with the score
          (mean (x + G^2 score)/r, std G s(tau')/s(tau), (r, G^2) the exact transition), then
          x <- x - zeta g; the last step's mean is returned (as the Rust sampler).
Metric  : SW1, mean over 100 random unit directions of the 1-D W1 (POT's
          sliced_wasserstein_distance with p = 1), against the reference samples.

Prints one JSON line per problem: {"d", "dy", "problem", "sw1", "seconds", "nfe"}.

  python bench/mcgdiff_dps.py DIR --nfe 500 --zeta 0.3 --samples 2000 --threads 2
"""
import argparse
import glob
import json
import math
import os
import time

import numpy as np
import ot
import torch


def means(d):
    out = []
    for i in range(-2, 3):
        for j in range(-2, 3):
            out.append(torch.tensor([8.0 * i, 8.0 * j] * (d // 2), dtype=torch.float64))
    return torch.stack(out)  # (25, d)


def vp(tau):
    b0, b1 = 0.1, 20.0
    log_m = -0.25 * tau * tau * (b1 - b0) - 0.5 * tau * b0
    m = math.exp(log_m)
    return m, math.sqrt(-math.expm1(2.0 * log_m))


def score(x, tau, mu, logw):
    """Exact score of sum_k w_k N(m mu_k, (m^2 + s^2) I) at rows of x (differentiable)."""
    m, s = vp(tau)
    v = m * m + s * s
    centers = m * mu  # (K, d)
    sq = (x * x).sum(1, keepdim=True) - 2.0 * x @ centers.T + (centers * centers).sum(1)[None]
    logits = logw[None] - 0.5 * sq / v
    r = torch.softmax(logits, dim=1)
    return (r @ centers - x) / v


def dps(problem, nfe, zeta, n, seed):
    d = problem["d"]
    obs = problem["obs"]
    a = torch.tensor(obs["A"], dtype=torch.float64)
    y = torch.tensor(obs["y"], dtype=torch.float64)
    mu = means(d)
    logw = torch.log(torch.tensor(problem["weights"], dtype=torch.float64))
    g = torch.Generator().manual_seed(seed)
    steps = nfe // 2
    eps = 1e-3
    grid = [1.0 + (eps - 1.0) * i / steps for i in range(steps)] + [eps]
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    mean = x
    for tau, tau_next in zip(grid[:-1], grid[1:]):
        m, s = vp(tau)
        m1, s1 = vp(tau_next)
        r = m / m1
        g2 = max(s * s - r * r * s1 * s1, 0.0)
        x = x.detach().requires_grad_(True)
        sc = score(x, tau, mu, logw)
        x0hat = (x + s * s * sc) / m
        norm = torch.linalg.norm(y[None] - x0hat @ a.T, dim=1)
        (grad,) = torch.autograd.grad(norm.sum(), x)
        with torch.no_grad():
            mean = (x + g2 * sc) / r - zeta * grad
            std = math.sqrt(g2) * s1 / s
            x = mean + std * torch.randn(n, d, generator=g, dtype=torch.float64)
    return mean.detach().numpy()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("dir")
    p.add_argument("--nfe", type=int, default=500)
    p.add_argument("--zeta", type=float, default=0.3)
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    files = sorted(glob.glob(os.path.join(args.dir, "problem-*.json")))
    for f in files:
        with open(f) as fh:
            prob = json.load(fh)
        d = prob["d"]
        ref = np.asarray(prob["reference"], dtype=np.float64).reshape(-1, d)
        t0 = time.perf_counter()
        xs = dps(prob, args.nfe, args.zeta, args.samples, args.seed + prob["problem"])
        secs = time.perf_counter() - t0
        sw = ot.sliced_wasserstein_distance(xs, ref, n_projections=100, p=1, seed=args.seed)
        print(json.dumps({"d": d, "dy": prob["dy"], "problem": prob["problem"],
                          "method": f"torch-dps(zeta={args.zeta})", "sw1": float(sw),
                          "seconds": secs, "nfe": 2 * (args.nfe // 2)}), flush=True)


if __name__ == "__main__":
    main()
