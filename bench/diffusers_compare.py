#!/usr/bin/env python3
"""Few-step samplers side by side with diffusers on the *exact* noise prediction of a Gaussian
mixture (issue 14). One command runs both sides and prints the table:

    /tmp/refvenv/bin/python bench/diffusers_compare.py \
        [--data 8gaussians,25gaussians] [--nfe 5,10,20,50] [--seeds 5] [--n 10000] \
        [--out /tmp/diffusers_compare] [--threads 2]

For each data set the mixture parameters come from our library (`samplers mixture`), so both
sides sample the same law. diffusers' DDIMScheduler, DPMSolverMultistepScheduler,
EulerDiscreteScheduler, HeunDiscreteScheduler and UniPCMultistepScheduler (default configs
except: one table for all, DDPM's 1000-step linear betas 1e-4 → 0.02, which is Heun's only
non-default; DDIM without its image-range x0 clipping; their default spacings and final
sigma 0) are driven by

    eps(x, t) = sigma_t * sum_k r_k(x) (a_t^2 C_k + sigma_t^2 I)^{-1} (x - a_t mu_k)

(the exact E[z | x_t] of p_t = sum_k w_k N(a_t mu_k, a_t^2 C_k + sigma_t^2 I)), with
sigma~(t) = np.interp(t, arange(1000), sqrt((1 - abar)/abar)), a_t = 1/sqrt(1 + sigma~^2),
sigma_t = sigma~ a_t: diffusers' own table and interpolation. Heun gets N = ceil(NFE/2) steps
(2N - 1 evaluations), the others N = NFE. Samples go to OUT/DATA/*.npy with one JSON line per
run in OUT/DATA/timings.jsonl (wall time of set_timesteps + the loop, and the time inside eps);
then `samplers compare` runs our side on the same schedule and scores both.

Other modes:
    --fixture FILE      write the exact-update fixture of the Rust parity test
                        (crates/scoreflow/tests/data/diffusers_samplers.json)
    --print-timesteps   print each scheduler's timesteps (the values in spacing.rs's test)
    --order-check       local error of diffusers' own DPM-Solver++ 2M / 3M updates against
                        the exact integral (their 3M update is second order; see dpm_solver.rs)
"""
import argparse
import json
import math
import pathlib
import subprocess
import sys
import time

import numpy as np
import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    UniPCMultistepScheduler,
)
from diffusers.utils import logging as dlogging

dlogging.set_verbosity_error()

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "examples" / "samplers"

# One table for all: DDPM's linear betas 1e-4 -> 0.02 over 1000 steps (the default of every
# scheduler here except Heun, whose default is 0.00085 -> 0.012). DDIM's default clip_sample=True
# clips x0 to [-1, 1] (an image setting that would cut 8gaussians' modes at radius 2.83): off.
TABLE = {"beta_start": 1e-4, "beta_end": 0.02, "beta_schedule": "linear"}
CLASSES = {
    "DDIMScheduler": (DDIMScheduler, {"clip_sample": False}),
    "DPMSolverMultistepScheduler": (DPMSolverMultistepScheduler, {}),
    "EulerDiscreteScheduler": (EulerDiscreteScheduler, {}),
    "HeunDiscreteScheduler": (HeunDiscreteScheduler, {}),
    "UniPCMultistepScheduler": (UniPCMultistepScheduler, {}),
}


def make(name, **kw):
    cls, base = CLASSES[name]
    return cls(**{**TABLE, **base, **kw})


SCHEDULERS = {name: (lambda name=name: make(name)) for name in CLASSES}


def steps_for(name, nfe):
    return (nfe + 1) // 2 if name == "HeunDiscreteScheduler" else nfe


class ExactEps:
    """The exact noise prediction of a Gaussian mixture under diffusers' discrete VP table."""

    def __init__(self, spec, alphas_cumprod):
        self.w = torch.tensor(spec["weights"], dtype=torch.float64)
        self.w = self.w / self.w.sum()
        self.mu = torch.tensor(spec["means"], dtype=torch.float64)  # (K, d)
        d = self.mu.shape[1]
        self.cov = torch.tensor(spec["covs"], dtype=torch.float64).reshape(-1, d, d)
        abar = alphas_cumprod.double().numpy()
        self.sig = np.sqrt((1.0 - abar) / abar)
        self.evals = 0
        self.secs = 0.0

    def sigma_ve(self, t):
        return float(np.interp(float(t), np.arange(len(self.sig)), self.sig))

    def __call__(self, x, t):
        t0 = time.perf_counter()
        s = self.sigma_ve(t)
        a = 1.0 / math.sqrt(1.0 + s * s)
        sg = s * a
        xd = x.double()
        d = xd.shape[1]
        c = a * a * self.cov + sg * sg * torch.eye(d, dtype=torch.float64)  # (K, d, d)
        prec = torch.linalg.inv(c)
        logdet = torch.logdet(c)
        r = xd[:, None, :] - a * self.mu[None]  # (n, K, d)
        pr = torch.einsum("kij,nkj->nki", prec, r)
        quad = (r * pr).sum(-1)
        logp = torch.log(self.w)[None] - 0.5 * quad - 0.5 * logdet[None]
        resp = torch.softmax(logp, dim=1)
        eps = sg * (resp[..., None] * pr).sum(1)
        self.evals += 1
        self.secs += time.perf_counter() - t0
        return eps.to(x.dtype)


def run_scheduler(name, steps, eps, x_vp, generator=None):
    """Samples with diffusers from the VP prior draw x_vp (pipeline convention: the initial
    latent is noise * init_noise_sigma). Returns (x_0, NFE, wall seconds)."""
    sched = SCHEDULERS[name]()
    t0 = time.perf_counter()
    sched.set_timesteps(steps)
    sample = x_vp * sched.init_noise_sigma
    nfe = 0
    for t in sched.timesteps:
        model_in = sched.scale_model_input(sample, t)
        out = eps(model_in, t)
        nfe += 1
        kw = {"generator": generator} if name == "DDIMScheduler" else {}
        sample = sched.step(out, t, sample, **kw).prev_sample
    return sample, nfe, time.perf_counter() - t0


def cargo_build():
    subprocess.run(
        ["cargo", "build", "--quiet", "--release", "-p", "scoreflow", "--example", "samplers"],
        cwd=ROOT,
        check=True,
    )


def mixture_spec(data):
    out = subprocess.run(
        [str(BIN), "mixture", "--data", data], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare(args):
    cargo_build()
    for data in args.data.split(","):
        spec = mixture_spec(data)
        out = pathlib.Path(args.out) / data
        out.mkdir(parents=True, exist_ok=True)
        lines = []
        for name in SCHEDULERS:
            eps = ExactEps(spec, SCHEDULERS[name]().alphas_cumprod)
            for budget in args.nfe:
                for seed in range(args.seeds):
                    g = torch.Generator().manual_seed(seed)
                    x = torch.randn(args.n, 2, generator=g, dtype=torch.float32)
                    eps.secs = 0.0
                    x0, nfe, wall = run_scheduler(name, steps_for(name, budget), eps, x)
                    file = f"{name}-{budget}-{seed}.npy"
                    np.save(out / file, x0.double().numpy())
                    lines.append(
                        {"scheduler": name, "budget": budget, "seed": seed, "nfe": nfe,
                         "wall_s": wall, "field_s": eps.secs, "file": file}
                    )
                    print(json.dumps({"data": data, **lines[-1]}), file=sys.stderr)
        (out / "timings.jsonl").write_text("\n".join(json.dumps(l) for l in lines) + "\n")
        nfe = ",".join(str(b) for b in args.nfe)
        subprocess.run(
            [str(BIN), "compare", "--data", data, "--dir", str(out), "--n", str(args.n),
             "--seeds", str(args.seeds), "--nfe", nfe],
            check=True,
        )


def fixture(args):
    """Eight starting points, each scheduler at 4 and 10 steps, exact eps of 8gaussians."""
    cargo_build()
    spec = mixture_spec("8gaussians")
    g = torch.Generator().manual_seed(123)
    x = torch.randn(8, 2, generator=g, dtype=torch.float64)
    cases = []
    configs = [
        ("ddim", "DDIMScheduler", {}),
        ("dpmpp-2m", "DPMSolverMultistepScheduler", {}),
        ("dpm-solver", "DPMSolverMultistepScheduler",
         {"algorithm_type": "dpmsolver", "final_sigmas_type": "sigma_min"}),
        ("edm-euler", "EulerDiscreteScheduler", {}),
        ("edm-heun", "HeunDiscreteScheduler", {}),
        ("unipc", "UniPCMultistepScheduler", {}),
    ]
    for ours, name, kw in configs:
        for steps in (4, 10):
            sched = make(name, **kw)
            eps = ExactEps(spec, sched.alphas_cumprod)
            sched.set_timesteps(steps)
            # Start every scheduler from the same VP state x at its first level:
            # the Euler/Heun latent is x / alpha_0 = x * sqrt(1 + sigma_0^2).
            scale = 1.0
            if name in ("EulerDiscreteScheduler", "HeunDiscreteScheduler"):
                scale = math.sqrt(1.0 + float(sched.sigmas[0]) ** 2)
            sample = (x * scale).float()
            for t in sched.timesteps:
                out = eps(sched.scale_model_input(sample, t), t)
                sample = sched.step(out, t, sample).prev_sample
            cases.append({"sampler": ours, "scheduler": name, "options": kw, "steps": steps,
                          "final": "eps" if kw.get("final_sigmas_type") == "sigma_min" else "zero",
                          "x_start": x.flatten().tolist(),
                          "x_end": sample.double().flatten().tolist()})
    doc = {"about": "diffusers 0.42.1 schedulers (float32) driven by the exact eps of 8gaussians "
                    "from 8 VP prior points; written by bench/diffusers_compare.py --fixture",
           "cases": cases}
    pathlib.Path(args.fixture).write_text(json.dumps(doc, indent=1) + "\n")


def print_timesteps(_args):
    for name in SCHEDULERS:
        for spacing in ("leading", "trailing", "linspace"):
            s = make(name, timestep_spacing=spacing)
            s.set_timesteps(6)
            print(name, spacing, [float(t) for t in s.timesteps])


def order_check(_args):
    """Local error of diffusers' own DPM-Solver++ multistep updates (orders 2 and 3): one step
    from lambda = 0 to h after history at -h, -2h (x_s = 0, data predictions m(lambda) =
    sin(lambda) + lambda^2), against the exact x_t = sigma_t * int_0^h e^lambda m(lambda) dlambda.
    A method of global order p has local error O(h^(p+1)): the error ratio per halving of h
    tends to 2^(p+1). diffusers' third-order update gives 8 (second order); with the D2 term
    doubled (our dpmpp-3m) 16."""
    m = lambda lam: math.sin(lam) + lam * lam
    for order in (2, 3):
        rows = []
        for h in (0.4, 0.2, 0.1, 0.05, 0.025):
            s = DPMSolverMultistepScheduler(solver_order=3)
            lams = [-2 * h, -h, 0.0, h]
            s.sigmas = torch.tensor([math.exp(-l) for l in lams], dtype=torch.float64)
            s._step_index = 2
            outs = [torch.tensor([[m(l)]], dtype=torch.float64) for l in lams[:3]]
            x = torch.zeros(1, 1, dtype=torch.float64)
            if order == 2:
                got = s.multistep_dpm_solver_second_order_update(outs[1:], sample=x)
            else:
                got = s.multistep_dpm_solver_third_order_update(outs, sample=x)
            sig_t = math.exp(-h) / math.sqrt(1 + math.exp(-2 * h))
            # int_0^h e^l m(l) dl by Simpson's rule on 20,000 panels (error ~1e-18).
            k = 20000
            xs = np.linspace(0.0, h, k + 1)
            f = np.exp(xs) * (np.sin(xs) + xs * xs)
            integral = (h / k / 3) * (f[0] + f[-1] + 4 * f[1:-1:2].sum() + 2 * f[2:-1:2].sum())
            rows.append((h, abs(float(got) - sig_t * integral)))
        ratios = [rows[i][1] / rows[i + 1][1] for i in range(len(rows) - 1)]
        print(json.dumps({"diffusers_dpmpp_update_order": order,
                          "h_and_local_error": rows, "ratio_per_halving": ratios}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="8gaussians,25gaussians")
    p.add_argument("--nfe", default="5,10,20,50")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--out", default="/tmp/diffusers_compare")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--fixture")
    p.add_argument("--print-timesteps", action="store_true")
    p.add_argument("--order-check", action="store_true")
    args = p.parse_args()
    args.nfe = [int(v) for v in args.nfe.split(",")]
    torch.set_num_threads(args.threads)
    if args.fixture:
        fixture(args)
    elif args.print_timesteps:
        print_timesteps(args)
    elif args.order_check:
        order_check(args)
    else:
        compare(args)


if __name__ == "__main__":
    main()
